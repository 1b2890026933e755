#!/usr/bin/env bash
# Load test of the servers_api example: wrk against GET /servers/{id} in three scenarios,
# interleaved over several rounds, with a summary (CSV, JSON, a table of medians) and a chart.
#
#   integration-tests/examples/servers_api/load.sh
#
# Scenarios (each run: a fresh redis-server if any, a fresh service, a warm-up, then wrk):
#   on    CACHE_ENABLED=true, Redis up for the whole run;
#   off   CACHE_ENABLED=false (no Redis started);
#   kill  CACHE_ENABLED=true, the redis-server SIGKILLed halfway through a longer run
#         (the service must keep answering from SQLite).
# The order rotates every round, so drift of a shared machine spreads over all three.
#
# Ids: 80% of requests on ids 1..1000, the rest uniform over all seeded ids (load.lua).
#
# Needs: cargo, redis-server (+ redis-cli), wrk, curl, python3 (summary and chart).
# Never uses the Redis on 6379: it starts its own on a free loopback port.
#
# Environment (defaults):
#   LOAD_RESULTS (/tmp/servers_api_load)   where runs/, summary.{csv,json} and the chart go
#   LOAD_CHART ($LOAD_RESULTS/servers_api_load.svg)
#   LOAD_ROUNDS (3)  LOAD_SECONDS (10)  LOAD_KILL_SECONDS (20)  LOAD_WARMUP (5)
#   LOAD_CONNECTIONS (32)  LOAD_THREADS (2)  LOAD_SERVERS (10000)
#   LOAD_HOT_IDS (1000)  LOAD_HOT_SHARE (0.8)  LOAD_WARM_COUNT (100: CACHE_WARM_COUNT)
#   LOAD_SCENARIOS ("on off kill": a subset runs only those)
#   LOAD_SKIP_BUILD (unset: set to 1 to reuse target/release/examples/servers_api)
# Other variables pass through to the service (e.g. REDIS_SOCKET_TIMEOUT, REDIS_POOL_SIZE).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)

results=${LOAD_RESULTS:-/tmp/servers_api_load}
chart=${LOAD_CHART:-$results/servers_api_load.svg}
rounds=${LOAD_ROUNDS:-3}
seconds=${LOAD_SECONDS:-10}
kill_seconds=${LOAD_KILL_SECONDS:-20}
warmup=${LOAD_WARMUP:-5}
connections=${LOAD_CONNECTIONS:-32}
threads=${LOAD_THREADS:-2}
servers=${LOAD_SERVERS:-10000}
export LOAD_IDS=$servers
export LOAD_HOT_IDS=${LOAD_HOT_IDS:-1000}
export LOAD_HOT_SHARE=${LOAD_HOT_SHARE:-0.8}
warm_count=${LOAD_WARM_COUNT:-100}

for tool in cargo redis-server redis-cli wrk curl python3; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "load.sh: $tool not found (integration-tests/setup.sh installs redis and wrk)" >&2
    exit 1
  }
done

# --- processes we start, stopped by pid at exit --------------------------------------------
tmp=$(mktemp -d /tmp/servers_api_load.XXXXXX)
redis_pid=""
service_pid=""
wrk_pid=""

