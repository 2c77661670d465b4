#!/usr/bin/env bash
# make run: a local redis-server (appendonly, data under .cache/run) and one
# Tandem node in the foreground. Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.cache/run
mkdir -p "$dir"
port=${REDIS_PORT:-6379}
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if redis-cli -p "$port" ping >/dev/null 2>&1; then
  echo "using the redis-server already answering on 127.0.0.1:$port"
else
  redis-server --port "$port" --bind 127.0.0.1 --dir "$PWD/$dir" --appendonly yes \
    --save '' --daemonize no --loglevel warning --logfile "$PWD/$dir/redis.log" &
  pids+=($!)
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  echo "redis-server on 127.0.0.1:$port (data in $dir)"
fi

export TANDEM_REDIS_URL=${TANDEM_REDIS_URL:-redis://127.0.0.1:$port/0}
# The node runs the Sandbox Agent server (local provider) with our scripted
# agent installed as its "mock" agent, unless a TANDEM_SANDBOX_URL is given.
if [ -z "${TANDEM_SANDBOX_URL:-}" ]; then
  export TANDEM_SANDBOX_AGENT_BIN=${TANDEM_SANDBOX_AGENT_BIN:-$(scripts/install-sandbox-agent.sh)}
  export TANDEM_AGENT_LAUNCHER=${TANDEM_AGENT_LAUNCHER:-$PWD/bin/tandem-mockagent}
  export TANDEM_SANDBOX_DATA_DIR=${TANDEM_SANDBOX_DATA_DIR:-$PWD/$dir/sandbox}
fi
export TANDEM_ADDR=${TANDEM_ADDR:-127.0.0.1:8080}
echo "tandem on http://$TANDEM_ADDR — try:"
echo "  curl -X PUT http://$TANDEM_ADDR/v1/workspaces/demo"
echo "  curl -N http://$TANDEM_ADDR/v1/workspaces/demo/sessions/default/events/stream"
echo "  curl -X POST -H 'Content-Type: application/json' -d '{\"text\":\"hello\"}' http://$TANDEM_ADDR/v1/workspaces/demo/sessions/default/prompt"
bin/tandem serve &
pids+=($!)
wait -n "${pids[@]}"
