#!/usr/bin/env bash
# Load recipe: `llmgate mock` + the gateway on conf/bench.yaml, driven by wrk on
# loopback for a bounded time. Prints RPS, latency percentiles, gateway CPU per
# request and RSS, for plain and streaming requests.
#   benches/load.sh                 (DURATION=10s CONNS=64 by default)
# Needs wrk (apt-get install wrk) and a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
BIN=${BIN:-target/release/llmgate}
KEY=sk-bench-client-key
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
run=$(mktemp -d)
trap 'kill $MOCK $GW 2>/dev/null || true; rm -rf "$run"' EXIT
"$BIN" mock --listen 127.0.0.1:18080 --stream-events 50 >"$run/mock.log" 2>&1 & MOCK=$!
"$BIN" -c conf/bench.yaml >"$run/gw.log" 2>&1 & GW=$!
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:18084/health && break; sleep 0.1; done
cpu() { awk '{print $14+$15}' /proc/$GW/stat; }
for kind in plain stream; do
  model=gpt-4o-mini; stream=false
  [ $kind = stream ] && { model=gpt-4o-mini-sse; stream=true; }
  cat >"$run/req.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"model":"$model","stream":$stream,"messages":[{"role":"user","content":"hello"}]}'
wrk.headers["Authorization"] = "Bearer $KEY"
wrk.headers["Content-Type"] = "application/json"
LUA
  before=$(cpu)
  wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s "$run/req.lua" http://127.0.0.1:18084/v1/chat/completions >"$run/wrk.txt"
  after=$(cpu)
  reqs=$(awk '/requests in/ {print $1}' "$run/wrk.txt")
  rps=$(awk '/Requests\/sec/ {print $2}' "$run/wrk.txt")
  p50=$(awk '$1=="50%" {print $2}' "$run/wrk.txt"); p99=$(awk '$1=="99%" {print $2}' "$run/wrk.txt")
  errs=$(grep -E "Non-2xx|Socket errors" "$run/wrk.txt" || true)
  hz=$(getconf CLK_TCK)
  us=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$reqs" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
  rss=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' /proc/$GW/status)
  echo "$kind: c=$CONNS $DURATION  RPS $rps  p50 $p50  p99 $p99  gateway CPU ${us} us/req  RSS ${rss} MB ${errs:+ ($errs)}"
done
