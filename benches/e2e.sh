#!/usr/bin/env bash
# End-to-end benchmark: MLLP in -> filter -> 30-line Rhai transform -> durable queue -> MLLP out
# to a sink, driven by junction-load at 1, 8 and 32 connections, with `junction listen` (no store,
# no scripts) measured in the same run as the ceiling.
#   benches/e2e.sh [messages-per-run] [repeats]
# JUNCTION_BIN=path runs another build of the engine and sink (e.g. one built with --no-default-features,
# the system allocator) against the same load generator, for side-by-side comparisons.
# E2E_PIPELINE=no-scripts drops the filter and transform; E2E_PIPELINE=drop-all keeps every message out
# with a channel filter (stored, recorded, never queued), to show what the store alone costs.
set -euo pipefail
cd "$(dirname "$0")/.."
messages=${1:-20000}
repeat=${2:-3}
cargo build --release -p junction-cli -p junction-benches --bins >/dev/null
bin=$PWD/target/release
junction=${JUNCTION_BIN:-$bin/junction}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/channels" "$work/scripts"
cp benches/e2e/*.rhai "$work/scripts/"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
in_port=$(free_port); sink_port=$(free_port)
case ${E2E_PIPELINE:-full} in
  full) filter="filter: scripts/filter.rhai"; transform="transform: scripts/transform.rhai" ;;
  no-scripts) filter=""; transform="" ;;
  drop-all) filter="filter: 'false'"; transform="" ;;
  *) echo "E2E_PIPELINE must be full, no-scripts or drop-all" >&2; exit 2 ;;
esac
cat > "$work/channels/bench.yaml" <<YAML
name: bench
source:
  mllp: { listen: "127.0.0.1:$in_port", max_connections: 128 }
  ack: stored
$filter
destinations:
  - name: lab
    ${transform:-# no transform}
    mllp: { connect: "127.0.0.1:$sink_port" }
YAML
"$junction" listen --port "$sink_port" --out /dev/null --max-connections 8 2>"$work/sink.log" &
"$junction" run --channels "$work/channels" --data "$work/data" 2>"$work/engine.log" &
for _ in $(seq 100); do (: >/dev/tcp/127.0.0.1/$in_port) 2>/dev/null && break; sleep 0.1; done
"$bin/junction-load" --to "127.0.0.1:$in_port" --junction "$junction" \
  --connections 1,8,32 --messages "$messages" --repeat "$repeat"
sleep 2
echo "engine errors/warnings: $(grep -c -E 'WARN|ERROR' "$work/engine.log" || true)"
