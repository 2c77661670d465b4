package metrics

import "net/http"

// Label values chosen by callers or sandboxes (the request method, an
// agent's stopReason) come from closed sets: anything else counts as
// "other", so that nobody outside the node can add series, which a
// registry keeps forever.

// Other is the label value of everything outside a closed set.
const Other = "other"

// MethodLabel returns method when it is one of the methods HTTP defines
// (RFC 9110, plus PATCH), else Other.
func MethodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return method
	}
	return Other
}

// StopReasonLabel returns reason when it is one of ACP's stop reasons,
// or "error" (the node's own, for a turn the agent never ended), else
// Other.
func StopReasonLabel(reason string) string { return stopLabel(reason) }

// stopLabels is every value of the stop_reason label.
var stopLabels = []string{"end_turn", "max_tokens", "max_turn_requests", "refusal", "cancelled", "error", Other}

func stopLabel(reason string) string {
	switch reason {
	case "end_turn", "max_tokens", "max_turn_requests", "refusal", "cancelled", "error":
		return reason
	}
	return Other
}
