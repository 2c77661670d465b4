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
export TANDEM_ADDR=${TANDEM_ADDR:-127.0.0.1:8080}
echo "tandem on http://$TANDEM_ADDR"
bin/tandem serve &
pids+=($!)
wait -n "${pids[@]}"
