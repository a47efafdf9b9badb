#!/usr/bin/env bash
# Edge recipe (docs/performance.md "Edge"): a plain route with a 1 KB answer,
# llmgate vs nginx `proxy_pass` to the same backend, HTTP/1.1 keep-alive in
# cleartext and over TLS, h2 multiplexed (h2load), plus Pingora's floor
# (examples/pingora_floor.rs) on cleartext; then the memory of IDLE idle TLS
# keep-alive connections. Each proxy is one worker pinned to CPU 1 (as the
# shared harness pins it), the load generator to CPU 0; loopback only, every
# run bounded (DURATION), every process stopped by its PID.
#   benches/edge.sh        (DURATION=10s CONNS=64 IDLE=10000)
# Needs nginx, wrk, openssl, h2load (nghttp2-client) and a release build with
# the floor: cargo build --release --example pingora_floor
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
IDLE=${IDLE:-10000}
BIN=${BIN:-target/release/llmgate}
FLOOR=${FLOOR:-target/release/examples/pingora_floor}
for t in nginx wrk openssl h2load python3; do
  command -v "$t" >/dev/null || { echo "needs $t" >&2; exit 1; }
done
[ -x "$BIN" ] && [ -x "$FLOOR" ] || { echo "build first: cargo build --release --example pingora_floor" >&2; exit 1; }
run=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$run/backend.pid" ] && kill "$(cat "$run/backend.pid")" 2>/dev/null || true
  [ -f "$run/proxy.pid" ] && kill "$(cat "$run/proxy.pid")" 2>/dev/null || true
  sleep 0.3
  rm -rf "$run"
}
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
mkdir -p "$run/tmp"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=bench.test -addext subjectAltName=DNS:bench.test \
  -keyout "$run/key.pem" -out "$run/cert.pem" 2>/dev/null
body=$(head -c 1024 /dev/zero | tr '\0' 'x')
temps="client_body_temp_path $run/tmp/b; proxy_temp_path $run/tmp/p; fastcgi_temp_path $run/tmp/f; uwsgi_temp_path $run/tmp/u; scgi_temp_path $run/tmp/s;"
# The backend: nginx answering 1 KB on 18080 (the port the floor proxies to).
cat >"$run/backend.conf" <<EOF
worker_processes 1; pid $run/backend.pid; error_log $run/backend.err warn;
events { worker_connections 16384; }
http { access_log off; $temps keepalive_requests 10000000;
  server { listen 127.0.0.1:18080 backlog=4096; location / { default_type text/plain; return 200 "$body"; } } }
EOF
# The peer: nginx proxy_pass, cleartext 18181, TLS + h2 18182.
cat >"$run/proxy.conf" <<EOF
worker_processes 1; pid $run/proxy.pid; error_log $run/proxy.err warn; worker_rlimit_nofile 65536;
events { worker_connections 32768; multi_accept on; }
http { access_log off; $temps keepalive_requests 10000000; keepalive_timeout 300s;
  upstream app { server 127.0.0.1:18080; keepalive 128; keepalive_requests 10000000; }
  server {
    listen 127.0.0.1:18181 backlog=4096;
    listen 127.0.0.1:18182 ssl http2 backlog=4096;
    ssl_certificate $run/cert.pem; ssl_certificate_key $run/key.pem;
    location / {
      proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_buffering off;
    }
  } }
EOF
cat >"$run/llmgate.yaml" <<EOF
listen: ["127.0.0.1:18183"]
tls: {listen: ["127.0.0.1:18184"], certs: [{cert: $run/cert.pem, key: $run/key.pem}]}
upstreams: {m: {base_url: "http://127.0.0.1:18080/v1"}}
models: {m: [{upstream: m}]}
routes:
  - backends: [{addr: "127.0.0.1:18080"}]
    health_check: {enabled: false}
