//go:build tandem_broken_claimack

package workspace

// The deliberately broken build: see broken.go.
const brokenClaimAck = true
