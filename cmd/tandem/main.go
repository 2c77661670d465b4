// Command tandem runs a Tandem node and talks to one from a terminal.
//
//	tandem serve              run a node (configuration: flags or TANDEM_* variables)
//	tandem prompt WS [SID] TEXT  send a prompt
//	tandem tail WS [SID]      follow a session
//	tandem approve WS [SID] REQUEST OPTION  answer the agent's permission request
//	tandem version            print the version
package main

import (
	"fmt"
	"github.com/tandem-dev/tandem/version"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serveCmd(os.Args[2:])
	case "prompt":
		err = promptCmd(os.Args[2:], os.Stdout)
	case "tail":
		err = tailCmd(os.Args[2:], os.Stdout, os.Stderr)
	case "approve":
		err = approveCmd(os.Args[2:], os.Stdout)
	case "version":
		fmt.Println("tandem", version.Get())
	case "help", "-h", "--help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "tandem: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tandem:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: tandem <command> [flags]

commands:
  serve     run a node; "tandem serve -h" lists its flags and TANDEM_* variables
  prompt    send a prompt to a session: tandem prompt WORKSPACE [SESSION] TEXT
  tail      follow a session: tandem tail WORKSPACE [SESSION]
  approve   answer the agent's permission request: tandem approve WORKSPACE [SESSION] REQUEST_ID OPTION_ID
  version   print the version
(-h after a command lists its flags)
`)
}
