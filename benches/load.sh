#!/usr/bin/env bash
# Load recipe: `llmgate mock` + the gateway on conf/bench.yaml, driven by wrk on
# loopback for a bounded time. Prints RPS, latency percentiles, gateway CPU per
# request and RSS, for plain and streaming requests; then the cost of a failover
# after a refused connection (1 connection, vs plain); then RSS with STREAMS
# long-lived streams open at once.
#   benches/load.sh                 (DURATION=10s CONNS=64 STREAMS=10000 by default)
# STREAMS needs ~2 file descriptors per stream in the gateway: the script raises
# `ulimit -n` as far as it may and lowers STREAMS to fit if it must.
# Needs wrk (apt-get install wrk) and a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
STREAMS=${STREAMS:-10000}
BIN=${BIN:-target/release/llmgate}
KEY=sk-bench-client-key
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
run=$(mktemp -d)
trap 'kill $MOCK $LONG $GW 2>/dev/null || true; rm -rf "$run"' EXIT
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fit=$(( ($(ulimit -n) - 200) / 2 ))
[ "$STREAMS" -gt "$fit" ] && { echo "ulimit -n $(ulimit -n): STREAMS lowered to $fit" >&2; STREAMS=$fit; }
"$BIN" mock --listen 127.0.0.1:18080 --stream-events 50 >"$run/mock.log" 2>&1 & MOCK=$!
# 100 events 100 ms apart: each stream stays open ~10 s.
"$BIN" mock --listen 127.0.0.1:18081 --stream-events 100 --event-delay 100ms >"$run/long.log" 2>&1 & LONG=$!
"$BIN" -c conf/bench.yaml >"$run/gw.log" 2>&1 & GW=$!
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:18084/health && break; sleep 0.1; done
cpu() { awk '{print $14+$15}' /proc/$GW/stat; }
rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' /proc/$GW/status; }
# script FILE MODEL STREAM: a wrk script posting one chat request.
script() {
  cat >"$1" <<LUA
wrk.method = "POST"
wrk.body = '{"model":"$2","stream":$3,"messages":[{"role":"user","content":"hello"}]}'
wrk.headers["Authorization"] = "Bearer $KEY"
wrk.headers["Content-Type"] = "application/json"
LUA
}
# load KIND MODEL STREAM CONNS: one bounded wrk run, one line of results.
load() {
  local kind=$1 model=$2 stream=$3 conns=$4
  script "$run/req.lua" "$model" "$stream"
  local before after reqs rps p50 p99 errs us
  before=$(cpu)
  wrk -t"$(( conns > 1 ? 2 : 1 ))" -c"$conns" -d"$DURATION" --latency -s "$run/req.lua" http://127.0.0.1:18084/v1/chat/completions >"$run/wrk.txt"
  after=$(cpu)
  reqs=$(awk '/requests in/ {print $1}' "$run/wrk.txt")
  rps=$(awk '/Requests\/sec/ {print $2}' "$run/wrk.txt")
  p50=$(awk '$1=="50%" {print $2}' "$run/wrk.txt"); p99=$(awk '$1=="99%" {print $2}' "$run/wrk.txt")
  errs=$(grep -E "Non-2xx|Socket errors" "$run/wrk.txt" || true)
  us=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$reqs" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
  echo "$kind: c=$conns $DURATION  RPS $rps  p50 $p50  p99 $p99  gateway CPU ${us} us/req  RSS $(rss) MB ${errs:+ ($errs)}"
}
load plain gpt-4o-mini false "$CONNS"
load stream gpt-4o-mini-sse true "$CONNS"
load plain gpt-4o-mini false 1
load failover gpt-4o-mini-failover false 1

# STREAMS clients each hold one ~10 s stream (wrk waits for each answer); RSS
# and open client connections are read while all of them are in flight.
script "$run/long.lua" gpt-4o-mini-long-sse true
idle=$(rss)
wrk -t2 -c"$STREAMS" -d9s --timeout 30s -s "$run/long.lua" http://127.0.0.1:18084/v1/chat/completions >"$run/long.txt" 2>&1 &
WRK=$!
sleep 7
open=$(ss -Htn state established '( sport = :18084 )' | wc -l)
# Upstream connections show how many streams the gateway is really serving (a
# client connection can still wait in the accept queue).
up=$(ss -Htn state established '( dport = :18081 )' | wc -l)
echo "streams: $open client streams open at once, $up upstream  gateway RSS $(rss) MB (before: $idle MB)"
wait $WRK || true
