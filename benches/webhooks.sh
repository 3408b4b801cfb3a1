#!/usr/bin/env bash
# Issue 12's two webhook targets, measured on a 2-core Linux (Debian) machine in one command:
#
#     benches/webhooks.sh
#     ROUNDS=1 DURATION=5s EVENTS=5000 benches/webhooks.sh
#
# 1. Emitting. A write route (POST /orders with a small JSON body, answered 201 by the upstream
#    nginx) through two ficus processes that differ only in the route's [routes.webhook]: `ficus`
#    has none, `ficus-webhook` commits one event per answer to its outbox (SQLite, WAL,
#    synchronous=FULL, group commit) before the client gets the answer's end. Both take turns
#    under the same load (wrk, CONNECTIONS=64), with the upstream alone (`direct`) as the
#    ceiling, as compare.sh measures its targets. Reported: ficus-webhook's rps as a share of
#    ficus's (target: at least 50%). Deliveries are paused (POST /api/webhooks/pause) from the
#    start, so that what is measured is emitting, not a delivery loop sharing the proxy's core
#    (delivering is measured on its own in part 2, with its CPU per event); EMIT_DELIVERY=live
#    lets them run to the receiver instead.
#    Checked afterwards: the events in the outbox (pending + delivered + dead, GET /api/webhooks)
#    are at least the 2xx answers wrk counted over every run, and at most one per connection and
#    run more (requests answered by ficus after wrk stopped counting). Then a crash: ficus-webhook
#    is killed with SIGKILL in the middle of a run and started again on its data_dir; every 2xx
#    wrk received before the kill must have its event in the outbox.
# 2. Delivering. A third ficus with the route paused gets EVENTS (20,000) writes (curl
#    --parallel, 64 at a time); the outbox must then hold exactly that many pending events. The
#    route is resumed towards a receiver nginx answering 204 (compare/receiver.nginx.conf, on the
#    load core) with max_in_flight = MAX_IN_FLIGHT (16), and GET /api/webhooks is polled every
#    100 ms until nothing is pending. Reported: events per second, overall and between 10% and
#    90% delivered, ficus's CPU (share of its core, µs per event), and what the receiver got
#    (requests and distinct webhook-ids, from its access log), which must be EVENTS.
#    Target: at least 2,000 events per second. Repeated ROUNDS times in the same process.
#
# The outbox lives on a disk (DATA_BASE, by default target/webhooks of the repository), never in
# memory: an fsync's cost is the point. The script refuses a tmpfs there, and measures the disk's
# synchronous write latency (dd oflag=dsync) for the report. Everything else (configs, logs, the
# receiver's access log) is in a temporary directory in /dev/shm, as for compare.sh, whose helpers
# this script sources (processes, warm-up and measured runs, CPU per request, other load).
#
#   core 0 (LOAD_CORE)   wrk or curl, the upstream nginx, the receiver nginx
#   core 1 (PROXY_CORE)  ficus, one worker thread (its outbox commit thread and blocking store
#                        calls run there too)
#
# Settings, from the environment (and compare.sh's: ACCESS_LOG, ENGINE, LOAD_CORE, PROXY_CORE,
# OTHER_LOAD_WARN, KEEP_WORK, FICUS_BIN):
#   ROUNDS=3             emitting: measured rounds (direct, ficus, ficus-webhook each once a round);
#                        delivering: rounds of push-then-drain
#   DURATION=10s WARMUP=2s CONNECTIONS=64
#   EVENTS=20000         events pushed before each delivery round
#   MAX_IN_FLIGHT=16     the delivering route's max_in_flight
#   EMIT_DELIVERY=paused paused: the emitting route's deliveries are held (its url is a closed
#                        port); live: they go to the receiver during the runs
#   SKIP=""              "emit" or "deliver" leaves that part out
#   BASE_PORT=18200      upstream +1 and +2, closed port +6, receiver +7, ficus +83, ficus-webhook
#                        +87 (admin +86), ficus-deliver +88 (admin +89); away from compare.sh's
#   DATA_BASE=target/webhooks  where the outboxes are made (a disk, not tmpfs)
#   OUT=target/webhooks  latest.txt, latest.json, runs.tsv, deliver.tsv, timelines, logs
# shellcheck disable=SC2034 # the SC_ variables are read by compare.sh's measure()
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-64}
BASE_PORT=${BASE_PORT:-18200}
OUT=${OUT:-$(cd "$HERE/.." && pwd)/target/webhooks}
# shellcheck source=benches/compare.sh
source "$HERE/compare.sh"

