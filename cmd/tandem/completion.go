package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// defineCompletion: tandem completion bash|zsh.
func defineCompletion(fs *flag.FlagSet) runFunc {
	return func(args []string, stdout, _ io.Writer) error {
		if len(args) != 1 {
			return usageErrorf("want one shell: bash or zsh")
		}
		switch args[0] {
		case "bash":
			_, err := io.WriteString(stdout, bashCompletion())
			return err
		case "zsh":
			_, err := io.WriteString(stdout, zshCompletion())
			return err
		default:
			return usageErrorf("unknown shell %q: want bash or zsh", args[0])
		}
	}
}

// bashCompletion is a script that completes the verbs, each verb's flags
// (as --name; as -name after a single dash) and the arguments a verb
// knows (the shells of completion, the verbs of help). After a flag that
// takes a value, and for other arguments, it leaves bash to complete file
// names.
func bashCompletion() string {
	var b strings.Builder
	b.WriteString(`# bash completion for tandem, made by "tandem completion bash".
#   this shell:   source <(tandem completion bash)
#   every shell:  tandem completion bash > /etc/bash_completion.d/tandem
_tandem() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev= flags= valued= words=
    if ((COMP_CWORD > 0)); then
        prev=${COMP_WORDS[COMP_CWORD-1]}
    fi
    COMPREPLY=()
    if ((COMP_CWORD <= 1)); then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "--help" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "`)
	b.WriteString(strings.Join(verbNames(), " "))
	b.WriteString(`" -- "$cur"))
        fi
        return 0
    fi
    case ${COMP_WORDS[1]} in
`)
	for _, v := range verbs() {
		var names, valued []string
		for _, f := range flagsOf(v) {
			names = append(names, "--"+f.name)
			if f.takesValue {
				valued = append(valued, f.name)
			}
		}
		fmt.Fprintf(&b, "    %s)\n        flags=%q\n", v.name, strings.Join(names, " "))
		if len(valued) > 0 {
			fmt.Fprintf(&b, "        valued=%q\n", " "+strings.Join(valued, " ")+" ")
		}
		if v.words != nil {
			fmt.Fprintf(&b, "        words=%q\n", strings.Join(v.words(), " "))
		}
		b.WriteString("        ;;\n")
	}
	b.WriteString(`    *)
        return 0
        ;;
    esac
    # The value of a flag: bash's default completion (file names).
    local p=${prev#-}
    p=${p#-}
    if [[ $prev == -* && $valued == *" $p "* ]]; then
        return 0
    fi
    if [[ $cur == -* ]]; then
        if [[ $cur != --* && $cur != - ]]; then
            flags=${flags//--/-}
        fi
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
    elif [[ -n $words ]]; then
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
    fi
    return 0
}
complete -o default -F _tandem tandem
`)
	return b.String()
}

// zshCompletion is a script for zsh's completion system: the verbs with
// their summaries, then each verb's flags with theirs (_arguments).
func zshCompletion() string {
	var b strings.Builder
	b.WriteString(`#compdef tandem
# zsh completion for tandem, made by "tandem completion zsh".
#   this shell (after compinit):  source <(tandem completion zsh)
#   every shell:                  tandem completion zsh > "${fpath[1]}/_tandem"

_tandem() {
  local -a verbs
  verbs=(
`)
	for _, v := range verbs() {
		fmt.Fprintf(&b, "    %s\n", shQuote(v.name+":"+zshDesc(v.summary)))
	}
	b.WriteString(`  )
  if (( CURRENT == 2 )); then
    _describe -t commands 'tandem command' verbs
    return
  fi
  local verb=${words[2]}
  shift words
  (( CURRENT-- ))
  case $verb in
`)
	for _, v := range verbs() {
		var specs []string
		for _, f := range flagsOf(v) {
			desc := "[" + zshDesc(f.usage) + "]"
			switch {
			case f.name == "help":
				specs = append(specs, shQuote("(- *)-h"+desc), shQuote("(- *)--help"+desc))
			case f.takesValue:
				specs = append(specs, shQuote("--"+f.name+"="+desc+":value:_default"))
			default:
				specs = append(specs, shQuote("--"+f.name+desc))
			}
		}
		switch {
		case v.words != nil:
			specs = append(specs, shQuote("1:argument:("+strings.Join(v.words(), " ")+")"))
		case v.args != "":
			specs = append(specs, shQuote("*:argument:_default"))
		}
		fmt.Fprintf(&b, "    %s)\n      _arguments \\\n        %s\n      ;;\n", v.name, strings.Join(specs, " \\\n        "))
	}
	b.WriteString(`  esac
}

if [[ ${funcstack[1]} == _tandem ]]; then
  _tandem "$@"
else
  compdef _tandem tandem
fi
`)
	return b.String()
}

// zshDesc makes a usage text a short description that _describe and
// _arguments take as it is: without its parenthesized asides and what
// follows a semicolon, "a: b" as "a, b", a word with a colon left out, and
// none of the characters they give a meaning to.
func zshDesc(s string) string {
	var b strings.Builder
	depth := 0
	for _, r := range s {
		switch {
		case r == '(':
			depth++
		case r == ')' && depth > 0:
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	s, _, _ = strings.Cut(b.String(), ";")
	s = strings.ReplaceAll(s, ": ", ", ")
	if i := strings.IndexByte(s, ':'); i >= 0 {
		s = s[:strings.LastIndexByte(s[:i], ' ')+1]
	}
	s = strings.Map(func(r rune) rune {
		if strings.ContainsRune("[]\\$`\"", r) {
			return -1
		}
		return r
	}, s)
	return strings.TrimRight(strings.Join(strings.Fields(s), " "), ",.")
}

// shQuote quotes s for a POSIX shell (and zsh) in single quotes.
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
