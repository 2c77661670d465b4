package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

// definePrompt: tandem prompt WS [SID] TEXT.
func definePrompt(fs *flag.FlagSet) runFunc {
	var api apiFlags
	api.register(fs)
	idem := fs.String("idempotency-key", "", "Idempotency-Key header: the same key (per user and session) is accepted once")
	return func(pos []string, stdout, _ io.Writer) error {
		return prompt(&api, *idem, pos, stdout)
	}
}

func prompt(api *apiFlags, idem string, pos []string, stdout io.Writer) error {
	var err error
	ws, sid, text := "", "default", ""
	switch len(pos) {
	case 2:
		ws, text = pos[0], pos[1]
	case 3:
		ws, sid, text = pos[0], pos[1], pos[2]
	default:
		return usageErrorf("want WORKSPACE [SESSION] TEXT, got %d arguments", len(pos))
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
	if idem != "" {
		hdr.Set("Idempotency-Key", idem)
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