EVENTS=${EVENTS:-20000}
MAX_IN_FLIGHT=${MAX_IN_FLIGHT:-16}
EMIT_DELIVERY=${EMIT_DELIVERY:-paused}
SKIP=${SKIP:-}
DATA_BASE=${DATA_BASE:-$OUT}
RECEIVER=$((BASE_PORT + 7))
PORT+=([ficus-webhook]=$((BASE_PORT + 87)) [ficus-deliver]=$((BASE_PORT + 88)))
DELIVER_ADMIN=$((BASE_PORT + 89))
# The route both parts use, the body each write carries, and the signing secret (the Standard
# Webhooks specification's published test secret: nothing here is secret).
ROUTE=orders
ORDER='{"customer":"c-42","items":[{"sku":"A-1","qty":2},{"sku":"B-7","qty":1}],"total":19.9}'
export FICUS_BENCH_WEBHOOK_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
# What wrk sends (compare/wrk.lua), and what measure() needs to know of the "scenario".
export BENCH_METHOD=POST BENCH_BODY=$ORDER
SC_PATH=/orders
SC_HEADERS="content-type: application/json"
SC_RANDOM_HEADER=""
SC_DIRECT_PORT=$UP_B
SC_SHADOW=""
SC_SKIP=""

say() { printf 'webhooks: %s\n' "$*" >&2; }

# ----------------------------------------------------------------------------------------------
# Setup
# ----------------------------------------------------------------------------------------------

build() {
    if [ -n "${FICUS_BIN:-}" ]; then
        [ -x "$FICUS_BIN" ] || die "FICUS_BIN=$FICUS_BIN is not an executable"
        return
    fi
    say "building ficus (cargo build --release)"
    (cd "$ROOT" && cargo build --release --bin ficus) || die "cargo build --release failed"
    FICUS_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/ficus
    [ -x "$FICUS_BIN" ] || die "no binary at $FICUS_BIN"
}

# Makes DATA, the directory the outboxes live in, on a disk; says which in DATA_WHERE.
make_data_dir() {
    mkdir -p "$DATA_BASE"
    local fs
    fs=$(stat -f -c %T "$DATA_BASE")
    case $fs in
        tmpfs | ramfs) die "DATA_BASE=$DATA_BASE is on $fs: the outbox must be on a disk, where an fsync costs what it costs" ;;
    esac
    DATA=$(mktemp -d "$DATA_BASE/outbox.XXXXXX")
    DATA_WHERE="$DATA ($(df --output=source "$DATA" | tail -n 1), $(df --output=fstype "$DATA" | tail -n 1))"
}

# The disk's latency for a lone synchronous write: 200 writes of 4 KiB, each waiting for the disk
# (O_DSYNC), in ms per write. For the report: it shows the disk is real. (On the reference VM it is
# about 6 ms, as is a lone SQLite commit; SQLite's fsyncs in a burst of commits took far less.)
fsync_probe() {
    local took
    took=$(dd if=/dev/zero of="$DATA/fsync-probe" bs=4k count=200 oflag=dsync 2>&1 |
        awk '/copied/ { for (i = 1; i <= NF; i++) if ($i ~ /^s,?$/) print $(i - 1) }' | tr ',' '.')
    rm -f "$DATA/fsync-probe"
    FSYNC_MS=$(awk -v s="${took:-0}" 'BEGIN { printf "%.2f", s * 1000 / 200 }')
}

# On exit, after compare.sh's cleanup (processes, WORK): the outboxes go too, unless KEEP_WORK=1.
stop_outboxes() {
    [ -n "$DATA" ] || return 0
    if [ "$KEEP_WORK" = 1 ]; then say "kept $DATA"; else rm -rf "$DATA"; fi
}

start_receiver() {
    local dir=$WORK/receiver
    mkdir -p "$dir"
    render "$BENCH/receiver.nginx.conf" "$dir/nginx.conf" PREFIX="$dir" PORT="$RECEIVER"
    start_bg "$dir/stderr.log" taskset -c "$LOAD_CORE" nginx -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf"
    wait_ready "$RECEIVER" "$STARTED" "$dir/error.log"
    RECEIVER_LOG=$dir/deliveries.log
    # Its CPU is the load core's, like the upstream's: never counted as other load.
    mapfile -t -O "${#UPSTREAM_PIDS[@]}" UPSTREAM_PIDS < <(proc_tree "$STARTED")
}