health_check: {enabled: false}
log: {level: warn, access: "off"}
server: {threads: 1, grace_period_seconds: 1, graceful_shutdown_timeout_seconds: 1}
EOF
taskset -c 1 nginx -c "$run/backend.conf" -e "$run/backend.err"
taskset -c 1 nginx -c "$run/proxy.conf" -e "$run/proxy.err"
taskset -c 1 "$BIN" -c "$run/llmgate.yaml" >"$run/gw.log" 2>&1 & GW=$!; pids+=("$GW")
taskset -c 1 "$FLOOR" >"$run/floor.log" 2>&1 & FL=$!; pids+=("$FL")
sleep 1.5
nginx_worker() { pgrep -P "$(cat "$run/proxy.pid")" | head -1; }
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)
# wrk_run NAME PID URL
wrk_run() {
  local before after reqs rps p50 p99 errs
  before=$(cpu "$2")
  taskset -c 0 wrk -t1 -c"$CONNS" -d"$DURATION" --latency -H "Host: bench.test" "$3" >"$run/wrk.txt"
  after=$(cpu "$2")
  reqs=$(awk '/requests in/ {print $1}' "$run/wrk.txt")
  rps=$(awk '/Requests\/sec/ {print $2}' "$run/wrk.txt")
  p50=$(awk '$1=="50%" {print $2}' "$run/wrk.txt"); p99=$(awk '$1=="99%" {print $2}' "$run/wrk.txt")
  errs=$(grep -E "Non-2xx|Socket errors" "$run/wrk.txt" || true)
  printf "| %-34s | %9s | %7s | %7s | %6s |%s\n" "$1" "$rps" "$p50" "$p99" \
    "$(awk -v t=$((after - before)) -v hz="$hz" -v n="$reqs" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')" "${errs:+ $errs}"
}
# h2_run NAME PID URL: 4 connections x 16 streams, fixed request count.
h2_run() {
  local before after n=${H2_REQUESTS:-300000}
  before=$(cpu "$2")
  taskset -c 0 h2load -c4 -m16 -n"$n" "$3" >"$run/h2.txt" 2>&1 || true
  grep -E "requests:|status codes:|Application protocol" "$run/h2.txt" | sed 's/^/    /' >&2
  after=$(cpu "$2")
  local rps; rps=$(awk '/finished in/ {print $4}' "$run/h2.txt")
  local ok; ok=$(awk '/status codes:/ {print $3}' "$run/h2.txt")
  printf "| %-34s | %9s | %7s | %7s | %6s | 2xx %s of %s\n" "$1" "$rps" "-" "-" \
    "$(awk -v t=$((after - before)) -v hz="$hz" -v n="$n" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')" "$ok" "$n"
}
NW=$(nginx_worker)
echo "| plain route, 1 KB answer, c=$CONNS $DURATION | RPS | p50 | p99 | CPU us/req |"
echo "|---|---|---|---|---|"
wrk_run "direct (backend nginx)" "$(pgrep -P "$(cat "$run/backend.pid")" | head -1)" http://127.0.0.1:18080/
wrk_run "nginx proxy_pass, http/1.1" "$NW" http://127.0.0.1:18181/
wrk_run "llmgate route, http/1.1" "$GW" http://127.0.0.1:18183/
wrk_run "pingora floor, http/1.1" "$FL" http://127.0.0.1:18084/
wrk_run "nginx proxy_pass, TLS http/1.1" "$NW" https://127.0.0.1:18182/
wrk_run "llmgate route, TLS http/1.1" "$GW" https://127.0.0.1:18184/
h2_run "nginx proxy_pass, TLS h2" "$NW" https://127.0.0.1:18182/
h2_run "llmgate route, TLS h2" "$GW" https://127.0.0.1:18184/
# Idle TLS keep-alive connections: RSS before and with IDLE open.
idle() {
  local pid=$2 port=$3 base
  base=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  taskset -c 0 python3 - "$port" "$IDLE" "$run/idle.ready" <<'PY' &
import asyncio, ssl, sys
port, n, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["http/1.1"])
async def one(sem, conns):
    async with sem:
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="bench.test")
        w.write(b"GET / HTTP/1.1\r\nhost: bench.test\r\n\r\n"); await w.drain()
        await r.readuntil(b"\r\n\r\n"); await r.readexactly(1024)
        conns.append(w)
async def main():
    conns, sem = [], asyncio.Semaphore(200)
    await asyncio.gather(*(one(sem, conns) for _ in range(n)), return_exceptions=True)
    open(ready, "w").write(str(len(conns)))
    await asyncio.sleep(15)
asyncio.run(main())
PY
  local py=$!
  for _ in $(seq 600); do [ -f "$run/idle.ready" ] && break; sleep 0.1; done
  sleep 1
  local open now; open=$(cat "$run/idle.ready" 2>/dev/null || echo 0); now=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  echo "$1: $open idle TLS connections, RSS $((base / 1024)) -> $((now / 1024)) MB, $(( (now - base) * 1024 / (open > 0 ? open : 1) )) bytes per connection"
  kill $py 2>/dev/null || true; wait $py 2>/dev/null || true; rm -f "$run/idle.ready"; sleep 1
}
idle "nginx" "$NW" 18182
idle "llmgate" "$GW" 18184
