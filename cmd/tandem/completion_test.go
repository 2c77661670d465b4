package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// completionScript is what "tandem completion SHELL" prints, in a file.
func completionScript(t *testing.T, shell string) string {
	t.Helper()
	code, out, errOut := runCLI("completion", shell)
	if code != 0 || errOut != "" || out == "" {
		t.Fatalf("completion %s: exit %d, stderr %q", shell, code, errOut)
	}
	p := filepath.Join(t.TempDir(), "tandem."+shell)
	if err := os.WriteFile(p, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// The bash script parses, and sourced in a bash it completes the verbs,
// each verb's flags (with two dashes or one), the arguments a verb knows,
// and leaves a flag's value to bash's file names.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script := completionScript(t, "bash")
	if out, err := exec.Command(bash, "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v: %s", err, out)
	}
	// complete prints COMPREPLY, one word a line, for a command line whose
	// last word is being completed.
	complete := func(words ...string) []string {
		t.Helper()
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = shQuote(w)
		}
		prog := `source "$1" || exit 3
complete -p tandem >/dev/null || exit 4
COMP_WORDS=(` + strings.Join(quoted, " ") + `)
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
COMP_LINE="${COMP_WORDS[*]}"
COMP_POINT=${#COMP_LINE}
_tandem tandem "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}" || exit 5
printf '%s\n' "${COMPREPLY[@]}"`
		cmd := exec.Command(bash, "--norc", "--noprofile", "-c", prog, "bash", script)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v: %s", words, err, out)
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l != "" {
				got = append(got, l)
			}
		}
		return got
	}
	for _, tc := range []struct {
		words []string
		want  []string
	}{
		{[]string{"tandem", ""}, verbNames()},
		{[]string{"tandem", "se"}, []string{"serve"}},
		{[]string{"tandem", "c"}, []string{"completion"}},
		{[]string{"tandem", "--"}, []string{"--help"}},
		{[]string{"tandem", "tail", "--js"}, []string{"--json"}},
		{[]string{"tandem", "tail", "demo", "--s"}, []string{"--since-now"}},
		{[]string{"tandem", "tail", "-si"}, []string{"-since-now"}},
		{[]string{"tandem", "prompt", "--i"}, []string{"--idempotency-key"}},
		{[]string{"tandem", "serve", "--redis-w"}, []string{"--redis-wait-replicas", "--redis-wait-timeout"}},
		{[]string{"tandem", "version", "--"}, []string{"--json", "--help"}},
		{[]string{"tandem", "completion", ""}, []string{"bash", "zsh"}},
		{[]string{"tandem", "help", "ta"}, []string{"tail"}},
		{[]string{"tandem", "tail", "--url", ""}, nil},                             // a value: file names
		{[]string{"tandem", "tail", "--json", "--u"}, []string{"--url", "--user"}}, // --json takes none
		{[]string{"tandem", "frobnicate", "--"}, nil},
	} {
		got := complete(tc.words...)
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%q: completed %q, want %q", tc.words, got, tc.want)
		}
	}
	// Every verb's every flag is offered.
	for _, v := range verbs() {
		got := strings.Join(complete("tandem", v.name, "--"), " ") + " "
		for _, f := range flagsOf(v) {
			if !strings.Contains(got, "--"+f.name+" ") {
				t.Errorf("tandem %s --<TAB> does not offer --%s: %s", v.name, f.name, got)
			}
		}
	}
}

// The zsh script names every verb and flag.
func TestZshCompletion(t *testing.T) {
	script := completionScript(t, "zsh")
	b, _ := os.ReadFile(script)
	text := string(b)
	if !strings.HasPrefix(text, "#compdef tandem\n") {
		t.Error("no #compdef line")
	}
	for _, v := range verbs() {
		if !strings.Contains(text, "'"+v.name+":") || !strings.Contains(text, "    "+v.name+")") {
			t.Errorf("the zsh script lacks the verb %s", v.name)
		}
		for _, f := range flagsOf(v) {
			if !strings.Contains(text, "--"+f.name) {
				t.Errorf("the zsh script lacks %s --%s", v.name, f.name)
			}
		}
	}
}

// The zsh script parses and loads under compinit where zsh is installed;
// it is not on every machine that runs these tests, and is skipped there.
func TestZshCompletionParses(t *testing.T) {
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		t.Skip("zsh is not installed: the script's parse check (zsh -n) is skipped")
	}
	script := completionScript(t, "zsh")
	if out, err := exec.Command(zsh, "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v: %s", err, out)
	}
	// Loaded as a completion function, it defines _tandem.
	prog := `autoload -Uz compinit && compinit -u -D && source "$1" && whence -w _tandem`
	if out, err := exec.Command(zsh, "-f", "-c", prog, "zsh", script).CombinedOutput(); err != nil || !strings.Contains(string(out), "function") {
		t.Fatalf("zsh: %v: %s", err, out)
	}
}

// zshDesc leaves no character that _describe or _arguments would read.
func TestZshDesc(t *testing.T) {
	for in, want := range map[string]string{
		"listen address ($TANDEM_ADDR)":                               "listen address",
		"log format: text or json ($TANDEM_LOG_FORMAT)":               "log format, text or json",
		`start after this event id (what --json prints as "id")`:      "start after this event id",
		"the node (or load balancer) to talk to ($TANDEM_URL)":        "the node to talk to",
		"Redis URL: redis:// (one server), redis+cluster:// or more":  "Redis URL",
		"names of variables (their credentials (keys)); besides PATH": "names of variables",
		"a [bracketed] `quoted` \"word\" with a \\ and a $":           "a bracketed quoted word with a and a",
	} {
		if got := zshDesc(in); got != want {
			t.Errorf("zshDesc(%q) = %q, want %q", in, got, want)
		}
	}
}
