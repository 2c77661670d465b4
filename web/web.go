// Package web is Tandem's browser client: plain HTML, CSS and ES modules,
// embedded in the binary and served by every node at / (pick or create a
// workspace) and /w/{ws} (the room). No build step, no external fonts,
// scripts or CDNs: the pages work under a Content-Security-Policy that
// allows only the node's own origin.
package web

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// Static is the tree served under /static/.
func Static() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}

// CSP is the Content-Security-Policy of every page.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
