#!/usr/bin/env bash
# Instructions per request (docs/performance.md method): the shared nginx mock,
# a binary under callgrind with instrumentation off, 1 s of wrk c=16 warm-up,
# then instrumentation on for 4 s of wrk c=16 with the harness's 1 KB chat body;
# total user-space instructions / requests. Deterministic to about ±0.3k, where
# wall-clock figures on this machine move ±25 %.
#   benches/instructions.sh [BIN...]      (default target/release/llmgate)
#   WITH_NGINX=1 benches/instructions.sh       the nginx proxy_pass peer, same way
#   CONFIG=FILE benches/instructions.sh        another gateway config (default conf/bench.yaml)
#   NGINX_ACCESS_LOG=1 WITH_NGINX=1 ...         the nginx peer with a buffered access log
# Needs valgrind, nginx and wrk (apt-get install valgrind nginx-light wrk) and
# ../shared/bench.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=$(cd "${BENCH:-../shared/bench}" && pwd)
RUN=$(mktemp -d)
trap 'kill $(cat "$RUN"/*.pid 2>/dev/null) 2>/dev/null || true; sleep 0.5; rm -rf "$RUN"' EXIT
"$BENCH/lib/render.sh" "$BENCH/mock/nginx.conf.in" "$RUN/mock.conf" RUN="$RUN" BENCH="$BENCH" PORT=18080
mkdir -p "$RUN/mock-tmp" "$RUN/proxy-tmp"
nginx -p "$RUN" -c "$RUN/mock.conf" -e "$RUN/mock-error.log" -g 'daemon off;' & echo $! >"$RUN/mock.pid"
sleep 0.5
measure() { # NAME URL CMD...
  local name url=$2
  name=$(basename "$1"); shift 2
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$RUN/cg.$name.%p" "$@" \
    >"$RUN/$name.log" 2>&1 & echo $! >"$RUN/sut.pid"
  for _ in $(seq 200); do curl -s -o /dev/null "$url/health" && break; sleep 0.1; done
  local lua="$BENCH/load/chat.lua"
  (cd "$BENCH/load" && wrk -t1 -c16 -d1s -s "$lua" "$url/v1/chat/completions" >/dev/null)
  callgrind_control -i on >/dev/null
  local out
  out=$(cd "$BENCH/load" && wrk -t1 -c16 -d4s -s "$lua" "$url/v1/chat/completions")
  callgrind_control -i off >/dev/null
  callgrind_control -d >/dev/null
  local reqs ir
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  sleep 0.5
  ir=$(grep -h -E '^(summary|totals):' "$RUN"/cg."$name".* | awk '$1 == "totals:" {s+=$2} END {print s}')
  [ "${KEEP:-0}" = 1 ] && cp "$RUN"/cg."$name".* /tmp/
  kill "$(cat "$RUN/sut.pid")" 2>/dev/null || true
  wait "$(cat "$RUN/sut.pid")" 2>/dev/null || true
  rm -f "$RUN/sut.pid" "$RUN"/cg."$name".*
  awk -v n="$name" -v ir="$ir" -v r="$reqs" 'BEGIN {printf "%-40s %8d requests %8.1fk instructions/request\n", n, r, ir / r / 1000}'
}
if [ "${WITH_NGINX:-0}" = 1 ]; then
  "$BENCH/lib/render.sh" "$BENCH/peers/nginx-proxy.conf.in" "$RUN/proxy.conf" RUN="$RUN" PORT=18082 MOCK_PORT=18080
  if [ "${NGINX_ACCESS_LOG:-0}" = 1 ]; then
    # The peer with its access log on, buffered as nginx users run it.
    sed -i "s#access_log off;#access_log $RUN/nginx-access.log combined buffer=64k flush=1s;#" "$RUN/proxy.conf"
  fi
  measure nginx http://127.0.0.1:18082 nginx -p "$RUN" -c "$RUN/proxy.conf" -e "$RUN/proxy-error.log" -g 'daemon off; master_process off;'
fi
for bin in "${@:-target/release/llmgate}"; do
  measure "$bin" http://127.0.0.1:18084 "$bin" -c "${CONFIG:-conf/bench.yaml}"
done
