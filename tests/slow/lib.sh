# shellcheck shell=bash
# lib.sh: shared helpers of the slow deployment tests (sourced, not run).
# Every test makes one temp dir ($T) and registers what it starts; the EXIT trap
# undoes it all, in reverse order, whatever way the test ends.

set -u
SKIP=77                       # CTest SKIP_RETURN_CODE
: "${SLOW_CACHE:?SLOW_CACHE must name the cache dir of built artifacts}"
: "${PROXYD_SRC:?PROXYD_SRC must name the source tree}"
mkdir -p "$SLOW_CACHE"
if [ ! -f "$PROXYD_SRC/conf/proxy.conf" ]; then
    echo "SKIPPED: conf/proxy.conf (the packaged default configuration) is not in the tree"
    exit 77
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/proxyd-slow.XXXXXX")
CLEANUPS=()

log() { printf '[%s %s] %s\n' "$(date -u +%H:%M:%S)" "${TEST_NAME:-slow}" "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
skip() { log "SKIP: $*"; echo "SKIPPED: $*"; exit $SKIP; }

# at_exit CMD: run CMD (a string, eval'ed) when the test exits, last added first.
at_exit() { CLEANUPS+=("$1"); }
run_cleanups() {
    local rc=$?
    local i
    for ((i = ${#CLEANUPS[@]} - 1; i >= 0; i--)); do
        eval "${CLEANUPS[$i]}" >/dev/null 2>&1 || true
    done
    rm -rf "$T"
    exit $rc
}
trap run_cleanups EXIT
trap 'exit 130' INT TERM

need() { # need CMD... : skip unless every command exists
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || skip "$c not found (install its Debian package)"
    done
}
need_root() { [ "$(id -u)" -eq 0 ] || skip "needs root"; }

# kill_wait PID [SECONDS]: TERM, then KILL after SECONDS (default 10), reap.
kill_wait() {
    local pid=$1 t=${2:-10} i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < t * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}

# wait_for SECONDS CMD...: poll CMD every 0.2 s until it succeeds (0) or time is up (1).
wait_for() {
    local t=$1 end
    shift
    end=$((SECONDS + t))
    while ((SECONDS < end)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}

# start_dockerd: a dockerd of the test's own (no iptables, no bridge, its own
# dirs and socket under $T/docker, in D); DOCKER_HOST points the client there and
# docker() is Debian's client ($DOCKER_CLI). Skips when dockerd cannot start here.
# Cleanups: dockerd by its pid, then any mount it left under D (at_exit runs the
# last first, so a test's own at_exit calls after this run while dockerd still runs).
start_dockerd() {
    D="$T/docker"
    mkdir -p "$D"
    dockerd --iptables=false --ip6tables=false --bridge=none --ip-forward=false --ip-masq=false \
        --data-root="$D/root" --exec-root="$D/exec" --pidfile="$D/dockerd.pid" \
        -H "unix://$D/docker.sock" >"$D/dockerd.log" 2>&1 &
    dockerd_pid=$!
    at_exit "findmnt -rn -o TARGET | grep '^$D/' | sort -r | xargs -r -n1 umount -l"
    at_exit "kill_wait $dockerd_pid 30"
    export DOCKER_HOST="unix://$D/docker.sock"
    docker() { $DOCKER_CLI "$@"; }
    if ! wait_for 60 docker info; then
        tail -20 "$D/dockerd.log" >&2
        skip "dockerd does not start in this sandbox (log above)"
    fi
    log "dockerd $dockerd_pid up, storage driver $(docker info -f '{{.Driver}}')"
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_origin: the scripted origin on 127.0.0.1; sets ORIGIN_PORT.
start_origin() {
    python3 "$PROXYD_SRC/tests/slow/origin.py" 0 "$T/origin.port" 900 &
    ORIGIN_PID=$!
    at_exit "kill_wait $ORIGIN_PID 5"
    wait_for 10 test -s "$T/origin.port" || fail "origin did not start"
    ORIGIN_PORT=$(cat "$T/origin.port")
    log "origin on 127.0.0.1:$ORIGIN_PORT"
}
origin_count() { cat "$T/origin.port.count" 2>/dev/null || echo 0; }

# proxy_get PROXY_HOSTPORT URL OUTFILE: one GET through the proxy; prints the status.
proxy_get() {
    curl -sS --noproxy '' -x "http://$1" -o "$3" -D "$3.headers" -w '%{http_code}' \
        --max-time 30 "$2"
}

# check_requests PROXY URL_BASE N: N distinct GETs plus one repeat through the
# proxy; each must be 200 with the origin's body. Fails the test otherwise.
check_requests() {
    local proxy=$1 base=$2 n=$3 i code
    for ((i = 1; i <= n; i++)); do
        code=$(proxy_get "$proxy" "$base/item/$i" "$T/body") || fail "request $i through $proxy failed"
        [ "$code" = 200 ] || fail "request $i: status $code, body: $(head -c 300 "$T/body")"
        grep -qx "origin says hello for /item/$i" "$T/body" || fail "request $i: wrong body: $(head -c 300 "$T/body")"
    done
    local before
    before=$(origin_count)
    code=$(proxy_get "$proxy" "$base/item/1" "$T/body") || fail "repeat request failed"
    [ "$code" = 200 ] || fail "repeat request: status $code"
    grep -qx "origin says hello for /item/1" "$T/body" || fail "repeat request: wrong body"
    # the repeat is served from proxyd's cache: the origin is not asked again
    [ "$(origin_count)" = "$before" ] || fail "repeat request went to the origin despite max-age=600"
    grep -qi '^age:' "$T/body.headers" || fail "cache hit without an Age header"
    log "repeat request: cache hit (the origin was not asked again; Age header)"
    grep -qi '^via:' "$T/body.headers" || fail "no Via header: the response did not come through proxyd"
    log "$((n + 1)) requests through $proxy: all 200 with the origin's body"
}

# drain_check PROXY URL_BASE CMD...: a request that takes 2 s at the origin is in
# flight when CMD (which sends SIGTERM) runs; it must still complete with 200.
drain_check() {
    local proxy=$1 base=$2 code
    shift 2
    local before
    before=$(origin_count)
    proxy_get "$proxy" "$base/slow/2" "$T/slow" >"$T/slow.code" 2>&1 &
    local cpid=$!
    # the origin counts a request when it arrives: then it is in flight
    wait_for 10 sh -c "[ \"\$(cat '$T/origin.port.count' 2>/dev/null)\" != '$before' ]" \
        || fail "the slow request never reached the origin"
    "$@"
    wait $cpid || true
    code=$(cat "$T/slow.code")
    [ "$code" = 200 ] || fail "the request in flight during SIGTERM got '$code' (not drained)"
    log "SIGTERM with a request in flight: it completed (200)"
}

# local_conf SRC DST PORT ADMIN_PORT: SRC with http_port and admin_port moved to
# 127.0.0.1 ports of the test's own (a shared machine may hold 3128 and 3129),
# and without `http_access deny to_localhost`: the test's origin is on 127.0.0.1.
local_conf() {
    grep -q "^http_access deny to_localhost\$" "$1" || fail "$1 does not deny to_localhost"
    sed -e "s/^http_port .*/http_port 127.0.0.1:$3/" -e "s/^admin_port .*/admin_port 127.0.0.1:$4/" \
        -e "/^http_access deny to_localhost\$/d" "$1" >"$2"
    grep -q "^http_port 127.0.0.1:$3\$" "$2" || fail "$1 has no http_port line"
    grep -q "^admin_port 127.0.0.1:$4\$" "$2" || fail "$1 has no admin_port line"
}

# healthz ADMIN_PORT: the admin listener's /healthz answers 200.
healthz() {
    local code
    code=$(curl -sS --noproxy '*' -o "$T/healthz" -w '%{http_code}' --max-time 10 "http://127.0.0.1:$1/healthz") \
        || fail "GET /healthz on 127.0.0.1:$1 failed"
    [ "$code" = 200 ] || fail "/healthz answered $code: $(cat "$T/healthz")"
    log "/healthz on the admin port: 200 $(head -c 60 "$T/healthz")"
}
