#!/usr/bin/env bash
# Measures the append script next to redis-benchmark's XADD on the same
# redis-server in the same run: one server on a free loopback port, then
# redis-benchmark (50 clients, no pipelining), then the Go benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-redis.sh >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save '' --dir "$dir" --daemonize no --loglevel warning &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
echo "== redis-benchmark XADD, 50 clients, no pipelining (127.0.0.1:$port)"
redis-benchmark -h 127.0.0.1 -p "$port" -c 50 -n 200000 -P 1 -q XADD benchstream "*" f v | tr "\r" "\n" | grep "per second"
redis-cli -p "$port" del benchstream >/dev/null
echo "== Tandem append script"
TANDEM_BENCH_REDIS_ADDR=127.0.0.1:$port go test -run '^$' -bench 'BenchmarkAppend' -benchtime "${BENCHTIME:-3s}" ./eventlog/
echo "== SSE encoder"
go test -run '^$' -bench 'BenchmarkAppendEvent' -benchmem ./sse/
