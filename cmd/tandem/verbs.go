package main

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// A verb is one of tandem's commands. run dispatches only through
// verbs(), and the help, the short usage and the completion scripts are
// made from the same entries, so a verb cannot come without them:
// cli_test.go holds every entry to a summary, an example and a help that
// works.
type verb struct {
	name     string
	summary  string   // one line: "tandem --help" and the completion menus
	args     string   // the arguments after the flags, as the usage line shows them
	about    string   // what it does, a paragraph or two
	examples []string // command lines, each with "tandem <name>" in it
	// words are the arguments completion offers (nil: file names).
	words func() []string
	// define registers the verb's flags on fs and returns what runs it
	// with the arguments the flags left.
	define func(fs *flag.FlagSet) runFunc
}

type runFunc func(args []string, stdout, stderr io.Writer) error

func verbs() []verb {
	return []verb{
		{
			name:    "serve",
			summary: "run a node",
			about: `Runs a Tandem node: the HTTP API, the workspaces it owns and, with the
local sandbox, the Sandbox Agent server as its child. Every flag has a
TANDEM_* variable of the same meaning (shown after it; .env.example lists
them all): a flag given wins over the variable, which wins over the
default. Secrets (tokens, the Redis URL) are never printed, neither here
nor in a complaint about a flag.`,
			examples: []string{
				"tandem serve                                   # loopback, no authentication, the local sandbox",
				"tandem serve --log-format json --log-level debug",
				"TANDEM_AUTH=jwt TANDEM_JWT_SECRET=\"$(cat jwt.secret)\" tandem serve --addr 0.0.0.0:8080 --sandbox-url http://sandbox:2468",
			},
			define: defineServe,
		},
		{
			name:    "prompt",
			summary: "send a prompt to a session",
			args:    "WORKSPACE [SESSION] TEXT",
			about: `Sends TEXT ("-": standard input) as a prompt to the session (default
"default", which the first prompt creates) and prints the prompt's id once
the node has accepted it. A retry with the same --idempotency-key is safe:
it prints the first prompt's id and sends nothing twice.`,
			examples: []string{
				`tandem prompt demo "hello [chunks=8] [delay=100ms]" --user ann`,
				"tandem prompt demo s2 - --idempotency-key retry-1 < question.txt",
			},
			define: definePrompt,
		},
		{
			name:    "tail",
			summary: "follow a session, as a conversation or as JSON lines",
			args:    "WORKSPACE [SESSION]",
			about: `Follows the session (default "default") and prints it as a conversation, or
with --json one event per line as the API sends it. It resumes where it left
off, with its cursor, across dropped connections and node restarts, until
interrupted.`,
			examples: []string{
				"tandem tail demo --user ann",
				"tandem tail demo s2 --json | jq .type",
				"tandem tail demo --cursor 1712345678901-0",
				"tandem tail demo --since-now",
			},
			define: defineTail,
		},
		{
			name:    "approve",
			summary: "answer the agent's permission request",
			args:    "WORKSPACE [SESSION] REQUEST_ID OPTION_ID",
			about: `Answers the agent's permission request REQUEST_ID (tandem tail shows the
requests and their options) with the option OPTION_ID, or with "cancel" to
cancel it. The first answer wins: an answer after another one fails and
says who answered and how.`,
			examples: []string{
				"tandem approve demo perm-1a2b allow-once",
				"tandem approve demo s2 perm-1a2b cancel --user bob",
			},
			define: defineApprove,
		},
		{
			name:    "version",
			summary: "print the version and commit of this build",
			about: `Prints the module version and the VCS commit Go recorded in the binary
(the same as GET /v1/version), and the Go version it was built with.`,
			examples: []string{
				"tandem version",
				"tandem version --json",
			},
			define: defineVersion,
		},
		{
			name:    "completion",
			summary: "print a shell completion script (bash or zsh)",
			args:    "bash|zsh",
			about: `Prints a script that completes tandem's commands and each command's flags
in bash or zsh.`,
			examples: []string{
				"source <(tandem completion bash)                 # this bash only",
				"tandem completion bash > /etc/bash_completion.d/tandem",
				`tandem completion zsh > "${fpath[1]}/_tandem"       # zsh, with compinit`,
			},
			words:  func() []string { return []string{"bash", "zsh"} },
			define: defineCompletion,
		},
		{
			name:    "help",
			summary: "show the help of tandem or of a command",
			args:    "[COMMAND]",
			about:   `Shows what a command does, its flags and examples (the same as "tandem COMMAND --help"); without a command, the list of commands.`,
			examples: []string{
				"tandem help tail",
				"tandem help",
			},
			words:  verbNames,
			define: defineHelp,
		},
	}
}

