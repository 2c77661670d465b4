package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
)

const approveUsage = `usage: tandem approve [flags] WORKSPACE [SESSION] REQUEST_ID OPTION_ID

Answers the agent's permission request REQUEST_ID (tandem tail shows the
requests and their options) with the option OPTION_ID, or with "cancel" to
cancel it. The first answer wins: an answer after another one fails and
says who answered and how.

flags:
`

// approveCmd: tandem approve WS [SID] REQUEST_ID OPTION_ID.
func approveCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("approve", flag.ContinueOnError)
	var api apiFlags
	api.register(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), approveUsage)
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	ws, sid, rid, opt := "", "default", "", ""
	switch len(pos) {
	case 3:
		ws, rid, opt = pos[0], pos[1], pos[2]
	case 4:
		ws, sid, rid, opt = pos[0], pos[1], pos[2], pos[3]
	default:
		return usageError(fs, "want WORKSPACE [SESSION] REQUEST_ID OPTION_ID")
	}
	u, err := api.sessionURL(ws, sid, "/permissions/"+url.PathEscape(rid))
	if err != nil {
		return err
	}
	body := map[string]string{"optionId": opt}
	if opt == "cancel" {
		body = map[string]string{"outcome": "cancelled"}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var res struct {
		OptionID string `json:"optionId"`
		Outcome  string `json:"outcome"`
		By       string `json:"by"`
	}
	if err := api.call(ctx, http.MethodPost, u, nil, body, &res); err != nil {
		return fmt.Errorf("approve: %w", err)
	}
	how := res.Outcome
	if res.OptionID != "" {
		how = res.OptionID
	}
	_, err = fmt.Fprintf(stdout, "%s: %s by %s\n", rid, how, res.By)
	return err
}
