package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

const promptUsage = `usage: tandem prompt [flags] WORKSPACE [SESSION] TEXT

Sends TEXT ("-": standard input) as a prompt to the session (default
"default", which the first prompt creates) and prints the prompt's id once
the node has accepted it. A retry with the same --idempotency-key is safe:
it prints the first prompt's id and sends nothing twice.

flags:
`

// promptCmd: tandem prompt WS [SID] TEXT.
func promptCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("prompt", flag.ContinueOnError)
	var api apiFlags
	api.register(fs)
	idem := fs.String("idempotency-key", "", "Idempotency-Key header: the same key (per user and session) is accepted once")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), promptUsage)
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	ws, sid, text := "", "default", ""
	switch len(pos) {
	case 2:
		ws, text = pos[0], pos[1]
	case 3:
		ws, sid, text = pos[0], pos[1], pos[2]
	default:
		return usageError(fs, "want WORKSPACE [SESSION] TEXT")
	}
	if text, err = readText(text); err != nil {
		return err
	}
	u, err := api.sessionURL(ws, sid, "/prompt")
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hdr := http.Header{}
	if *idem != "" {
		hdr.Set("Idempotency-Key", *idem)
	}
	var acc struct {
		ID string `json:"id"`
	}
	if err := api.call(ctx, http.MethodPost, u, hdr, map[string]string{"text": text}, &acc); err != nil {
		return fmt.Errorf("prompt: %w", err)
	}
	_, err = fmt.Fprintln(stdout, acc.ID)
	return err
}
