package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// runCLI runs the command line as main would.
func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// Every verb has a summary, at least one example that runs it, and a help
// that "VERB --help", "VERB -h" and "help VERB" all print on stdout with
// exit status 0: its usage line, its summary, each of its flags and its
// examples. The table is the one run dispatches through, so a verb added
// without help fails here.
func TestEveryVerbHasHelp(t *testing.T) {
	vs := verbs()
	if len(vs) < 7 {
		t.Fatalf("only %d verbs: %v", len(vs), verbNames())
	}
	_, overview, _ := runCLI("--help")
	seen := map[string]bool{}
	for _, v := range vs {
		t.Run(v.name, func(t *testing.T) {
			if seen[v.name] {
				t.Fatalf("%s is listed twice", v.name)
			}
			seen[v.name] = true
			if v.summary == "" || strings.Contains(v.summary, "\n") {
				t.Errorf("summary %q: want one line", v.summary)
			}
			if strings.TrimSpace(v.about) == "" {
				t.Error("no about text")
			}
			if len(v.examples) == 0 {
				t.Error("no example")
			}
			for _, ex := range v.examples {
				if !strings.Contains(ex, "tandem "+v.name) {
					t.Errorf("example %q does not run tandem %s", ex, v.name)
				}
				for _, f := range exampleFlags(ex, v.name) {
					if !hasFlag(v, f) {
						t.Errorf("example %q uses --%s, which %s does not have", ex, f, v.name)
					}
				}
			}
			if !strings.Contains(overview, "  "+v.name+" ") || !strings.Contains(overview, v.summary) {
				t.Errorf("tandem --help does not list %s with its summary:\n%s", v.name, overview)
			}
			for _, args := range [][]string{{v.name, "--help"}, {v.name, "-h"}, {v.name, "-help"}, {"help", v.name}, {"--help", v.name}} {
				code, out, errOut := runCLI(args...)
				if code != 0 || errOut != "" {
					t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
				}
				for _, want := range append([]string{"usage: tandem " + v.name, v.summary, "examples:", "-help"}, v.examples...) {
					if !strings.Contains(out, want) {
						t.Errorf("%v does not show %q:\n%s", args, want, out)
					}
				}
				for _, f := range flagsOf(v) {
					if !strings.Contains(out, " -"+f.name) {
						t.Errorf("%v does not show -%s", args, f.name)
					}
				}
			}
		})
	}
}

// exampleFlags returns the names of the flags an example gives the verb:
// the words after "tandem VERB" up to a pipe or a redirection.
func exampleFlags(ex, name string) []string {
	_, rest, ok := strings.Cut(ex, "tandem "+name)
	if !ok {
		return nil
	}
	var out []string
	for _, w := range shellWords(rest) {
		if strings.ContainsAny(w[:1], "|<>)#") {
			break
		}
		if len(w) > 1 && w[0] == '-' {
			n, _, _ := strings.Cut(strings.TrimLeft(w, "-"), "=")
			out = append(out, n)
		}
	}
	return out
}

// shellWords splits a command line on blanks, keeping quoted parts whole.
func shellWords(s string) []string {
	var out []string
	var cur strings.Builder
	var quote rune
	in := false
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

func hasFlag(v verb, name string) bool {
	if name == "h" {
		return true
	}
	for _, f := range flagsOf(v) {
		if f.name == name {
			return true
		}
	}
	return false
}

// "tandem --help", "-h" and "help" list the verbs on stdout.
func TestOverview(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"-help"}, {"help"}} {
		code, out, errOut := runCLI(args...)
		if code != 0 || errOut != "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
		for _, want := range append(verbNames(), "usage: tandem <command>", "examples:", "tandem help COMMAND") {
			if !strings.Contains(out, want) {
				t.Errorf("%v does not show %q:\n%s", args, want, out)
			}
		}
	}
}

