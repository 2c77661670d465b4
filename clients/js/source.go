// Package jsclient holds the JavaScript client, @tandem-dev/client
// (src/index.js), for the Go side: the node serves these very bytes to
// browsers at /static/client.js (see package web), so the web client and
// the npm package are one file and cannot drift apart. Its tests
// (js_test.go) run clients/js/test with node --test.
package jsclient

import _ "embed"

// Source is src/index.js, the client's only module.
//
//go:embed src/index.js
var Source []byte