# Starts ficus as TARGET on the proxy core with the route (and WEBHOOK_URL's webhook, unless
# empty) and the admin API on ADMIN_PORT (none when empty), its outbox in DATA/TARGET.
start_ficus() {
    local target=$1 webhook_url=$2 admin_port=$3 dir=$WORK/$1 admin="" level=warn
    mkdir -p "$dir/table"
    {
        printf '[[routes]]\nname = "%s"\npath = "/orders"\nmethods = ["POST"]\nupstream = "orders"\n' "$ROUTE"
        [ -z "$webhook_url" ] || cat <<FICUS

  [routes.webhook]
  url = "$webhook_url"
  event = "order.created"
  secret_env = "FICUS_BENCH_WEBHOOK_SECRET"
  max_in_flight = $MAX_IN_FLIGHT
  timeout = "5s"
FICUS
    } >"$dir/routes"
    [ -z "$admin_port" ] || admin="admin = \"127.0.0.1:$admin_port\""
    render "$BENCH/ficus.toml" "$dir/table/ficus.toml" DATA_DIR="$DATA/$target" PORT="${PORT[$target]}" \
        UP_A="$UP_A" UP_B="$UP_B" ENGINE="$ENGINE" ADMIN="$admin" "ROUTES<$dir/routes"
    "$FICUS_BIN" check "$dir/table/ficus.toml" >/dev/null || die "ficus rejects $dir/table/ficus.toml"
    [ "$ACCESS_LOG" = on ] && level=info
    ACCESS_FILE+=(["$target"]=$dir/access.log)
    RUST_LOG=$level start_bg "$dir/access.log" taskset -c "$PROXY_CORE" "$FICUS_BIN" run --config "$dir/table/ficus.toml"
    PROXY_PID+=(["$target"]=$STARTED)
    wait_ready "${PORT[$target]}" "$STARTED" "$dir/access.log"
}

# ----------------------------------------------------------------------------------------------
# The outbox, through ficus's admin API on PORT
# ----------------------------------------------------------------------------------------------

# "PENDING DELIVERED DEAD" for the whole outbox (the top-level counts of GET /api/webhooks).
outbox() {
    local json
    json=$(curl -s --max-time 5 "http://127.0.0.1:$1/api/webhooks") || die "GET /api/webhooks on port $1 failed"
    jq -r '"\(.pending) \(.delivered) \(.dead)"' <<<"$json"
}

# Events in the outbox in any state.
events_in() {
    local p d x
    read -r p d x <<<"$(outbox "$1")"
    echo $((p + d + x))
}

admin_post() {
    local port=$1 path=$2 code
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST "http://127.0.0.1:$port$path")
    [ "$code" = 200 ] || die "POST $path on port $port answered $code"
}

# ----------------------------------------------------------------------------------------------
# 1. Emitting
# ----------------------------------------------------------------------------------------------

# The 2xx answers wrk counted in the runs of TARGET so far (warm-ups and measured runs), from
# wrk.lua's RESULT lines.
answered_2xx() {
    local target=$1
    cat "$WORK/wrk/emit-$target-"* 2>/dev/null |
        awk '/^RESULT / { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                          n += v["requests"] - v["status"]; runs++ }
             END { print n + 0, runs + 0 }'
}

# One write through PORT: must be 201 from side b with an id.
check_write() {
    local target=$1 port=$2 got
    got=$(answer "$port" -H "content-type: application/json" --data "$ORDER")
    [[ $got == "201 41 b" ]] || die "emit: $target answered '$got' (status, bytes, side) to POST /orders, expected '201 41 b'"
}

