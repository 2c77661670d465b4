package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
)

// defineApprove: tandem approve WS [SID] REQUEST_ID OPTION_ID.
func defineApprove(fs *flag.FlagSet) runFunc {
	var api apiFlags
	api.register(fs)
	return func(pos []string, stdout, _ io.Writer) error {
		return approve(&api, pos, stdout)
	}
}

func approve(api *apiFlags, pos []string, stdout io.Writer) error {
	ws, sid, rid, opt := "", "default", "", ""
	switch len(pos) {
	case 3:
		ws, rid, opt = pos[0], pos[1], pos[2]
	case 4:
		ws, sid, rid, opt = pos[0], pos[1], pos[2], pos[3]
	default:
		return usageErrorf("want WORKSPACE [SESSION] REQUEST_ID OPTION_ID, got %d arguments", len(pos))
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
