//go:build !tandem_broken_claimack

package workspace

// brokenClaimAck is set only in the fault campaign's deliberately broken
// build (go build -tags tandem_broken_claimack). That build acknowledges
// every prompt a new owner claims without dispatching it or looking for
// its dispatch. It exists to show that the campaign's checker catches a
// claimed prompt that is acknowledged but never dispatched (see README,
// "Fault campaign").
const brokenClaimAck = false