stop_pid() { # pid signal
  local pid=$1
  [ -n "$pid" ] || return 0
  kill "-${2:-TERM}" "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  stop_pid "$wrk_pid"
  stop_pid "$service_pid"
  stop_pid "$redis_pid"
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

now_ms() { date +%s%3N; }

start_redis() {
  redis_port=$(free_port)
  [ "$redis_port" != 6379 ] || redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --logfile "$tmp/redis.log" &
  redis_pid=$!
  for _ in $(seq 100); do
    [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.05
  done
  echo "load.sh: redis-server on $redis_port did not answer" >&2
  exit 1
}

stop_redis() {
  stop_pid "$redis_pid"
  redis_pid=""
}

start_service() { # CACHE_ENABLED log-file
  service_port=$(free_port)
  # From $tmp, so that no .env of the working directory is read.
  (cd "$tmp" && exec env \
    REDIS_URL="redis://127.0.0.1:${redis_port:-1}/0" \
    CACHE_ENABLED="$1" \
    DATABASE_URL="sqlite://$tmp/servers.db?mode=rwc" \
    HOST=127.0.0.1 PORT="$service_port" \
    SEED_SERVERS="$servers" CACHE_WARM_COUNT="$warm_count" \
    RUST_LOG="${RUST_LOG:-warn}" \
    "$bin") >"$2" 2>&1 &
  service_pid=$!
  url="http://127.0.0.1:$service_port"
  for _ in $(seq 600); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/servers/1" 2>/dev/null)" = 200 ]; then
      return 0
    fi
    kill -0 "$service_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "load.sh: the service did not start; its log:" >&2
  cat "$2" >&2
  exit 1
}

stop_service() {
  stop_pid "$service_pid"
  service_pid=""
}

run_wrk() { # duration out-json out-text
  LOAD_OUT="$2" wrk -t"$threads" -c"$connections" -d"$1" --timeout 10s --latency \
    -s "$here/load.lua" "$url/servers/1" >"$3" 2>&1
}

# One measured run of a scenario; writes $results/runs/<scenario>-<round>.json.
run_scenario() { # scenario round
  local scenario=$1 round=$2 dir="$results/runs" kill_ms=0 start_ms duration
  local name="$scenario-$round"
  case $scenario in
    on | kill) start_redis ;;
    off) redis_port="" ;;
    *) echo "load.sh: unknown scenario $scenario (on, off, kill)" >&2; exit 1 ;;
  esac
  start_service "$([ "$scenario" = off ] && echo false || echo true)" "$dir/$name.service.log"
  # Warm-up: fills the cache (and SQLite's page cache) and lets the allocator settle.
  LOAD_OUT="" wrk -t"$threads" -c"$connections" -d"${warmup}s" -s "$here/load.lua" \
    "$url/servers/1" >/dev/null 2>&1
  curl -s "$url/metrics" >"$dir/$name.metrics-before.txt"
  local cpu_before cpu_after
  cpu_before=$(head -1 /proc/stat)
  start_ms=$(now_ms)
  if [ "$scenario" = kill ]; then
    duration=$kill_seconds
    run_wrk "${duration}s" "$dir/$name.wrk.json" "$dir/$name.wrk.txt" &
    wrk_pid=$!
    sleep "$(python3 -c "print($duration / 2)")"
    kill_ms=$(now_ms)
    kill -KILL "$redis_pid"
    wait "$redis_pid" 2>/dev/null || true
    redis_pid=""
    wait "$wrk_pid"
    wrk_pid=""
  else
    duration=$seconds
    run_wrk "${duration}s" "$dir/$name.wrk.json" "$dir/$name.wrk.txt"
  fi
  cpu_after=$(head -1 /proc/stat)
  curl -s "$url/metrics" >"$dir/$name.metrics-after.txt"
  local health
  health=$(curl -s -o /dev/null -w '%{http_code}' "$url/health/cache" || true)
  stop_service
  stop_redis
  printf '{"scenario":"%s","round":%d,"start_ms":%s,"kill_ms":%s,"duration_s":%s,"health_after":"%s","cpu_before":"%s","cpu_after":"%s"}\n' \
    "$scenario" "$round" "$start_ms" "$kill_ms" "$duration" "$health" "$cpu_before" "$cpu_after" \
    >"$dir/$name.meta.json"
  python3 "$here/load_report.py" --one "$dir/$name" | sed 's/^/  /'
}

# --- build, seed, run -------------------------------------------------------------------------
if [ -z "${LOAD_SKIP_BUILD:-}" ]; then
  (cd "$root" && cargo build --release -p integration-tests --example servers_api)
fi
bin="$root/target/release/examples/servers_api"
[ -x "$bin" ] || { echo "load.sh: $bin not built" >&2; exit 1; }

rm -rf "$results/runs"
mkdir -p "$results/runs"
cores=$(nproc)
cat >"$results/setup.json" <<EOF
{"cores":$cores,"cpu":"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//;s/"//g')","redis":"$(redis-server --version | cut -d' ' -f3 | cut -d= -f2)","wrk":"$(wrk -v 2>&1 | head -1 | cut -d' ' -f2)","connections":$connections,"threads":$threads,"servers":$servers,"hot_ids":$LOAD_HOT_IDS,"hot_share":$LOAD_HOT_SHARE,"rounds":$rounds,"seconds":$seconds,"kill_seconds":$kill_seconds,"warmup":$warmup,"warm_count":$warm_count}
EOF

echo "load.sh: seeding $servers servers into $tmp/servers.db"
redis_port=""
start_service false "$results/runs/seed.service.log"
stop_service

echo "load.sh: $rounds rounds; ${seconds}s per run (kill: ${kill_seconds}s), ${warmup}s warm-up," \
  "$connections connections, $threads wrk threads, $cores cores shared by wrk, the service and Redis"
read -r -a scenarios <<<"${LOAD_SCENARIOS:-on off kill}"
n=${#scenarios[@]}
for round in $(seq "$rounds"); do
  for i in $(seq 0 $((n - 1))); do
    scenario=${scenarios[$(((i + round - 1) % n))]}
    echo "round $round: $scenario"
    run_scenario "$scenario" "$round"
  done
done

python3 "$here/load_report.py" --results "$results" --chart "$chart"
