#!/usr/bin/env bash
# Provider formats end to end (docs/performance.md "Provider formats").
# `llmgate mock` is the provider (it answers each endpoint in its provider's
# shape); the gateway runs conf/bench-formats.yaml, one worker thread, pinned
# to core 0 (the mock and wrk share core 1).
#   1. per-request overhead: wrk -c1 5 s, mean latency direct to the mock vs
#      through llmgate, for: chat -> openai (splice), messages -> anthropic
#      (splice), responses -> openai (splice), chat -> anthropic, messages ->
#      openai and responses -> anthropic (translated);
#   2. INSTR=1: callgrind instructions per request of the gateway for the
#      same six (wrk -c16, 1 s warm-up, 4 s measured).
# Needs wrk (and valgrind for INSTR=1) and ../shared/bench (its 1 KB chat body).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=$(cd "${BENCH:-../shared/bench}" && pwd)
BIN=${BIN:-target/release/llmgate}
RUN=$(mktemp -d)
trap 'kill $(cat "$RUN"/*.pid 2>/dev/null) 2>/dev/null || true; sleep 0.3; rm -rf "$RUN"' EXIT
CHAT="$BENCH/load/body.json"
MSGS="$RUN/messages.json"
RESP="$RUN/responses.json"
# The same conversation as an Anthropic Messages body and a Responses body.
python3 - "$CHAT" "$MSGS" "$RESP" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
m = {"model": c["model"], "max_tokens": 256, "messages": []}
r = {"model": c["model"], "max_output_tokens": 256, "input": []}
for msg in c["messages"]:
    if msg["role"] == "system":
        m["system"] = msg["content"]
        r["instructions"] = msg["content"]
    else:
        m["messages"].append({"role": msg["role"], "content": msg["content"]})
        r["input"].append({"role": msg["role"], "content": msg["content"]})
json.dump(m, open(sys.argv[2], "w"))
json.dump(r, open(sys.argv[3], "w"))
PY
taskset -c 1 "$BIN" mock --listen 127.0.0.1:18090 >/dev/null 2>&1 & echo $! >"$RUN/mock.pid"
sleep 0.3
LUA="$BENCH/load/chat.lua"
wrk_run() { # CONNS SECS URL BODY
  (cd "$BENCH/load" && BENCH_BODY="$4" BENCH_KEY=sk-bench-client-key taskset -c 1 wrk -t1 -c"$1" -d"$2"s -s "$LUA" "$3")
}
# name, gateway path, body, model, direct path
CASES="chat_to_openai /v1/chat/completions $CHAT gpt-4o-mini /v1/chat/completions
messages_to_anthropic /v1/messages $MSGS claude /v1/messages
chat_to_anthropic /v1/chat/completions $CHAT claude /v1/messages
messages_to_openai /v1/messages $MSGS gpt-4o-mini /v1/chat/completions
responses_to_openai /v1/responses $RESP gpt-4o-mini /v1/responses
responses_to_anthropic /v1/responses $RESP claude /v1/messages"
body_for() { # BODY MODEL -> file with that model
  local out="$RUN/$(basename "$1").$2"
  python3 -c "import json,sys; b=json.load(open(sys.argv[1])); b['model']=sys.argv[2]; json.dump(b, open(sys.argv[3],'w'))" "$1" "$2" "$out"
  echo "$out"
}
start_gw() { # PREFIX...
  "$@" -c conf/bench-formats.yaml >"$RUN/gw.log" 2>&1 & echo $! >"$RUN/gw.pid"
  for _ in $(seq 200); do curl -s -o /dev/null http://127.0.0.1:18094/health && return; sleep 0.1; done
  echo "gateway did not start"; cat "$RUN/gw.log"; exit 1
}
stop_gw() { kill "$(cat "$RUN/gw.pid")" 2>/dev/null || true; wait "$(cat "$RUN/gw.pid")" 2>/dev/null || true; rm -f "$RUN/gw.pid"; }
mean_us() { awk '/Latency/ {v=$2; if (v ~ /us$/) {sub("us","",v); print v} else if (v ~ /ms$/) {sub("ms","",v); print v*1000} else {sub("s","",v); print v*1e6}}'; }

echo "case                      direct_us  via_us  overhead_us   (wrk -c1 5s, mean latency)"
start_gw taskset -c 0 "$BIN"
while read -r name path body model direct; do
  [ -z "$name" ] && continue
  b=$(body_for "$body" "$model")
  d=$(wrk_run 1 5 "http://127.0.0.1:18090$direct" "$b" | mean_us)
  v=$(wrk_run 1 5 "http://127.0.0.1:18094$path" "$b" | mean_us)
  awk -v n="$name" -v d="$d" -v v="$v" 'BEGIN {printf "%-25s %9.1f %7.1f %9.1f\n", n, d, v, v - d}'
done <<<"$CASES"
stop_gw

if [ "${INSTR:-0}" = 1 ]; then
  echo "case                      instructions/request (callgrind, gateway only)"
  while read -r name path body model direct; do
    [ -z "$name" ] && continue
    b=$(body_for "$body" "$model")
    start_gw taskset -c 0 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$RUN/cg.%p" "$BIN"
    wrk_run 16 1 "http://127.0.0.1:18094$path" "$b" >/dev/null
    callgrind_control -i on >/dev/null 2>&1
    reqs=$(wrk_run 16 4 "http://127.0.0.1:18094$path" "$b" | awk '/requests in/ {print $1}')
    callgrind_control -i off >/dev/null 2>&1
    callgrind_control -d >/dev/null 2>&1
    sleep 0.5
    ir=$(grep -h '^totals:' "$RUN"/cg.* | awk '{s+=$2} END {print s}')
    [ "${KEEP:-0}" = 1 ] && for f in "$RUN"/cg.*; do cp "$f" "/tmp/cg.$name.$(basename "$f")"; done
    stop_gw
    rm -f "$RUN"/cg.*
    awk -v n="$name" -v ir="$ir" -v r="$reqs" 'BEGIN {printf "%-25s %8.1fk  (%d requests)\n", n, ir / r / 1000, r}'
  done <<<"$CASES"
fi
