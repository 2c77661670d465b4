// Package retry is the one backoff of Tandem's own reconnect and restart
// loops: gopkg.in/cenkalti/backoff.v1 (already in the module for the SSE
// client), set up the way those loops want it. The loops that are
// hand-written on purpose say why where they are.
//
// # Concurrency properties
//
// A backoff is not safe for concurrent use: each loop owns its own.
package retry

import (
	"time"

	"gopkg.in/cenkalti/backoff.v1"
)

// Exponential waits first, then twice as long after every failure, at most
// most, and never gives up (NextBackOff never returns backoff.Stop); Reset
// starts again from first. It has no jitter: callers that want some add
// their own (the fault campaign draws it from its seeded source, so that a
// seed replays a campaign).
func Exponential(first, most time.Duration) *backoff.ExponentialBackOff {
	b := &backoff.ExponentialBackOff{
		InitialInterval: first,
		Multiplier:      2,
		MaxInterval:     max(first, most),
		Clock:           backoff.SystemClock,
		// RandomizationFactor 0: exactly first, 2*first, 4*first ... most.
		// MaxElapsedTime 0: never Stop.
	}
	b.Reset() // without it the first interval would be 0, and all after it
	return b
}
