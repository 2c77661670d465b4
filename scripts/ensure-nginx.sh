#!/usr/bin/env bash
# Installs nginx from Debian's package when it is missing, and prints its
# path. The load balancer of the fault campaign (make chaos) and of the
# end-to-end EventSource test (internal/e2e/eventsource_test.go) runs as our own
# instance with its own config, prefix and pid file; the system nginx the
# package may start on port 80 is never used. Idempotent.
set -euo pipefail
if ! command -v nginx >/dev/null 2>&1 && [[ ! -x /usr/sbin/nginx ]]; then
  echo "installing nginx (apt-get)" >&2
  SUDO=""
  [[ "$(id -u)" == 0 ]] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  if ! $SUDO apt-get install -y -qq nginx >/dev/null; then
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq nginx >/dev/null
  fi
fi
command -v nginx 2>/dev/null || echo /usr/sbin/nginx
