#!/usr/bin/env bash
# Installs the pinned Sandbox Agent server binary for tests and local runs.
#
# Idempotent: when the binary is already there nothing is fetched. Prints the
# absolute path of the binary on stdout (and nothing else), so callers can do
#   bin="$(scripts/install-sandbox-agent.sh)"
#
# TANDEM_SANDBOX_AGENT_BIN, when set to an executable file, is used as is.
# The package comes from the default npm registry through `npm pack`.
set -euo pipefail

version="0.4.2"
pkg="@sandbox-agent/cli-linux-x64"

if [[ -n "${TANDEM_SANDBOX_AGENT_BIN:-}" ]]; then
	if [[ -x "$TANDEM_SANDBOX_AGENT_BIN" ]]; then
		echo "$TANDEM_SANDBOX_AGENT_BIN"
		exit 0
	fi
	echo "install-sandbox-agent: TANDEM_SANDBOX_AGENT_BIN=$TANDEM_SANDBOX_AGENT_BIN is not executable" >&2
	exit 1
fi

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$repo/.cache/sandbox-agent/$version"
bin="$dir/sandbox-agent"

if [[ -x "$bin" ]]; then
	echo "$bin"
	exit 0
fi

command -v npm >/dev/null || {
	echo "install-sandbox-agent: npm is needed to fetch $pkg@$version" >&2
	exit 1
}

mkdir -p "$dir"
# Work in a private directory next to the target and rename into place at the
# end, so concurrent runs (parallel test binaries) never see a partial file.
tmp="$(mktemp -d "$dir/.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "$pkg@$version" >/dev/null) >&2
tgz="$(ls "$tmp"/*.tgz)"
tar -xzf "$tgz" -C "$tmp" package/bin/sandbox-agent
# The packed binary has no execute bit.
chmod +x "$tmp/package/bin/sandbox-agent"
mv -f "$tmp/package/bin/sandbox-agent" "$bin"

echo "$bin"
