// Package httpapi is Tandem's HTTP interface: routes, request validation,
// and the one table that maps errors to problem+json responses.
//
// # Usage
//
//	srv := httpapi.New(httpapi.Deps{Events: log, Streams: hub, Ready: pinger}, httpapi.Config{})
//	http.Server{Handler: srv}
//
// # Errors
//
// Every error response is application/problem+json (RFC 9457) with a
// stable type "urn:tandem:error:<code>"; the codes are listed in errors.go.
// Internal error text is logged once and never sent to a client. A refused
// request changes nothing.
//
// # Concurrency properties
//
// A Server is safe for concurrent use. Stream handlers return as soon as
// the fan-out hub has taken over the connection; the hub, not the HTTP
// server, owns open streams, so http.Server.Shutdown does not wait for them:
// stop the hub to end them.
package httpapi