emit() {
    local url round target events answered runs extra
    say "emitting: POST /orders, $CONNECTIONS connections, $ROUNDS rounds of $DURATION (warm-up $WARMUP); deliveries $EMIT_DELIVERY"
    url="http://127.0.0.1:$UP_DOWN/sync/orders"
    [ "$EMIT_DELIVERY" = live ] && url="http://127.0.0.1:$RECEIVER/sync/orders"
    start_ficus ficus "" ""
    start_ficus ficus-webhook "$url" "$FICUS_ADMIN"
    [ "$EMIT_DELIVERY" = live ] || admin_post "$FICUS_ADMIN" "/api/webhooks/pause?route=$ROUTE"

    check_write direct "$UP_B"
    check_write ficus "${PORT[ficus]}"
    check_write ficus-webhook "${PORT[ficus-webhook]}"
    events=$(events_in "$FICUS_ADMIN")
    [ "$events" = 1 ] || die "emit: one write through ficus-webhook left $events events in its outbox, expected 1"
    say "emit: check ok: 201 from b through each target; ficus-webhook's outbox holds the write's event"

    for ((round = 1; round <= ROUNDS; round++)); do
        for target in direct ficus ficus-webhook; do
            measure emit "$target" "$round"
        done
    done

    # Every answered write has its event: at least one per 2xx wrk counted (and the check's),
    # at most one per connection and run more (answered after wrk stopped counting).
    read -r answered runs <<<"$(answered_2xx ficus-webhook)"
    answered=$((answered + 1))
    read -r EMIT_PENDING EMIT_DELIVERED EMIT_DEAD <<<"$(outbox "$FICUS_ADMIN")"
    events=$((EMIT_PENDING + EMIT_DELIVERED + EMIT_DEAD))
    extra=$((events - answered))
    EMIT_COUNTS="events in the outbox $events (pending $EMIT_PENDING, delivered $EMIT_DELIVERED, dead $EMIT_DEAD), 2xx answers $answered over $runs wrk runs and the check"
    if ((extra >= 0 && extra <= runs * CONNECTIONS)); then
        EMIT_COUNTS_OK="ok: $extra more events than counted answers (at most $CONNECTIONS per run: answered after wrk stopped counting)"
    else
        EMIT_COUNTS_OK="FAILED: $extra events more than counted answers (expected 0 to $((runs * CONNECTIONS)))"
    fi
    say "emit: $EMIT_COUNTS; $EMIT_COUNTS_OK"
    crash
    stop_proxies
    keep_logs emit ficus ficus-webhook
}

# SIGKILL in the middle of a run: every 2xx that wrk received before the kill must have its event
# in the outbox once ficus is started again on the same data_dir.
crash() {
    local before after wrk_out=$WORK/wrk/crash wrk_pid answered
    before=$(events_in "$FICUS_ADMIN")
    run_wrk 4s "http://127.0.0.1:${PORT[ficus-webhook]}/orders" >"$wrk_out" 2>&1 &
    wrk_pid=$!
    sleep 2
    stop_pid "${PROXY_PID[ficus-webhook]}" KILL
    wait "$wrk_pid" || true
    answered=$(awk '/^RESULT / { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                                 print v["requests"] - v["status"] }' "$wrk_out")
    [ -n "$answered" ] || die "crash: wrk printed no result; see $wrk_out"
    # The same table and data_dir; unpaused now, its deliveries fail (or reach the receiver) and
    # are retried: pending + delivered + dead stays the number of events.
    start_ficus ficus-webhook "$(awk -F'"' '/^  url = / { print $2 }' "$WORK/ficus-webhook/routes")" "$FICUS_ADMIN"
    after=$(events_in "$FICUS_ADMIN")
    CRASH_COUNTS="2xx answers received before SIGKILL $answered, events added $((after - before)) (outbox $before before the run, $after after the restart)"
    if ((after - before >= answered && answered > 0)); then
        CRASH_OK="ok: every answered write's event survived"
    else
        CRASH_OK="FAILED: fewer events than answers (or no answer at all)"
    fi
    say "crash: $CRASH_COUNTS; $CRASH_OK"
}

# Keeps the ficus processes' own messages (not their access logs) and tables in OUT/logs.
keep_logs() {
    local part=$1 target
    shift
    mkdir -p "$OUT/logs" "$OUT/configs"
    for target in "$@"; do
        [ -f "${ACCESS_FILE[$target]:-}" ] && trim_access_log "$target"
        cp "$WORK/$target/table/ficus.toml" "$OUT/configs/$part-$target.toml" 2>/dev/null || true
    done
    cat "$WORK/ficus-messages.log" >>"$OUT/logs/$part-ficus.log" 2>/dev/null || true
    : >"$WORK/ficus-messages.log"
}

# ----------------------------------------------------------------------------------------------
# 2. Delivering
# ----------------------------------------------------------------------------------------------