// findVerb returns the verb called name.
func findVerb(name string) (verb, bool) {
	for _, v := range verbs() {
		if v.name == name {
			return v, true
		}
	}
	return verb{}, false
}

// lookupVerb returns a verb that exists.
func lookupVerb(name string) verb {
	v, ok := findVerb(name)
	if !ok {
		panic("no verb " + name)
	}
	return v
}

func verbNames() []string {
	var out []string
	for _, v := range verbs() {
		out = append(out, v.name)
	}
	return out
}

// verbFlag is a flag as the help and the completion show it.
type verbFlag struct {
	name, usage string
	takesValue  bool
}

// flagsOf returns the verb's flags, sorted by name, -help last.
func flagsOf(v verb) []verbFlag {
	fs := newFlagSet(v.name)
	v.define(fs)
	var out []verbFlag
	fs.VisitAll(func(f *flag.Flag) {
		bf, ok := f.Value.(interface{ IsBoolFlag() bool })
		out = append(out, verbFlag{name: f.Name, usage: f.Usage, takesValue: !ok || !bf.IsBoolFlag()})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return append(out, verbFlag{name: "help", usage: "show this help"})
}

// usageLine is the verb's one-line usage.
func usageLine(v verb) string {
	s := "usage: tandem " + v.name
	if len(flagsOf(v)) > 1 {
		s += " [flags]"
	}
	if v.args != "" {
		s += " " + v.args
	}
	return s
}

// shortUsage is what a misuse of tandem itself prints on stderr.
func shortUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: tandem <command> [flags] [arguments]\ncommands: %s\nRun \"tandem --help\" for more.\n", strings.Join(verbNames(), ", "))
}

// writeOverview is "tandem --help": every verb with its summary.
func writeOverview(w io.Writer) {
	fmt.Fprint(w, "tandem runs a Tandem node and talks to one from a terminal.\n\nusage: tandem <command> [flags] [arguments]\n\ncommands:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, v := range verbs() {
		fmt.Fprintf(tw, "  %s\t%s\n", v.name, v.summary)
	}
	tw.Flush()
	fmt.Fprint(w, `
"tandem help COMMAND" (or "tandem COMMAND --help") shows a command's flags
and examples. Flags may come anywhere among a command's arguments, with one
dash or two.

examples:
  tandem serve
  tandem prompt demo "hello" --user ann
  tandem help tail
  source <(tandem completion bash)
`)
}

// writeHelp is "tandem help VERB": what it does, its flags and examples.
func writeHelp(w io.Writer, v verb) {
	fmt.Fprintf(w, "tandem %s: %s\n\n%s\n\n%s\n\nflags:\n", v.name, v.summary, usageLine(v), v.about)
	fs := newFlagSet(v.name)
	v.define(fs)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprint(w, "  -h, -help\n    \tshow this help\n\nexamples:\n")
	for _, ex := range v.examples {
		fmt.Fprintf(w, "  %s\n", ex)
	}
}

func defineHelp(fs *flag.FlagSet) runFunc {
	return func(args []string, stdout, _ io.Writer) error {
		switch len(args) {
		case 0:
			writeOverview(stdout)
			return nil
		case 1:
			v, ok := findVerb(args[0])
			if !ok {
				return usageErrorf("unknown command %q (commands: %s)", args[0], strings.Join(verbNames(), ", "))
			}
			writeHelp(stdout, v)
			return nil
		default:
			return usageErrorf("want at most one COMMAND")
		}
	}
}
