package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/tandem-dev/tandem/acp"
)

// PromptConfig sizes the prompt scenario.
type PromptConfig struct {
	Prompts int // measured prompts on each path (default 50)
	Warmup  int // prompts before measuring (default 5)
	Chunks  int // chunks of each reply (default 5)
}

// PromptResult compares prompt → first chunk → end of turn through Tandem
// with the same prompts sent straight to the Sandbox Agent server.
type PromptResult struct {
	Prompts                              int
	DirectFirstP50Ms, DirectFirstP99Ms   float64
	DirectEndP50Ms, DirectEndP99Ms       float64
	TandemFirstP50Ms, TandemFirstP99Ms   float64
	TandemEndP50Ms, TandemEndP99Ms       float64
	OverheadFirstP50Ms, OverheadEndP50Ms float64
}

// Prompt runs the prompt scenario; the stack needs its Sandbox Agent
// server.
func Prompt(ctx context.Context, s *Stack, cfg PromptConfig, logf func(string, ...any)) (PromptResult, error) {
	if cfg.Prompts == 0 {
		cfg.Prompts = 50
	}
	if cfg.Warmup == 0 {
		cfg.Warmup = 5
	}
	if cfg.Chunks == 0 {
		cfg.Chunks = 5
	}
	if cfg.Prompts > 1000 {
		return PromptResult{}, fmt.Errorf("prompt: at most 1000 prompts")
	}
	if s.SandboxURL == "" {
		return PromptResult{}, fmt.Errorf("prompt: the stack has no Sandbox Agent server")
	}
	res := PromptResult{Prompts: cfg.Prompts}
	text := func(i int) string { return fmt.Sprintf("[chunks=%d] [delay=0ms] ping %d", cfg.Chunks, i) }

	// Straight to Sandbox Agent.
	client, err := acp.New(acp.Config{BaseURL: s.SandboxURL})
	if err != nil {
		return res, err
	}
	var firstChunk atomic.Int64 // unix ns of the first chunk since armed; 0: armed
	firstChunk.Store(-1)
	conn, err := client.Dial(ctx, acp.ConnConfig{
		ServerID: fmt.Sprintf("bench-direct-%d", time.Now().UnixNano()),
		Agent:    "mock",
		OnMessage: func(ev acp.Event, env acp.Envelope) error {
			if env.Method == acp.MethodSessionUpdate && firstChunk.Load() == 0 {
				var n acp.SessionNotification
				if json.Unmarshal(env.Params, &n) == nil {
					var u struct{ SessionUpdate string }
					if json.Unmarshal(n.Update, &u) == nil && u.SessionUpdate == "agent_message_chunk" {
						firstChunk.CompareAndSwap(0, time.Now().UnixNano())
					}
				}
			}
			return nil
		},
	})
	if err != nil {
		return res, err
	}
	defer func() {
		conn.Close()
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		client.Delete(dctx, conn.ServerID())
		cancel()
	}()
	if _, err := conn.Call(ctx, acp.MethodInitialize, acp.InitializeParams{ProtocolVersion: acp.ProtocolVersion}); err != nil {
		return res, err
	}
	r, err := conn.Call(ctx, acp.MethodSessionNew, acp.NewSessionParams{Cwd: "/tmp"})
	if err != nil {
		return res, err
	}
	var ns acp.NewSessionResult
	json.Unmarshal(r, &ns)
	var dFirst, dEnd durations
	for i := 0; i < cfg.Warmup+cfg.Prompts; i++ {
		firstChunk.Store(0)
		start := time.Now()
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := conn.Call(pctx, acp.MethodSessionPrompt, acp.PromptParams{SessionID: ns.SessionID, Prompt: []acp.ContentBlock{acp.TextBlock(text(i))}})
		cancel()
		if err != nil {
			return res, fmt.Errorf("direct prompt %d: %w", i, err)
		}
		end := time.Since(start)
		if i >= cfg.Warmup {
			dFirst = append(dFirst, time.Unix(0, firstChunk.Load()).Sub(start))
			dEnd = append(dEnd, end)
		}
	}

	// Through Tandem: POST the prompt, follow the stream.
	if err := createWorkspace(ctx, s.URL, "prompt"); err != nil {
		return res, err
	}
	c, err := dialSSE(ctx, s.URL, "prompt", "default", "")
	if err != nil {
		return res, err
	}
	defer c.close()
	var tFirst, tEnd durations
	for i := 0; i < cfg.Warmup+cfg.Prompts; i++ {
		start := time.Now()
		if err := call(ctx, "POST", s.URL+"/v1/workspaces/prompt/sessions/default/prompt", map[string]string{"text": text(i)}, nil); err != nil {
			return res, err
		}
		var first time.Duration
		deadline := time.Now().Add(30 * time.Second)
		for {
			if time.Now().After(deadline) {
				return res, fmt.Errorf("tandem prompt %d: no end of turn in 30s", i)
			}
			ev, err := c.next()
			if err != nil {
				return res, fmt.Errorf("tandem prompt %d: %w", i, err)
			}
			if ev.chunk && first == 0 {
				first = time.Since(start)
			}
			if ev.turnEnded {
				break
			}
		}
		if i >= cfg.Warmup {
			tFirst = append(tFirst, first)
			tEnd = append(tEnd, time.Since(start))
		}
	}
	res.DirectFirstP50Ms, res.DirectFirstP99Ms = ms(dFirst.q(.5)), ms(dFirst.q(.99))
	res.DirectEndP50Ms, res.DirectEndP99Ms = ms(dEnd.q(.5)), ms(dEnd.q(.99))
	res.TandemFirstP50Ms, res.TandemFirstP99Ms = ms(tFirst.q(.5)), ms(tFirst.q(.99))
	res.TandemEndP50Ms, res.TandemEndP99Ms = ms(tEnd.q(.5)), ms(tEnd.q(.99))
	res.OverheadFirstP50Ms = res.TandemFirstP50Ms - res.DirectFirstP50Ms
	res.OverheadEndP50Ms = res.TandemEndP50Ms - res.DirectEndP50Ms
	logf("prompt: first chunk p50 %.1f ms direct, %.1f ms through Tandem", res.DirectFirstP50Ms, res.TandemFirstP50Ms)
	return res, nil
}
