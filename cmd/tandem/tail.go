package main

import (
	"bytes"
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
	"time"

	"github.com/tandem-dev/tandem/streamclient"
)

// tailFlags are tail's own flags.
type tailFlags struct {
	api      apiFlags
	asJSON   bool
	cursor   string
	sinceNow bool
}

// defineTail: tandem tail WS [SID].
func defineTail(fs *flag.FlagSet) runFunc {
	var f tailFlags
	f.api.register(fs)
	fs.BoolVar(&f.asJSON, "json", false, "print each event as one line of JSON (presence updates are left out)")
	fs.StringVar(&f.cursor, "cursor", "", "start after this event id (what --json prints as \"id\")")
	fs.StringVar(&f.cursor, "from", "", "the same as --cursor")
	fs.BoolVar(&f.sinceNow, "since-now", false, "start after the session's latest event: only what happens from now on")
	return func(pos []string, stdout, stderr io.Writer) error {
		return tail(&f, pos, stdout, stderr)
	}
}

func tail(f *tailFlags, pos []string, stdout, stderr io.Writer) error {
	api, cursor := &f.api, f.cursor
	ws, sid := "", "default"
	switch len(pos) {
	case 1:
		ws = pos[0]
	case 2:
		ws, sid = pos[0], pos[1]
	default:
		return usageErrorf("want WORKSPACE [SESSION], got %d arguments", len(pos))
	}
	if f.sinceNow && cursor != "" {
		return usageErrorf("--since-now and --cursor do not go together")
	}
	streamURL, err := api.sessionURL(ws, sid, "/events/stream")
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if f.sinceNow {
		if cursor, err = latest(ctx, api, ws, sid); err != nil {
			return err
		}
	}

	r := newRenderer(stdout)
	defer r.Flush()
	down := false // a notice about the lost connection was printed
	err = streamclient.Follow(ctx, streamclient.Config{
		URL:    streamURL,
		Cursor: cursor,
		Header: api.header(),
		Retry:  500 * time.Millisecond,
		OnDisconnect: func(err error) {
			if ctx.Err() == nil && !down {
				down = true
				why := "the node closed the stream"
				if err != nil {
					why = err.Error()
				}
				fmt.Fprintf(stderr, "tandem: connection lost (%s); reconnecting\n", why)
			}
		},
	}, func(ev streamclient.Event) error {
		if down {
			down = false
			fmt.Fprintln(stderr, "tandem: reconnected")
		}
		if f.asJSON {
			return printJSON(stdout, ev)
		}
		r.Render(ev.Type, ev.Data)
		return nil
	})
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil // interrupted
	}
	return err
}

// printJSON writes an event's data on one line. Persisted events carry
// their id and type already; a reset gets its type added. Presence updates
// are not events of the session and are left out.
func printJSON(w io.Writer, ev streamclient.Event) error {
	data := bytes.TrimSpace(ev.Data)
	switch {
	case ev.Type == "presence":
		return nil
	case ev.ID == "" && len(data) > 1 && data[0] == '{':
		sep := ","
		if bytes.Equal(bytes.TrimSpace(data[1:]), []byte("}")) {
			sep = ""
		}
		data = append([]byte(fmt.Sprintf(`{"type":%q%s`, ev.Type, sep)), data[1:]...)
	}
	_, err := fmt.Fprintf(w, "%s\n", data)
	return err
}

// latest returns the id of the session's newest event ("" when it has
// none), paging through its history.
func latest(ctx context.Context, api *apiFlags, ws, sid string) (string, error) {
	u, err := api.sessionURL(ws, sid, "/events")
	if err != nil {
		return "", err
	}
	last := ""
	for page := 0; page < 1_000_000; page++ {
		var p struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
			NextCursor string `json:"nextCursor"`
		}
		q := url.Values{"limit": {"1000"}}
		if last != "" {
			q.Set("cursor", last)
		}
		err := api.call(ctx, http.MethodGet, u+"?"+q.Encode(), nil, nil, &p)
		var pe *problem
		if errors.As(err, &pe) && pe.Status == http.StatusGone && pe.Oldest != "" && last != pe.Oldest {
			last = pe.Oldest // older events were trimmed: go on from the oldest kept
			continue
		}
		if err != nil {
			return "", fmt.Errorf("find the latest event: %w", err)
		}
		if len(p.Items) > 0 {
			last = p.Items[len(p.Items)-1].ID
		}
		if p.NextCursor == "" {
			return last, nil
		}
	}
	return "", errors.New("find the latest event: too many pages")
}