# EVENTS writes through ficus-deliver, 64 at a time (curl --parallel on the load core); prints how
# many were answered 201. (--no-progress-meter: curl 7.88 draws its parallel meter despite -s.)
push() {
    local list=$WORK/push.curlrc i
    if [ ! -f "$list" ]; then
        for ((i = 0; i < EVENTS; i++)); do
            printf 'url = "http://127.0.0.1:%s/orders"\noutput = "/dev/null"\n' "${PORT[ficus-deliver]}"
        done >"$list"
    fi
    taskset -c "$LOAD_CORE" curl -s --no-progress-meter --parallel --parallel-max 64 -H "content-type: application/json" \
        --data "$ORDER" -w '%{http_code}\n' --config "$list" | grep -c '^201$' || true
}

# One round: push EVENTS with the route paused, then resume and time until nothing is pending.
deliver_round() {
    local round=$1 pushed pending delivered dead delivered0 t0 t1 now before after timeline
    local -a pids
    timeline=$OUT/deliver-timeline-$round.tsv
    admin_post "$DELIVER_ADMIN" "/api/webhooks/pause?route=$ROUTE"
    read -r pending delivered0 dead <<<"$(outbox "$DELIVER_ADMIN")"
    ((pending == 0)) || die "deliver: $pending events pending before round $round"
    pushed=$(push)
    read -r pending delivered dead <<<"$(outbox "$DELIVER_ADMIN")"
    ((pushed == EVENTS && pending == EVENTS)) ||
        die "deliver: pushed $EVENTS writes, $pushed answered 201, $pending events pending; expected $EVENTS each"
    say "deliver: round $round/$ROUNDS: $pending events pending; resuming"

    : >"$RECEIVER_LOG"
    mapfile -t pids < <(proc_tree "${PROXY_PID[ficus-deliver]}")
    before=$(snapshot "${pids[@]}")
    t0=$(date +%s%N)
    admin_post "$DELIVER_ADMIN" "/api/webhooks/resume?route=$ROUTE"
    printf 'ms\tpending\tdelivered\n' >"$timeline"
    while :; do
        sleep 0.1
        read -r pending delivered dead <<<"$(outbox "$DELIVER_ADMIN")"
        now=$(date +%s%N)
        printf '%d\t%d\t%d\n' $(((now - t0) / 1000000)) "$pending" $((delivered - delivered0)) >>"$timeline"
        ((pending == 0)) && break
        (((now - t0) / 1000000000 < 300)) || die "deliver: $pending events still pending after 300 s"
    done
    t1=$now
    after=$(snapshot "${pids[@]}")

    local got distinct
    got=$(wc -l <"$RECEIVER_LOG")
    distinct=$(awk '$1 == 204 { print $2 }' "$RECEIVER_LOG" | sort -u | wc -l)
    # Rate, overall and between 10% and 90% delivered; ficus's CPU; other load on each core.
    local figures
    figures=$(awk -v before="$before" -v after="$after" -v n="$EVENTS" -v ns=$((t1 - t0)) -v hz="$CLK_TCK" \
        -v timeline="$timeline" '
        function parse(text, into,   i, kv, parts, m) {
            m = split(text, parts, " ")
            for (i = 1; i <= m; i++) { split(parts[i], kv, "="); into[kv[1]] = kv[2] }
        }
        function pct(busy, all) { return all > 0 && busy > 0 ? 100 * busy / all : 0 }
        BEGIN {
            parse(before, b); parse(after, a)
            for (k in a) d[k] = a[k] - b[k]
            s = ns / 1e9
            while ((getline line < timeline) > 0) {
                split(line, f, "\t")
                if (f[1] !~ /^[0-9]+$/) continue
                if (t10 == "" && f[3] >= 0.1 * n) { t10 = f[1]; n10 = f[3] }
                if (t90 == "" && f[3] >= 0.9 * n) { t90 = f[1]; n90 = f[3] }
            }
            steady = (t90 > t10) ? (n90 - n10) * 1000 / (t90 - t10) : 0
            core = d["all1"] > 0 ? 100 * d["proxy"] / d["all1"] : 0
            printf "%.2f %.0f %.0f %.0f %.1f %.0f %.0f\n", s, n / s, steady, core,
                d["proxy"] * 1e6 / hz / n, pct(d["busy0"] - d["upstream"] - d["children"], d["all0"]),
                pct(d["busy1"] - d["proxy"], d["all1"])
        }')
    local seconds rate steady core us other0 other1 ok=ok
    read -r seconds rate steady core us other0 other1 <<<"$figures"
    ((delivered - delivered0 == EVENTS && dead == 0 && got >= EVENTS && distinct == EVENTS)) || ok=failed
    printf '%s\n' "$round	$ok	$EVENTS	$seconds	$rate	$steady	$core	$us	$((delivered - delivered0))	$got	$distinct	$other0	$other1" >>"$OUT/deliver.tsv"
    say "deliver: round $round/$ROUNDS $EVENTS events in $seconds s: $rate/s (10-90%: $steady/s), ficus ${core}% of its core, $us µs/event; receiver got $got ($distinct distinct ids); delivered $((delivered - delivered0)), dead $dead; other load ${other0}%/${other1}% [$ok]"
    if ((other0 > OTHER_LOAD_WARN || other1 > OTHER_LOAD_WARN)); then
        say "  warning: other programs took ${other0}% of core $LOAD_CORE and ${other1}% of core $PROXY_CORE during this round"
    fi
}

deliver() {
    local round
    say "delivering: $EVENTS events a round to nginx answering 204, max_in_flight = $MAX_IN_FLIGHT, $ROUNDS rounds"
    start_ficus ficus-deliver "http://127.0.0.1:$RECEIVER/sync/orders" "$DELIVER_ADMIN"
    for ((round = 1; round <= ROUNDS; round++)); do
        deliver_round "$round"
    done
    stop_proxies
    keep_logs deliver ficus-deliver
}

# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------

report_all() {
    DATA_WHERE=$DATA_WHERE FSYNC_MS=$FSYNC_MS CONNECTIONS=$CONNECTIONS EVENTS=$EVENTS MAX_IN_FLIGHT=$MAX_IN_FLIGHT \
        EMIT_DELIVERY=$EMIT_DELIVERY EMIT_COUNTS="${EMIT_COUNTS:-}" EMIT_COUNTS_OK="${EMIT_COUNTS_OK:-}" \
        CRASH_COUNTS="${CRASH_COUNTS:-}" CRASH_OK="${CRASH_OK:-}" OTHER_LOAD_WARN=$OTHER_LOAD_WARN \
        REPORT_JSON=$OUT/latest.json VERSION="$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)" \
        awk -f "$BENCH/webhooks-report.awk" "$OUT/runs.tsv" "$OUT/deliver.tsv" | tee "$OUT/latest.txt"
    echo
    echo "JSON: $OUT/latest.json"
}

# ----------------------------------------------------------------------------------------------

webhooks_main() {
    local port
    (($(nproc) >= 2)) || die "needs 2 cores (one for the load, the upstream and the receiver; one for ficus)"
    [[ $EMIT_DELIVERY == paused || $EMIT_DELIVERY == live ]] || die "EMIT_DELIVERY is paused or live, not '$EMIT_DELIVERY'"
    install_missing nginx wrk curl jq taskset cmake
    build
    CLK_TCK=$(getconf CLK_TCK)
    for port in "$UP_A" "$UP_B" "$UP_DOWN" "$RECEIVER" "$FICUS_ADMIN" "$DELIVER_ADMIN" \
        "${PORT[ficus]}" "${PORT[ficus-webhook]}" "${PORT[ficus-deliver]}"; do
        ! port_in_use "$port" || die "port $port is in use (set BASE_PORT to move every port)"
    done

    mkdir -p "$OUT"
    rm -rf "$OUT/logs" "$OUT/configs" "$OUT"/deliver-timeline-*.tsv
    : >"$OUT/runs.tsv"
    : >"$OUT/deliver.tsv"
    local base=${TMPDIR:-/tmp}
    [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ] && base=/dev/shm
    DATA=""
    trap 'cleanup; stop_outboxes' EXIT
    trap 'exit 130' INT TERM HUP
    WORK=$(mktemp -d "$base/ficus-webhooks.XXXXXX")
    make_data_dir
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    fsync_probe

    say "layout: core $LOAD_CORE load + upstream + receiver; core $PROXY_CORE ficus; outboxes in $DATA_WHERE, a lone synchronous 4 KiB write there takes $FSYNC_MS ms"
    start_upstream
    start_receiver
    [[ " $SKIP " == *" emit "* ]] || emit
    [[ " $SKIP " == *" deliver "* ]] || deliver
    report_all
}

webhooks_main "$@"
