// Package web is Tandem's browser client: plain HTML, CSS and ES modules,
// embedded in the binary and served by every node at / (pick or create a
// workspace) and /w/{ws} (the room). No build step, no external fonts,
// scripts or CDNs: the pages work under a Content-Security-Policy that
// allows only the node's own origin.
//
// The modules talk to the node through the JavaScript client,
// @tandem-dev/client (clients/js), served at /static/client.js from the
// bytes package jsclient embeds: the page runs the published client, not a
// copy of it. /static/examples/multiplayer.html is Sandbox Agent's
// multiplayer guide's browser example ported to that client.
package web

import (
	"bytes"
	"embed"
	"io/fs"
	"time"

	jsclient "github.com/tandem-dev/tandem/clients/js"
)

//go:embed static
var static embed.FS

// ClientFile is the name of the JavaScript client in the static tree.
const ClientFile = "client.js"

// Static is the tree served under /static/: web/static and client.js.
func Static() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return withFile{FS: sub, name: ClientFile, data: jsclient.Source}
}

// withFile is an fs.FS with one more file at its root.
type withFile struct {
	fs.FS
	name string
	data []byte
}

func (f withFile) Open(name string) (fs.File, error) {
	if name == f.name {
		return &memFile{Reader: bytes.NewReader(f.data), info: memInfo{name: f.name, size: int64(len(f.data))}}, nil
	}
	return f.FS.Open(name)
}

// memFile is a read-only file in memory; it seeks, as http.FileServer
// needs for ranges and Content-Length.
type memFile struct {
	*bytes.Reader
	info memInfo
}

func (m *memFile) Stat() (fs.FileInfo, error) { return m.info, nil }
func (m *memFile) Close() error               { return nil }

type memInfo struct {
	name string
	size int64
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) Mode() fs.FileMode  { return 0o444 }
func (i memInfo) ModTime() time.Time { return time.Time{} } // as embedded files
func (i memInfo) IsDir() bool        { return false }
func (i memInfo) Sys() any           { return nil }

// CSP is the Content-Security-Policy of every page.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