// A misuse prints the complaint and a short usage on stderr, nothing on
// stdout, and exits 2; the short usage points at the help instead of
// listing every flag.
func TestMisuseExits2(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string // on stderr
	}{
		{nil, []string{"no command", "usage: tandem <command>", "commands: serve, prompt"}},
		{[]string{"frobnicate"}, []string{`unknown command "frobnicate"`, "usage: tandem <command>"}},
		{[]string{"--frobnicate"}, []string{`unknown flag "--frobnicate"`, "usage: tandem <command>"}},
		{[]string{"help", "frobnicate"}, []string{`unknown command "frobnicate"`, "usage: tandem help [COMMAND]"}},
		{[]string{"--help", "frobnicate"}, []string{`unknown command "frobnicate"`}},
		{[]string{"help", "tail", "prompt"}, []string{"at most one COMMAND"}},
		{[]string{"tail", "--frobnicate", "demo"}, []string{"flag provided but not defined: -frobnicate", "usage: tandem tail [flags] WORKSPACE [SESSION]", `"tandem help tail"`}},
		{[]string{"tail"}, []string{"want WORKSPACE [SESSION]", "usage: tandem tail"}},
		{[]string{"tail", "demo", "--since-now", "--cursor", "1-0"}, []string{"do not go together"}},
		{[]string{"tail", "demo", "--url", "ftp://x"}, []string{"--url"}},
		{[]string{"tail", "demo", "--url"}, []string{"flag needs an argument: -url"}},
		{[]string{"prompt", "demo"}, []string{"want WORKSPACE [SESSION] TEXT", "usage: tandem prompt [flags]"}},
		{[]string{"prompt", "-x", "demo", "hi"}, []string{"not defined: -x"}},
		{[]string{"approve", "demo", "perm-1"}, []string{"want WORKSPACE [SESSION] REQUEST_ID OPTION_ID"}},
		{[]string{"serve", "--lock-ttl", "soon"}, []string{`invalid value "soon" for flag -lock-ttl`, "usage: tandem serve [flags]"}},
		{[]string{"serve", "--no-such-flag"}, []string{"not defined: -no-such-flag"}},
		{[]string{"serve", "now"}, []string{`takes no arguments, got "now"`}},
		{[]string{"version", "--short"}, []string{"not defined: -short"}},
		{[]string{"version", "now"}, []string{"takes no arguments"}},
		{[]string{"completion"}, []string{"want one shell", "usage: tandem completion bash|zsh"}},
		{[]string{"completion", "fish"}, []string{`unknown shell "fish"`}},
	} {
		code, out, errOut := runCLI(tc.args...)
		if code != 2 || out != "" {
			t.Errorf("%v: exit %d, stdout %q; want 2 and nothing", tc.args, code, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%v: stderr does not say %q:\n%s", tc.args, w, errOut)
			}
		}
		if n := strings.Count(errOut, "\n"); n > 4 {
			t.Errorf("%v: a usage of %d lines is not short:\n%s", tc.args, n, errOut)
		}
	}
}

// A command that fails once it runs (here: no node on the address) exits
// 1, not 2.
func TestFailureExits1(t *testing.T) {
	code, out, errOut := runCLI("approve", "demo", "perm-1", "allow-once", "--url", "http://127.0.0.1:1")
	if code != 1 || out != "" || !strings.Contains(errOut, "tandem: approve:") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// tandem version prints the build's version (and, with --json, the whole
// build information).
func TestVersionCommand(t *testing.T) {
	code, out, errOut := runCLI("version")
	if code != 0 || errOut != "" || !strings.HasPrefix(out, "tandem ") || !strings.Contains(out, "go1.") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, _ = runCLI("version", "--json")
	var in struct {
		Version, GoVersion string
	}
	if code != 0 || json.Unmarshal([]byte(out), &in) != nil || in.Version == "" || !strings.HasPrefix(in.GoVersion, "go1.") {
		t.Fatalf("--json: exit %d, %q", code, out)
	}
}
