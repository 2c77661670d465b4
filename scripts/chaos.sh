#!/usr/bin/env bash
# make chaos: Tandem's fault campaign. Installs what it needs when missing
# (nginx and redis-server from Debian's packages, the pinned Sandbox Agent
# binary, the Node.js EventSource client's packages), builds the binaries,
# and runs cmd/tandem-chaos: redis-server, the Sandbox Agent server, three
# nodes and nginx on 127.0.0.1, clients through nginx, randomized faults,
# then the checker. Exits non-zero when the checker finds a violation.
#
# Knobs (environment):
#   CHAOS_DURATION  fault phase of the campaign (default 3m)
#   CHAOS_SEED      seed to replay (default: from the clock, printed)
#   CHAOS_LONG=1    the long campaign: at least 300 faults (CHAOS_FAULTS,
#                   default 300), bounded by CHAOS_DURATION (default 60m)
#   CHAOS_FAULTS    end the fault phase after this many faults
#   CHAOS_BREAK     deliberately break a guarantee to see the checker fail:
#                   client-gap (the Go subscribers skip an event) or
#                   claim-ack (the nodes are built with the
#                   tandem_broken_claimack tag: a new owner acknowledges
#                   the prompts it claims without dispatching them)
#   CHAOS_ARGS      more flags for tandem-chaos (see tandem-chaos -h), e.g.
#                   '-kinds lossy,partition' for some fault kinds only
set -euo pipefail
cd "$(dirname "$0")/.."

# nginx from Debian's package; the campaign runs its own instance with its
# own config, prefix and pid file.
nginx_bin=$(scripts/ensure-nginx.sh)
scripts/ensure-redis.sh >/dev/null
sandbox_bin=$(scripts/install-sandbox-agent.sh)
# The EventSource client's packages, from its lockfile (npm ci); node_modules
# is ignored by git.
scripts/ensure-node-client.sh

out=.cache/chaos/bin
mkdir -p "$out"
tags=()
[ "${CHAOS_BREAK:-}" = claim-ack ] && tags=(-tags tandem_broken_claimack)
go build "${tags[@]}" -o "$out/tandem" ./cmd/tandem
go build -o "$out/tandem-mockagent" ./cmd/tandem-mockagent
go build -o "$out/tandem-chaos" ./cmd/tandem-chaos

args=()
if [ "${CHAOS_LONG:-0}" = 1 ]; then
  args+=(-duration "${CHAOS_DURATION:-60m}" -faults "${CHAOS_FAULTS:-300}")
else
  args+=(-duration "${CHAOS_DURATION:-3m}")
  [ -n "${CHAOS_FAULTS:-}" ] && args+=(-faults "$CHAOS_FAULTS")
fi
[ -n "${CHAOS_SEED:-}" ] && args+=(-seed "$CHAOS_SEED")
# claim-ack is broken in the nodes' build, not in the campaign's clients
# (tandem-chaos reads CHAOS_BREAK too).
if [ "${CHAOS_BREAK:-}" = claim-ack ]; then
  export CHAOS_BREAK=
elif [ -n "${CHAOS_BREAK:-}" ]; then
  args+=(-break "$CHAOS_BREAK")
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/tandem-chaos.XXXXXX")
status=0
# shellcheck disable=SC2086
"$out/tandem-chaos" "${args[@]}" -dir "$dir" \
  -tandem "$out/tandem" -mockagent "$out/tandem-mockagent" -sandbox-agent "$sandbox_bin" \
  -nginx "$nginx_bin" -node-client internal/chaos/node/client.mjs ${CHAOS_ARGS:-} || status=$?
# The logs and Redis's append-only file are kept for a failed campaign.
if [ "$status" = 0 ]; then rm -rf "$dir"; else echo "chaos: logs and data kept in $dir" >&2; fi
exit "$status"
