#!/usr/bin/env bash
# Installs promtool (Debian's prometheus package) when it is missing, and
# prints its path. deploy/deploy_test.go runs `promtool check rules` and
# `promtool test rules` on deploy/prometheus/. Idempotent.
#
# Only promtool is wanted: recommends (prometheus-node-exporter, another
# daemon) are not installed, and the prometheus server the package may
# start (systemd, or its init script where policy-rc.d allows it) is
# stopped and disabled again, so that installing leaves nothing running.
set -euo pipefail
if ! command -v promtool >/dev/null 2>&1; then
  echo "installing promtool (apt-get install prometheus)" >&2
  SUDO=""
  [[ "$(id -u)" == 0 ]] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  install() { $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
  if ! install; then
    $SUDO apt-get update -qq
    install
  fi
  # Stop the server the package started, if it started one: only here,
  # right after installing, never a Prometheus that was there before.
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
  elif [[ -x /etc/init.d/prometheus ]]; then
    $SUDO /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    command -v update-rc.d >/dev/null 2>&1 && $SUDO update-rc.d prometheus disable >/dev/null 2>&1 || true
  fi
fi
command -v promtool
