// Command tandem runs a Tandem node and talks to one from a terminal.
//
//	tandem serve                 run a node (configuration: flags or TANDEM_* variables)
//	tandem prompt WS [SID] TEXT  send a prompt
//	tandem tail WS [SID]         follow a session
//	tandem approve WS [SID] REQUEST OPTION  answer the agent's permission request
//	tandem version               print the version
//	tandem completion bash|zsh   print a shell completion script
//	tandem help [COMMAND]        show the help of tandem or of a command
//
// Every command takes -h (or --help). Exit status: 0 done, 1 failed,
// 2 misused (an unknown command or flag, wrong arguments).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit statuses.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// usageErr is a misuse of a command: wrong arguments or flags. It exits
// with status 2 after a short usage.
type usageErr struct{ msg string }

func (e *usageErr) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageErr{msg: fmt.Sprintf(format, args...)}
}

// run is the whole command line: it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "tandem: no command given")
		shortUsage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help":
		if len(args) > 1 {
			return runVerb(lookupVerb("help"), args[1:], stdout, stderr)
		}
		writeOverview(stdout)
		return exitOK
	}
	v, ok := findVerb(args[0])
	if !ok {
		what := "command"
		if strings.HasPrefix(args[0], "-") {
			what = "flag"
		}
		fmt.Fprintf(stderr, "tandem: unknown %s %q\n", what, args[0])
		shortUsage(stderr)
		return exitUsage
	}
	return runVerb(v, args[1:], stdout, stderr)
}

// runVerb parses a verb's flags (anywhere among its arguments), answers
// -h with its help on stdout, and runs it.
func runVerb(v verb, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet(v.name)
	runner := v.define(fs)
	pos, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		writeHelp(stdout, v)
		return exitOK
	}
	if err != nil {
		err = &usageErr{msg: err.Error()} // an unknown flag, a bad value
	} else {
		err = runner(pos, stdout, stderr)
	}
	var ue *usageErr
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "tandem %s: %s\n", v.name, ue.msg)
		fmt.Fprintf(stderr, "%s\nRun \"tandem help %s\" for its flags and examples.\n", usageLine(v), v.name)
		return exitUsage
	default:
		fmt.Fprintln(stderr, "tandem:", err)
		return exitFailed
	}
}

// newFlagSet is a verb's flag set. It prints nothing itself: runVerb
// writes the help and the complaints.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}
