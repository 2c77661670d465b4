package workspace

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/tandem-dev/tandem/acp"
)

// healthLoop checks the sandbox every HealthInterval and reports each
// result to the owner.
func (o *owner) healthLoop(ctx context.Context) {
	t := time.NewTicker(o.m.cfg.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		client := o.sandbox()
		if client == nil {
			continue
		}
		hctx, cancel := context.WithTimeout(ctx, min(o.m.cfg.HealthInterval, 2*time.Second))
		err := client.Health(hctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		o.report(func(ctx context.Context) { o.healthResult(ctx, err) })
	}
}

// healthResult counts failures; after HealthFailures in a row it records
// the sandbox as unhealthy and asks for it to be restarted; the first
// success after that records the recovery.
func (o *owner) healthResult(ctx context.Context, err error) {
	if err == nil {
		o.healthFails = 0
		if o.unhealthy && !o.ensuring {
			o.unhealthy = false
			o.logger.Info("sandbox recovered")
			o.statusAll(ctx, StatusSandboxRecovered, nil)
			_ = o.m.store.SetOwnerHealth(ctx, o.ws, "ok")
			for _, s := range o.sessions {
				if s.conn == nil && !s.opening && s.rec.DestroyedAt == nil && (s.turn != nil || len(s.queue) > 0 || s.restore) {
					o.open(ctx, s)
				}
			}
		}
		return
	}
	o.healthFails++
	o.m.obs.HealthCheckFailed()
	if o.healthFails < o.m.cfg.HealthFailures || o.unhealthy {
		return
	}
	o.unhealthy = true
	o.logger.Warn("sandbox unhealthy", slog.Int("failures", o.healthFails), slog.Any("err", err))
	o.statusAll(ctx, StatusSandboxUnhealthy, map[string]any{"failures": o.healthFails, "error": acp.Describe(err)})
	_ = o.m.store.SetOwnerHealth(ctx, o.ws, "unhealthy")
	if o.m.sandboxes == nil {
		return
	}
	o.ensuring = true
	sb := o.meta.Sandbox
	o.spawn(func() {
		ectx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		err := o.m.sandboxes.EnsureServer(ectx, sb)
		o.report(func(context.Context) {
			o.ensuring = false
			o.m.obs.SandboxRestarted(err == nil)
			if err != nil && !errors.Is(err, context.Canceled) {
				o.logger.Warn("sandbox could not be restarted", slog.Any("err", err))
			}
		})
	})
}

// statusAll appends a session.status entry to every live session the owner
// has loaded (the default session at least, when there is none).
func (o *owner) statusAll(ctx context.Context, status string, detail map[string]any) {
	found := false
	for _, s := range o.sessions {
		if s.rec.DestroyedAt != nil {
			continue
		}
		found = true
		if _, err := o.appendTo(ctx, s, nil, "", statusRecord(status, detail)); o.stale(err) {
			return
		}
	}
	if !found {
		if _, err := o.log().Append(ctx, o.ws, DefaultSession, o.epoch, statusRecord(status, detail)); o.stale(err) {
			return
		}
	}
}
