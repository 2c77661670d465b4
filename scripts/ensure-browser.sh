#!/usr/bin/env bash
# Installs what the web client's browser tests need (internal/e2e/browser_test.go):
# Debian's Chromium at /usr/bin/chromium (apt-get; never a downloaded
# browser build) and the npm packages of internal/e2e/browser from its lock file
# (npm ci). Idempotent: does nothing when both are in place.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [[ ! -x /usr/bin/chromium ]]; then
	echo "installing chromium (apt-get)" >&2
	SUDO=""
	[[ "$(id -u)" == 0 ]] || SUDO=sudo
	export DEBIAN_FRONTEND=noninteractive
	if ! $SUDO apt-get install -y -qq chromium >/dev/null; then
		$SUDO apt-get update -qq
		$SUDO apt-get install -y -qq chromium >/dev/null
	fi
fi
/usr/bin/chromium --version >/dev/null 2>&1 || { echo "ensure-browser: /usr/bin/chromium does not run" >&2; exit 1; }

dir="$repo/internal/e2e/browser"
stamp="$dir/node_modules/.package-lock.json"
if [[ ! -f "$stamp" || "$dir/package-lock.json" -nt "$stamp" ]]; then
	command -v npm >/dev/null || { echo "ensure-browser: npm is required" >&2; exit 1; }
	echo "installing the browser tests' npm packages (npm ci in internal/e2e/browser)" >&2
	(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
