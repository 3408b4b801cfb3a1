#!/usr/bin/env bash
# ficus against nginx and haproxy, side by side, under the same load: one command on a 2-core
# Linux (Debian) machine.
#
#     benches/compare.sh
#     ROUNDS=5 DURATION=20s benches/compare.sh
#     SCENARIOS=passthrough TARGETS="direct nginx ficus" ROUNDS=1 DURATION=3s benches/compare.sh
#     SCENARIOS="passthrough shadow shadow-slow shadow-down" TARGETS="direct nginx ficus" benches/compare.sh
#     SCENARIOS=plugins benches/compare.sh
#
# It installs what is missing (nginx, haproxy, wrk, cmake, curl; python3 for shadow-slow, openssl
# for plugins) from Debian's packages, builds ficus with `cargo build --release`, and then, on
# 127.0.0.1 only:
#
#   core 0 (LOAD_CORE)   wrk, and the upstream: one nginx worker answering 200 with a 1 KiB body
#   core 1 (PROXY_CORE)  the proxy under test, one worker each: nginx, haproxy, a bare Pingora
#                        proxy, ficus
#
# Each scenario (see benches/compare/scenarios.sh: passthrough, routes1000, split, and the three
# shadow scenarios below) is measured against these targets: the upstream directly (the
# ceiling), nginx, haproxy, `pingora` (examples/bare_pingora.rs: Pingora 0.9.1 with its defaults
# and no routing, the floor that ficus is built on; pass-through only) and ficus. The targets
# take turns within each round (A B C D A B C D ...), so that a slow drift of the machine hits
# all of them alike, and each measured run follows an unmeasured warm-up. Per target it reports
# the medians of requests per second, p50 and p99 latency, and the proxy's CPU time per request;
# the rate as a percentage of direct; and ficus over nginx for CPU per request and for rps. A run
# with socket errors or non-2xx responses counts as failed and is left out of the medians.
#
# The table goes to stdout; the same data, with every run, to OUT/latest.json.
#
# Shadowing (not in the default SCENARIOS; run them with passthrough, which they are compared with):
#   shadow       the pass-through with every request mirrored to a second upstream: a second nginx
#                (benches/compare/shadow.nginx.conf) on its own port, on the load core, answering
#                as the first does. ficus: a catch-all route with [routes.shadow] percent = 100
#                (timeout 10s, max_in_flight 64: the defaults); nginx: `mirror` to an internal
#                location that proxies to it, logging as the nginx target does. Targets: direct,
#                nginx, ficus (haproxy and the bare Pingora proxy have no mirror). The report gives
#                each proxy's extra CPU per request, shadow minus its own passthrough, and ficus's
#                extra over nginx's (the issue's target: below 1). The shadow's own CPU counts for
#                neither proxy. The requests the shadow received and the connections it accepted
#                in each measured run are counted (its stub_status) and shown per answered request:
#                a mirror that does not mirror is visible, and so is nginx's mirror opening a new
#                connection for every copy (it reads only the answer's head, so cannot keep it).
#   shadow-slow  ficus only: the shadow answers after SHADOW_DELAY (benches/compare/slow-upstream.py,
#                python3). max_in_flight (64) fills and later samples are dropped, as designed.
#   shadow-down  ficus only: nothing listens on the shadow's port; every sample is an error.
#                For both, the report gives ficus's p99 over its passthrough p99 (target: at most
#                1.10x), and ficus's own counts (GET /api/shadow on its admin port).
#
# Plugins (not in the default SCENARIOS):
#   plugins      ficus only, one process with two routes to a: GET /api/ through a jwt (RS256, a
#                key pair made with openssl, one client token reused) and a rate_limit keyed by the
#                token's sub, at a limit no run reaches; and the target ficus-bare, the same request
#                (token included) to /bare/, a route without plugins. The two take turns like any
#                two targets. The report gives ficus over ficus-bare, CPU per request (the issue's
#                target: at most 1.2x). The check first proves the jwt refuses a request without
#                the token (401).
#
# Settings, from the environment:
#   ROUNDS=3            measured rounds (each target once per round)
#   DURATION=10s        length of a measured run
#   WARMUP=2s           length of the unmeasured run before each measured one
#   CONNECTIONS=50      wrk's open connections (one wrk thread)
#   SCENARIOS="passthrough routes1000 split"
#   TARGETS="direct nginx nginx-unbatched haproxy pingora ficus"
#                       nginx writes its access log in batches (buffer=16k flush=1s), as ficus
#                       does: the ratio reported first. nginx-unbatched writes each line at once:
#                       the second ratio.
#   ACCESS_LOG=on       every proxy writes an access-log line per request, to a file; off: none
#   BASE_PORT=18000     upstream on BASE+1 and BASE+2; nginx BASE+81 (unbatched BASE+85), haproxy BASE+82, ficus BASE+83,
#                       pingora BASE+84; the shadow scenarios: the shadow nginx BASE+3 (its
#                       stub_status BASE+4), the slow shadow BASE+5, the closed port BASE+6,
#                       ficus's admin API BASE+86
#   SHADOW_DELAY=2      seconds the slow shadow waits before it answers (shadow-slow)
#   LOAD_CORE=0 PROXY_CORE=1
#   OUT=target/compare  latest.json, latest.txt, runs.tsv and the configurations used
#   KEEP_WORK=0         1 keeps the temporary directory (configs, logs, pid files, wrk output);
#                       it is in /dev/shm when there is one (so are the access logs), else TMPDIR
#   OTHER_LOAD_WARN=5   flag runs during which other programs took more than this % of a core
#   ENGINE=h1          ficus's [proxy] engine: h1 (ficus's own HTTP/1 loop, the default) or
#                       pingora (Pingora's generic proxy path)
#   FICUS_BIN=path      measure this ficus binary instead of building one (an A/B against another
#                       commit: build it in a worktree, then run once with each binary)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/benches/compare

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-50}
SCENARIOS=${SCENARIOS:-passthrough routes1000 split}
TARGETS=${TARGETS:-direct nginx nginx-unbatched haproxy pingora ficus}
ACCESS_LOG=${ACCESS_LOG:-on}
ENGINE=${ENGINE:-h1}
BASE_PORT=${BASE_PORT:-18000}
SHADOW_DELAY=${SHADOW_DELAY:-2}
LOAD_CORE=${LOAD_CORE:-0}
PROXY_CORE=${PROXY_CORE:-1}
OUT=${OUT:-$ROOT/target/compare}
KEEP_WORK=${KEEP_WORK:-0}
# Other programs' share of a core (%) above which a run is flagged as disturbed.
OTHER_LOAD_WARN=${OTHER_LOAD_WARN:-5}

