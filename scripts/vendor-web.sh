#!/usr/bin/env bash
# vendor-web.sh: (re)vendors the web client's two front-end libraries into
# web/static/vendor/, as plain ES module files with their licences beside
# them (no build step: the node serves them as they are, under its CSP).
# The versions are pinned here; change them here and run this script again:
#
#   scripts/vendor-web.sh
#
# It uses `npm pack` (the npm registry, through npm's own configuration),
# copies each package's ES module build and LICENSE, and writes
# web/static/vendor/VERSIONS with each file's SHA-256.
set -euo pipefail

MARKED=18.3.0
DOMPURIFY=3.5.0

root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/web/static/vendor"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cd "$tmp"
npm pack --silent "marked@$MARKED" "dompurify@$DOMPURIFY" >/dev/null
mkdir marked dompurify
tar xzf "marked-$MARKED.tgz" -C marked
tar xzf "dompurify-$DOMPURIFY.tgz" -C dompurify

mkdir -p "$out"
cp marked/package/lib/marked.esm.js "$out/marked.esm.js"
cp marked/package/LICENSE "$out/marked.LICENSE"
# DOMPurify is dual-licensed (Apache-2.0 or MPL-2.0): both texts come along.
cp dompurify/package/dist/purify.es.mjs "$out/purify.es.js"
cp dompurify/package/LICENSE "$out/dompurify.LICENSE"
cp dompurify/package/LICENSE-MPL "$out/dompurify.LICENSE-MPL"

{
  echo "marked $MARKED (MIT): marked.esm.js from lib/marked.esm.js, marked.LICENSE"
  echo "dompurify $DOMPURIFY (Apache-2.0 OR MPL-2.0): purify.es.js from dist/purify.es.mjs, dompurify.LICENSE, dompurify.LICENSE-MPL"
  echo "vendored by scripts/vendor-web.sh; sha256:"
  (cd "$out" && sha256sum marked.esm.js purify.es.js)
} >"$out/VERSIONS"
echo "vendored marked $MARKED and dompurify $DOMPURIFY into $out"