UP_A=$((BASE_PORT + 1))
UP_B=$((BASE_PORT + 2))
# The shadow scenarios: the shadow nginx and its stub_status, the slow shadow, a port nobody
# listens on, and ficus's admin API (its shadow counts).
UP_SHADOW=$((BASE_PORT + 3))
SHADOW_STATUS=$((BASE_PORT + 4))
UP_SLOW=$((BASE_PORT + 5))
UP_DOWN=$((BASE_PORT + 6))
FICUS_ADMIN=$((BASE_PORT + 86))
declare -A PORT=([nginx]=$((BASE_PORT + 81)) [haproxy]=$((BASE_PORT + 82)) [ficus]=$((BASE_PORT + 83))
    [pingora]=$((BASE_PORT + 84)) [nginx-unbatched]=$((BASE_PORT + 85)))
# ficus-bare (the plugins scenario) is the ficus process, asked for SC_PATH_BARE instead.
PORT[ficus-bare]=${PORT[ficus]}

# nginx and haproxy live in /usr/sbin, which a user's PATH may lack.
export PATH=$PATH:/usr/sbin:/sbin

source "$BENCH/scenarios.sh"

say() { printf 'compare: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

# ----------------------------------------------------------------------------------------------
# Setup: tools and the ficus binary
# ----------------------------------------------------------------------------------------------

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "need root (or sudo) for: $*"
    fi
}

# Installs the missing tools from Debian's packages. The packages' own services (a system nginx
# on port 80, a system haproxy) are kept from starting with a policy-rc.d that refuses them, so
# that nothing is left running: the script starts its own processes with its own configs.
# With arguments, installs those commands instead of compare.sh's (benches/webhooks.sh needs fewer).
# shellcheck disable=SC2120 # compare.sh's own call passes none
install_missing() {
    local -A package=([nginx]=nginx [haproxy]=haproxy [wrk]=wrk [cmake]=cmake [curl]=curl [taskset]=util-linux
        [python3]=python3 [jq]=jq [openssl]=openssl)
    local missing=() cmd guard="" status=0 needed=("$@")
    if [ ${#needed[@]} -eq 0 ]; then
        needed=(nginx haproxy wrk cmake curl taskset)
        # The slow shadow is a few lines of Python (benches/compare/slow-upstream.py).
        [[ " $SCENARIOS " == *" shadow-slow "* ]] && needed+=(python3)
        # The plugins scenario's RS256 key pair and token.
        [[ " $SCENARIOS " == *" plugins "* ]] && needed+=(openssl)
    fi
    for cmd in "${needed[@]}"; do
        command -v "$cmd" >/dev/null || missing+=("${package[$cmd]}")
    done
    [ ${#missing[@]} -eq 0 ] && return
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them with"
    say "installing ${missing[*]}"
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        guard=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$guard" >/dev/null
        as_root chmod +x "$guard"
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq || status=$?
    if [ "$status" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null || status=$?
    fi
    [ -n "$guard" ] && as_root rm -f "$guard"
    [ "$status" -eq 0 ] || die "apt-get failed installing ${missing[*]}"
}

build_ficus() {
    if [ -n "${FICUS_BIN:-}" ]; then
        # A given binary (another commit's build, for an A/B): only the bare proxy is built.
        [ -x "$FICUS_BIN" ] || die "FICUS_BIN=$FICUS_BIN is not an executable"
        say "using $FICUS_BIN; building the bare Pingora proxy"
        (cd "$ROOT" && cargo build --release --example bare_pingora) || die "cargo build --release failed"
        PINGORA_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/bare_pingora
        return
    fi
    say "building ficus and the bare Pingora proxy (cargo build --release)"
    (cd "$ROOT" && cargo build --release --bin ficus --example bare_pingora) || die "cargo build --release failed"
    FICUS_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/ficus
    PINGORA_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/bare_pingora
    [ -x "$FICUS_BIN" ] || die "no binary at $FICUS_BIN"
    [ -x "$PINGORA_BIN" ] || die "no binary at $PINGORA_BIN"
}

# The targets measured in the current scenario: TARGETS without those it skips (SC_SKIP), and
# ficus-bare before ficus when the scenario has a bare path.
scenario_targets() {
    local target
    for target in $TARGETS; do
        [ "$target" = ficus ] && [ -n "${SC_PATH_BARE:-}" ] && printf 'ficus-bare '
        [[ " ${SC_SKIP:-} " == *" $target "* ]] || printf '%s ' "$target"
    done
}

# The path TARGET is asked for in the current scenario.
target_path() {
    if [ "$1" = ficus-bare ]; then echo "$SC_PATH_BARE"; else echo "$SC_PATH"; fi
}

# ----------------------------------------------------------------------------------------------
# Processes: everything started here is recorded in PIDS and stopped on exit
# ----------------------------------------------------------------------------------------------

PIDS=()
WORK=""

# Starts "$@" in the background with its output appended to LOG; its pid is left in STARTED.
start_bg() {
    local log=$1
    shift
    "$@" >>"$log" 2>&1 &
    STARTED=$!
    PIDS+=("$STARTED")
}

# Stops one process we started: SIG (default TERM), then KILL after 10 s. It is then forgotten,
# so that cleanup never signals a pid the system has since given to another process.
stop_pid() {
    local pid=$1 sig=${2:-TERM} i p rest=()
    for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || rest+=("$p"); done
    PIDS=("${rest[@]}")
    kill -"$sig" "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    if [ -n "$WORK" ]; then
        if [ "$KEEP_WORK" = 1 ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
    fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Waits until something listens on PORT (for a server that takes its time to answer), failing
# early if PID (the server) has exited.
wait_listening() {
    local port=$1 pid=$2 log=$3 i
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || die "the server for port $port exited; its log ($log):
$(tail -n 20 "$log")"
        port_in_use "$port" && return
        sleep 0.1
    done
    die "nothing listens on port $port after 15 s; see $log"
}

# Waits until PORT answers HTTP, failing early if PID (the server) has exited.
wait_ready() {
    local port=$1 pid=$2 log=$3 i
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || die "the server for port $port exited; its log ($log):
$(tail -n 20 "$log")"
        curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/" && return
        sleep 0.1
    done
    die "nothing answers on port $port after 15 s; see $log"
}

# Copies TEMPLATE to OUT, replacing @KEY@ for each KEY=VALUE argument and, for each KEY<FILE
# argument, by FILE's contents (big generated blocks, too big for an environment variable).
render() {
    local template=$1 out=$2 arg envs=()
    shift 2
    for arg in "$@"; do
        case $arg in
            *'<'*) envs+=("RF_${arg%%<*}=${arg#*<}") ;;
            *) envs+=("RV_$arg") ;;
        esac
    done
    # shellcheck disable=SC2016 # the program is awk's, not the shell's
    env "${envs[@]}" awk '
        BEGIN {
            for (k in ENVIRON) {
                if (k ~ /^RV_/) val["@" substr(k, 4) "@"] = ENVIRON[k]
                if (k ~ /^RF_/) {
                    text = ""
                    while ((getline line < ENVIRON[k]) > 0) text = text line "\n"
                    close(ENVIRON[k])
                    sub(/\n$/, "", text)
                    val["@" substr(k, 4) "@"] = text
                }
            }
        }
        {
            for (k in val) {
                rest = $0; done = ""
                while ((i = index(rest, k)) > 0) {
                    done = done substr(rest, 1, i - 1) val[k]
                    rest = substr(rest, i + length(k))
                }
                $0 = done rest
            }
            print
        }' "$template" >"$out"
}

# ----------------------------------------------------------------------------------------------
# The upstream (core 0) and the proxies (core 1)
# ----------------------------------------------------------------------------------------------

# The upstreams' answer body, for nginx's `return`: 1023 bytes and a newline, 1 KiB.
BODY="$(printf '%1023s' '' | tr ' ' 'x')\\n"

start_upstream() {
    local dir=$WORK/upstream
    mkdir -p "$dir"
    render "$BENCH/upstream.nginx.conf" "$dir/nginx.conf" PREFIX="$dir" UP_A="$UP_A" UP_B="$UP_B" BODY="$BODY"
    start_bg "$dir/stderr.log" taskset -c "$LOAD_CORE" nginx -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf"
    wait_ready "$UP_A" "$STARTED" "$dir/error.log"
    wait_ready "$UP_B" "$STARTED" "$dir/error.log"
    mapfile -t UPSTREAM_PIDS < <(proc_tree "$STARTED")
}

# The shadows the selected scenarios mirror to, each started only when one needs it: the shadow
# nginx (shadow) and the slow shadow (shadow-slow), on the load core beside the upstream. Their
# CPU is counted with the upstream's (UPSTREAM_PIDS): the load core's, never a proxy's. The
# closed port of shadow-down needs nothing; main checks that nothing listens on it.
start_shadows() {
    local dir
    if [[ " $SCENARIOS " == *" shadow "* ]]; then
        dir=$WORK/shadow-upstream
        mkdir -p "$dir"
        render "$BENCH/shadow.nginx.conf" "$dir/nginx.conf" PREFIX="$dir" PORT="$UP_SHADOW" \
            STATUS_PORT="$SHADOW_STATUS" BODY="$BODY"
        start_bg "$dir/stderr.log" taskset -c "$LOAD_CORE" nginx -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf"
        wait_ready "$UP_SHADOW" "$STARTED" "$dir/error.log"
        wait_ready "$SHADOW_STATUS" "$STARTED" "$dir/error.log"
        mapfile -t -O "${#UPSTREAM_PIDS[@]}" UPSTREAM_PIDS < <(proc_tree "$STARTED")
    fi
    if [[ " $SCENARIOS " == *" shadow-slow "* ]]; then
        dir=$WORK/slow-upstream
        mkdir -p "$dir"
        # It prints one line per request received; stderr goes to the same file.
        SLOW_LOG=$dir/requests.log
        start_bg "$SLOW_LOG" taskset -c "$LOAD_CORE" python3 "$BENCH/slow-upstream.py" "$UP_SLOW" "$SHADOW_DELAY" "$UP_A"
        wait_listening "$UP_SLOW" "$STARTED" "$SLOW_LOG"
        UPSTREAM_PIDS+=("$STARTED")
    fi
}

# How many requests the current scenario's shadow has received so far, and how many connections
# it has accepted ("REQUESTS CONNECTIONS"), each "-" when nothing can say (shadow-down, a
# scenario without a shadow; the slow shadow counts only requests). The shadow nginx's
# stub_status counts its own request and connection too: see mirrored_between.
shadow_seen() {
    local seen=""
    case $SC_SHADOW in
        fast) seen=$(curl -s --max-time 2 "http://127.0.0.1:$SHADOW_STATUS/" | awk 'NR == 3 { print $3, $1 }' || true) ;;
        slow) seen="$(grep -c ' HTTP/1\.[01]$' "$SLOW_LOG" || true) -" ;;
    esac
    echo "${seen:-- -}"
}

# The requests the shadow received and the connections it accepted between two shadow_seen
# counts BEFORE and AFTER, as "REQUESTS CONNECTIONS" ("-" for what either count lacks). READS is
# how many calls of shadow_seen came after BEFORE (AFTER's included): with the shadow nginx, each
# was a request and a connection of its own.
mirrored_between() {
    local reads=$3 self=0 b_req b_conn a_req a_conn req=- conn=-
    read -r b_req b_conn <<<"$1"
    read -r a_req a_conn <<<"$2"
    [ "$SC_SHADOW" = fast ] && self=$reads
    [[ $b_req =~ ^[0-9]+$ && $a_req =~ ^[0-9]+$ ]] && req=$((a_req - b_req - self))
    [[ $b_conn =~ ^[0-9]+$ && $a_conn =~ ^[0-9]+$ ]] && conn=$((a_conn - b_conn - self))
    echo "$req $conn"
}

# ficus's own shadow counts for the scenario's one shadowed route, from its admin API
# (GET /api/shadow), as "compared=N matched=N mismatched=N errors=N skipped=N dropped=N"; a count
# it could not read is "?".
ficus_shadow_counts() {
    local json key value out=""
    json=$(curl -s --max-time 2 "http://127.0.0.1:$FICUS_ADMIN/api/shadow" || true)
    for key in compared matched mismatched errors skipped dropped; do
        value=$(grep -o "\"$key\": *[0-9]*" <<<"$json" | head -n 1 | grep -o '[0-9]*$' || true)
        out="$out$key=${value:-?} "
    done
    echo "${out% }"
}

# ficus's count of failed mirrored requests (0 when it cannot be read yet).
ficus_shadow_errors() {
    local n
    n=$(ficus_shadow_counts | grep -o 'errors=[0-9]*' | cut -d= -f2 || true)
    echo "${n:-0}"
}

declare -A PROXY_PID ACCESS_FILE

# Writes every proxy's configuration for the scenario whose parts are in $1, and starts the
# proxies named in TARGETS on the proxy core.
start_proxies() {
    local parts=$1 target dir log
    for target in nginx nginx-unbatched haproxy pingora ficus; do
        [[ " $(scenario_targets) " == *" $target "* ]] || continue
        dir=$WORK/$target
        rm -rf "$dir"
        mkdir -p "$dir"
        ACCESS_FILE[$target]=$dir/access.log
        case $target in
            nginx | nginx-unbatched)
                # ficus batches its access log (16 KiB or 200 ms); the like-for-like nginx does
                # too, and the unbatched one writes every line as it goes.
                local access=off
                if [ "$ACCESS_LOG" = on ] && [ "$target" = nginx ]; then
                    access="$dir/access.log combined buffer=16k flush=1s"
                elif [ "$ACCESS_LOG" = on ]; then
                    access="$dir/access.log"
                fi
                render "$BENCH/proxy.nginx.conf" "$dir/nginx.conf" PREFIX="$dir" PORT="${PORT[$target]}" \
                    UP_A="$UP_A" UP_B="$UP_B" ACCESS_LOG="$access" \
                    "HTTP<$parts/nginx.http" "LOCATIONS<$parts/nginx.locations"
                log=$dir/error.log
                start_bg "$dir/stderr.log" taskset -c "$PROXY_CORE" nginx -e "$log" -p "$dir" -c "$dir/nginx.conf"
                ;;
            haproxy)
                local log_global="" log_defaults=""
                if [ "$ACCESS_LOG" = on ]; then
                    log_global="    log stdout format raw local0"
                    log_defaults="    option httplog"
                fi
                render "$BENCH/haproxy.cfg" "$dir/haproxy.cfg" PORT="${PORT[haproxy]}" UP_A="$UP_A" UP_B="$UP_B" \
                    LOG_GLOBAL="$log_global" LOG_DEFAULTS="$log_defaults" \
                    "RULES<$parts/haproxy.rules" "BACKENDS<$parts/haproxy.backends"
                haproxy -c -q -f "$dir/haproxy.cfg" || die "haproxy rejects $dir/haproxy.cfg"
                log=$dir/haproxy.log
                # stdout carries the access log, stderr haproxy's own messages.
                taskset -c "$PROXY_CORE" haproxy -f "$dir/haproxy.cfg" -db >>"$dir/access.log" 2>>"$log" &
                STARTED=$!
                PIDS+=("$STARTED")
                ;;
            ficus)
                # ficus watches the directory of its table and wakes on every change in it: the
                # table gets a directory of its own, away from the logs written during the run.
                mkdir -p "$dir/table"
                # The shadow scenarios read ficus's shadow counts from its admin API.
                local admin=""
                [ -z "$SC_SHADOW" ] || admin="admin = \"127.0.0.1:$FICUS_ADMIN\""
                render "$BENCH/ficus.toml" "$dir/table/ficus.toml" DATA_DIR="$dir/data" PORT="${PORT[ficus]}" \
                    UP_A="$UP_A" UP_B="$UP_B" ENGINE="$ENGINE" ADMIN="$admin" "ROUTES<$parts/ficus.routes"
                "$FICUS_BIN" check "$dir/table/ficus.toml" >/dev/null || die "ficus rejects $dir/table/ficus.toml"
                local level=warn
                [ "$ACCESS_LOG" = on ] && level=info
                # stderr carries the access log and everything else ficus says.
                log=$dir/access.log
                RUST_LOG=$level start_bg "$log" taskset -c "$PROXY_CORE" "$FICUS_BIN" run --config "$dir/table/ficus.toml"
                ;;
            pingora)
                local access=()
                [ "$ACCESS_LOG" = on ] && access=("$dir/access.log")
                log=$dir/stderr.log
                start_bg "$log" taskset -c "$PROXY_CORE" "$PINGORA_BIN" "127.0.0.1:${PORT[pingora]}" \
                    "127.0.0.1:$UP_A" "${access[@]}"
                ;;
        esac
        PROXY_PID[$target]=$STARTED
        wait_ready "${PORT[$target]}" "$STARTED" "$log"
    done
    if [[ " $(scenario_targets) " == *" ficus-bare "* ]]; then
        PROXY_PID[ficus-bare]=${PROXY_PID[ficus]}
        ACCESS_FILE[ficus-bare]=${ACCESS_FILE[ficus]}
    fi
}

stop_proxies() {
    local target
    for target in "${!PROXY_PID[@]}"; do
        # ficus-bare is the ficus process, stopped as ficus.
        [ "$target" = ficus-bare ] && { unset "PROXY_PID[$target]"; continue; }
        # ficus: SIGINT is its fast shutdown (SIGTERM would wait out the grace period); the bare
        # Pingora proxy has no grace period, and stops the same way.
        if [ "$target" = ficus ] || [ "$target" = pingora ]; then stop_pid "${PROXY_PID[$target]}" INT; else stop_pid "${PROXY_PID[$target]}"; fi
        unset "PROXY_PID[$target]"
    done
}

# ----------------------------------------------------------------------------------------------
# Measuring
# ----------------------------------------------------------------------------------------------

# PID and all its descendants (nginx: the master and its worker).
proc_tree() {
    local root=$1 f line rest fields
    echo "$root"
    for f in /proc/[0-9]*/stat; do
        read -r line 2>/dev/null <"$f" || continue
        rest=${line##*) }
        read -ra fields <<<"$rest"
        [ "${fields[1]}" = "$root" ] && proc_tree "${f//[^0-9]/}"
    done
    return 0
}

# The CPU time the processes have used so far, user + system, in clock ticks: fields 14 (utime)
# and 15 (stime) of /proc/PID/stat, which cover all of a process's threads.
cpu_ticks() {
    local total=0 pid line rest fields
    for pid in "$@"; do
        read -r line 2>/dev/null <"/proc/$pid/stat" || die "process $pid is gone"
        rest=${line##*) } # the command name, in parentheses, may hold spaces
        read -ra fields <<<"$rest"
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}

# One wrk run of DURATION against URL with the scenario's headers; wrk's output on stdout.
run_wrk() {
    local duration=$1 url=$2
    BENCH_HEADERS=$SC_HEADERS BENCH_RANDOM_HEADER=$SC_RANDOM_HEADER \
        taskset -c "$LOAD_CORE" wrk -t1 -c"$CONNECTIONS" -d"$duration" --latency -s "$BENCH/wrk.lua" "$url"
}

# The CPU counters one measured run is judged by, as "NAME=TICKS ..." (all in clock ticks):
#   proxy     the proxy's processes (0 for direct)
#   upstream  the upstream nginx
#   children  this shell's finished children: wrk, once the run is over
#   busyN, allN  core N's user+nice+system+steal time and all its time (/proc/stat)
# What a core was busy with beyond these is other load: another program on the machine (or the
# hypervisor's steal) competing with the run and making its figures unreliable.
snapshot() {
    local line rest fields proxy=0 upstream
    if [ $# -gt 0 ]; then proxy=$(cpu_ticks "$@") || return 1; fi
    upstream=$(cpu_ticks "${UPSTREAM_PIDS[@]}") || return 1
    read -r line </proc/$$/stat
    rest=${line##*) }
    read -ra fields <<<"$rest"
    printf 'proxy=%s upstream=%s children=%s ' "$proxy" "$upstream" $((fields[13] + fields[14]))
    awk -v a="cpu$LOAD_CORE" -v b="cpu$PROXY_CORE" '
        $1 == a { printf "busy0=%d all0=%d ", $2 + $3 + $4 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }
        $1 == b { printf "busy1=%d all1=%d ", $2 + $3 + $4 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }
        END { print "" }' /proc/stat
}

# Measures TARGET once (a warm-up, then the measured run) and appends the run to runs.tsv.
measure() {
    local scenario=$1 target=$2 round=$3
    local port=$SC_DIRECT_PORT pids=() before after out wrk_file
    [ "$target" = direct ] || port=${PORT[$target]}
    local url
    url="http://127.0.0.1:$port$(target_path "$target")"
    wrk_file=$WORK/wrk/$scenario-$target-$round
    mkdir -p "$WORK/wrk"

    # The warm-up fills connection pools and caches; its figures are not kept.
    run_wrk "$WARMUP" "$url" >"$wrk_file.warmup" 2>&1 || true

    if [ "$target" != direct ]; then
        if ! kill -0 "${PROXY_PID[$target]}" 2>/dev/null; then
            record "$scenario" "$target" "$round" failed - - - - 0 - - "the proxy process has exited" - -
            return
        fi
        mapfile -t pids < <(proc_tree "${PROXY_PID[$target]}")
    fi
    # With a shadow, how many requests it received, counted around the measured run (outside
    # the CPU snapshots; a status request costs no proxy anything).
    local seen_before seen_after mirrored=- shadow_conns=-
    seen_before=$(shadow_seen)
    before=$(snapshot "${pids[@]}")
    out=$(run_wrk "$DURATION" "$url" 2>&1) || true
    after=$(snapshot "${pids[@]}" 2>/dev/null) || after=""
    seen_after=$(shadow_seen)
    [ "$target" = direct ] || read -r mirrored shadow_conns <<<"$(mirrored_between "$seen_before" "$seen_after" 1)"
    printf '%s\n' "$out" >"$wrk_file"

    # wrk.lua's line: RESULT requests=N duration_us=N p50_us=N p99_us=N connect=N read=N ...
    local result requests=0 duration_us=0 p50_us=0 p99_us=0 connect=0 read=0 write=0 status=0 timeout=0 kv
    result=$(grep '^RESULT ' <<<"$out" | tail -n 1 || true)
    for kv in ${result#RESULT }; do
        case ${kv%%=*} in
            requests | duration_us | p50_us | p99_us | connect | read | write | status | timeout)
                printf -v "${kv%%=*}" '%s' "${kv#*=}" ;;
        esac
    done

    # A run with any error is failed: its rate and latency are not those of a working proxy.
    local note=""
    [ -n "$result" ] || note="wrk printed no result; see its output in $wrk_file"
    [ "$requests" -gt 0 ] || note=${note:-"no request completed"}
    [ $((connect + read + write + timeout)) -eq 0 ] ||
        note="socket errors: connect $connect, read $read, write $write, timeout $timeout"
    [ "$status" -eq 0 ] || note="${note:+$note; }$status non-2xx/3xx responses"
    grep -qE 'Socket errors|Non-2xx or 3xx' <<<"$out" && note=${note:-"wrk reported errors"}
    [ -n "$after" ] || note=${note:-"the proxy process has exited"}

    # Rate, CPU per request (the proxy's ticks over the requests wrk saw answered) and the other
    # load on each core, as a percentage of that core's time.
    local figures
    figures=$(awk -v before="$before" -v after="$after" -v n="$requests" -v us="$duration_us" \
        -v hz="$CLK_TCK" -v direct="$([ "$target" = direct ] && echo 1 || echo 0)" '
        function parse(text, into,   i, kv, parts) {
            n_ = split(text, parts, " ")
            for (i = 1; i <= n_; i++) { split(parts[i], kv, "="); into[kv[1]] = kv[2] }
        }
        function pct(busy, all) { return all > 0 && busy > 0 ? 100 * busy / all : 0 }
        BEGIN {
            parse(before, b); parse(after, a)
            for (k in a) d[k] = a[k] - b[k]
            rps = us > 0 ? n * 1e6 / us : 0
            if (after == "") { printf "%.1f - - -\n", rps; exit }
            cpu = (direct || n == 0) ? "-" : sprintf("%.2f", d["proxy"] * 1e6 / hz / n)
            other0 = pct(d["busy0"] - d["upstream"] - d["children"], d["all0"])
            other1 = pct(d["busy1"] - d["proxy"], d["all1"])
            printf "%.1f %s %.0f %.0f\n", rps, cpu, other0, other1
        }')
    local rps cpu other0 other1
    read -r rps cpu other0 other1 <<<"$figures"
    record "$scenario" "$target" "$round" "$([ -z "$note" ] && echo ok || echo failed)" \
        "$rps" "$p50_us" "$p99_us" "$cpu" "$requests" "$other0" "$other1" "${note:--}" "$mirrored" "$shadow_conns"
    [ "$target" = direct ] || trim_access_log "$target"
}

# Appends one run to runs.tsv (scenario, target, round, ok|failed, rps, p50_us, p99_us,
# cpu_us_per_req, requests, other load % on the load core and on the proxy core, note, requests
# the shadow received and connections it accepted, or "-") and says it on stderr.
record() {
    local IFS=$'\t'
    printf '%s\n' "$*" >>"$OUT/runs.tsv"
    local scenario=$1 target=$2 round=$3 ok=$4 rps=$5 p50=$6 p99=$7 cpu=$8 requests=$9 other0=${10} other1=${11}
    local note=${12} mirrored=${13:--} conns=${14:--}
    if [ "$ok" = ok ]; then
        say "$(awk -v s="$scenario" -v r="$round" -v R="$ROUNDS" -v t="$target" -v rps="$rps" -v p50="$p50" \
            -v p99="$p99" -v cpu="$cpu" -v o0="$other0" -v o1="$other1" -v n="$requests" -v m="$mirrored" -v c="$conns" 'BEGIN {
            printf "%-11s round %d/%d %-8s %8.0f rps  p50 %6.2f ms  p99 %6.2f ms  CPU %6s µs/req  other load %s%%/%s%%",
                s, r, R, t, rps, p50 / 1000, p99 / 1000, cpu, o0, o1
            if (m != "-" && n > 0) printf "  mirrored %d (%.1f%%)", m, 100 * m / n
            if (c != "-") printf " on %d new connections", c }')"
        if ((other0 > OTHER_LOAD_WARN || other1 > OTHER_LOAD_WARN)); then
            say "  warning: other programs took ${other0}% of core $LOAD_CORE and ${other1}% of core $PROXY_CORE during this run"
        fi
    else
        say "$scenario round $round/$ROUNDS $target FAILED: $note"
    fi
}

# The access logs grow by about 100 MB a run: keep each proxy's other messages (for ficus they
# share stderr with its access log) and empty the file. Every writer opened it for appending, so
# emptying it under them is safe.
trim_access_log() {
    local target=$1 file=${ACCESS_FILE[$1]}
    [ -f "$file" ] || return 0
    if [[ $target == ficus* ]]; then
        grep -v -F 'ficus::access' "$file" >>"$WORK/ficus-messages.log" || true
    fi
    : >"$file"
}

# Before measuring, sends the scenario's request once through every target and checks who
# answered: the right side (x-upstream), 200, 1 KiB. For the split, 200 users through each proxy
# must land on both sides, about 10% on b. What it saw goes into the report.
check_scenario() {
    local scenario=$1 target port summary="" headers=() pairs=() pair
    IFS='|' read -ra pairs <<<"$SC_HEADERS"
    for pair in "${pairs[@]}"; do headers+=(-H "$pair"); done
    for target in $(scenario_targets); do
        port=$SC_DIRECT_PORT
        [ "$target" = direct ] || port=${PORT[$target]}
        if [ "$SC_EXPECT" = split ]; then
            local u b=0 side
            for ((u = 1; u <= 200; u++)); do
                side=$(answer "$port" "${headers[@]}" -H "x-user-id: user-$u")
                [ "$side" = "200 1024 b" ] && b=$((b + 1))
                [[ "$side" == "200 1024 "[ab] ]] || die "$scenario: $target answered '$side' for user-$u"
            done
            [ "$target" = direct ] && continue
            ((b > 0 && b < 60)) || die "$scenario: $target sent $b of 200 users to b; expected about 20"
            summary="${summary:+$summary, }$target $b/200 users on b"
        else
            local want="200 1024 $SC_EXPECT" got seen=-
            if [ -n "$SC_SHADOW" ] && [ "$target" != direct ]; then
                if [ "$SC_SHADOW" = down ]; then seen=$(ficus_shadow_errors); else seen=$(shadow_seen); fi
            fi
            got=$(ANSWER_PATH=$(target_path "$target") answer "$port" "${headers[@]}")
            [ "$got" = "$want" ] || die "$scenario: $target answered '$got' (status, bytes, side), expected '$want'"
            [ "$target" = direct ] && continue
            summary="${summary:+$summary, }$target -> $SC_EXPECT"
            if [ -n "$SC_REFUSED" ] && [ "$target" != ficus-bare ]; then
                got=$(answer "$port")
                [[ $got == "$SC_REFUSED "* ]] || die "$scenario: without its headers, $target answered '$got'; expected $SC_REFUSED"
                summary="$summary, $SC_REFUSED without the token"
            fi
            if [ -n "$SC_SHADOW" ]; then
                check_mirrored "$scenario" "$target" "$seen"
                summary="$summary ($MIRRORED)"
            fi
        fi
    done
    CHECK=$summary
    say "$scenario: check ok: $summary"
}

# After one request through TARGET, waits up to 5 s for its copy to reach the shadow (with the
# shadow down: for ficus to count the refused attempt as an error), and stops the script if it
# does not: a mirror that mirrors nothing would make the shadow scenarios meaningless. BEFORE is
# shadow_seen's count (shadow-down: ficus_shadow_errors') just before the request. Says what it
# saw in MIRRORED.
check_mirrored() {
    local scenario=$1 target=$2 before=$3 i now
    for ((i = 1; i <= 50; i++)); do
        if [ "$SC_SHADOW" = down ]; then
            now=$(ficus_shadow_errors)
            if ((now > before)); then
                MIRRORED="its copy refused, counted as a shadow error"
                return
            fi
        else
            now=$(shadow_seen)
            local arrived
            read -r arrived _ <<<"$(mirrored_between "$before" "$now" "$i")"
            if [[ $arrived =~ ^[0-9]+$ ]] && ((arrived > 0)); then
                MIRRORED="its copy reached the shadow"
                return
            fi
        fi
        sleep 0.1
    done
    die "$scenario: the request through $target was not mirrored to the shadow within 5 s"
}

# "STATUS BYTES SIDE" of one request to PORT with the scenario's path (ANSWER_PATH, when set) and
# the given curl args.
answer() {
    local port=$1 head=$WORK/check.head code size side
    shift
    rm -f "$head"
    read -r code size < <(curl -s --max-time 5 -o /dev/null -D "$head" -w '%{http_code} %{size_download}\n' \
        "$@" "http://127.0.0.1:$port${ANSWER_PATH:-$SC_PATH}" || echo "000 0")
    side=$(tr -d '\r' <"$head" 2>/dev/null | awk -F': *' 'tolower($1) == "x-upstream" { print $2 }')
    echo "$code $size ${side:--}"
}

run_scenario() {
    local scenario=$1 parts=$WORK/scenario-$1 round target note=""
    local fn=scenario_${scenario//-/_}
    declare -F "$fn" >/dev/null || die "unknown scenario '$scenario' (known: $SCENARIOS_ALL)"
    mkdir -p "$parts"
    SC_PATH_BARE="" # only the plugins scenario has one
    "$fn" "$parts"
    say "scenario $scenario: $SC_TITLE"
    start_proxies "$parts"
    check_scenario "$scenario"
    for ((round = 1; round <= ROUNDS; round++)); do
        for target in $(scenario_targets); do
            measure "$scenario" "$target" "$round"
        done
    done
    # What ficus itself counted for the shadowed route over the scenario (the check, warm-ups
    # and measured runs; samples still in flight are not counted yet).
    if [ -n "$SC_SHADOW" ] && [[ " $(scenario_targets) " == *" ficus "* ]]; then
        note="ficus's own shadow counts (GET /api/shadow): $(ficus_shadow_counts)"
        say "$scenario: $note"
    fi
    printf '%s\t%s\t%s\t%s\n' "$scenario" "$SC_TITLE" "$CHECK" "$note" >>"$OUT/scenarios.tsv"
    stop_proxies
    keep_configs_and_logs "$scenario"
}

# Keeps the configurations that produced the numbers, and each proxy's own messages (not its
# access log), in OUT/configs/SCENARIO and OUT/logs/SCENARIO-PROXY.log.
keep_configs_and_logs() {
    local scenario=$1 target dir
    mkdir -p "$OUT/configs/$scenario" "$OUT/logs"
    for target in $(scenario_targets); do
        dir=$WORK/$target
        [ "$target" != direct ] && [ -d "$dir" ] || continue
        cp "$dir"/*.conf "$dir"/*.cfg "$dir"/table/*.toml "$OUT/configs/$scenario/" 2>/dev/null || true
        case $target in
            nginx | nginx-unbatched) cat "$dir/stderr.log" "$dir/error.log" ;;
            haproxy) cat "$dir/haproxy.log" ;;
            pingora) cat "$dir/stderr.log" ;;
            ficus)
                trim_access_log ficus
                cat "$WORK/ficus-messages.log"
                : >"$WORK/ficus-messages.log"
                ;;
        esac 2>/dev/null >"$OUT/logs/$scenario-$target.log" || true
    done
}

# Says which proxies logged warnings or errors during the run. Pingora logs an ERROR for each
# request in flight when wrk stops and closes its connections ("Downstream ConnectionClosed"):
# those are counted apart, as they are expected.
mention_log_problems() {
    local file n closed
    for file in "$OUT"/logs/*.log; do
        [ -f "$file" ] || continue
        n=$(grep -ciE 'warn|error|emerg|alert|crit' "$file" || true)
        closed=$(grep -c 'Downstream ConnectionClosed' "$file" || true)
        n=$((n - closed))
        [ "$closed" -eq 0 ] || say "note: $closed 'Downstream ConnectionClosed' error line(s) (wrk stopping mid-request) in $file"
        [ "$n" -eq 0 ] || say "note: $n other warning/error line(s) in $file"
    done
}

# ----------------------------------------------------------------------------------------------
# Reporting
# ----------------------------------------------------------------------------------------------

json_str() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}

report() {
    local meta cpu
    cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
    meta=$(
        printf '  "date": %s,\n' "$(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)")"
        printf '  "settings": {"rounds": %d, "duration": %s, "warmup": %s, "connections": %d, "access_log": %s, "load_core": %d, "proxy_core": %d, "shadow_delay_s": %s},\n' \
            "$ROUNDS" "$(json_str "$DURATION")" "$(json_str "$WARMUP")" "$CONNECTIONS" "$(json_str "$ACCESS_LOG")" "$LOAD_CORE" "$PROXY_CORE" "$SHADOW_DELAY"
        printf '  "machine": {"cores": %d, "cpu": %s, "kernel": %s, "clk_tck": %d},\n' \
            "$(nproc)" "$(json_str "$cpu")" "$(json_str "$(uname -r)")" "$CLK_TCK"
        printf '  "versions": {"ficus": %s, "nginx": %s, "haproxy": %s, "wrk": %s}' \
            "$(json_str "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)")" \
            "$(json_str "$(nginx -v 2>&1 | sed 's|.*nginx/||')")" \
            "$(json_str "$(haproxy -v 2>&1 | awk 'NR == 1 { print $3 }')")" \
            "$(json_str "$(wrk -v 2>&1 | awk 'NR == 1 { print $2 }')")"
    )
    REPORT_JSON=$OUT/latest.json REPORT_META=$meta OTHER_LOAD_WARN=$OTHER_LOAD_WARN SHADOW_DELAY=$SHADOW_DELAY \
        awk -f "$BENCH/report.awk" \
        "$OUT/scenarios.tsv" "$OUT/runs.tsv" | tee "$OUT/latest.txt"
    echo
    echo "JSON: $OUT/latest.json"
}

# ----------------------------------------------------------------------------------------------

main() {
    local cores scenario port
    cores=$(nproc)
    ((cores >= 2)) || die "needs 2 cores (one for the load and the upstream, one for the proxy); this machine has $cores"
    ((cores == 2)) || say "note: $cores cores; using core $LOAD_CORE for the load and core $PROXY_CORE for the proxy"
    [[ $ACCESS_LOG == on || $ACCESS_LOG == off ]] || die "ACCESS_LOG is on or off, not '$ACCESS_LOG'"

    # shellcheck disable=SC2119 # its own list
    install_missing
    build_ficus
    CLK_TCK=$(getconf CLK_TCK)

    for port in "$UP_A" "$UP_B" "$UP_SHADOW" "$SHADOW_STATUS" "$UP_SLOW" "$UP_DOWN" "$FICUS_ADMIN" "${PORT[@]}"; do
        ! port_in_use "$port" || die "port $port is in use (set BASE_PORT to move every port)"
    done

    mkdir -p "$OUT"
    rm -rf "$OUT/configs" "$OUT/logs"
    : >"$OUT/runs.tsv"
    : >"$OUT/scenarios.tsv"
    # The access logs are written here: in memory (/dev/shm) when the machine has it, so that
    # logging costs each proxy its own work (formatting, one write) rather than the disk's,
    # which varies from machine to machine far more than the proxies do.
    local base=${TMPDIR:-/tmp}
    [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ] && base=/dev/shm
    WORK=$(mktemp -d "$base/ficus-compare.XXXXXX")
    trap cleanup EXIT
    trap 'exit 130' INT TERM HUP
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

    say "layout: core $LOAD_CORE wrk + upstream nginx; core $PROXY_CORE the proxy; $ROUNDS rounds of $DURATION (warm-up $WARMUP), $CONNECTIONS connections, access logs $ACCESS_LOG (in $WORK)"
    start_upstream
    start_shadows
    for scenario in $SCENARIOS; do
        run_scenario "$scenario"
    done
    report
    mention_log_problems
}

# benches/webhooks.sh sources this file for its helpers; only a run of its own measures.
[ "${BASH_SOURCE[0]}" != "$0" ] || main "$@"
