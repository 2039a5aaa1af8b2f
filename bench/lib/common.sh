# shellcheck shell=bash
# Shared helpers for the bench/ scripts (sourced, not run).
# Every process a script starts is recorded by PID and stopped by that PID, never by name.

# Prints a TCP port on 127.0.0.1 that nothing listens on right now. Another process may take
# it before we bind it: callers that start a server retry on failure. The port is taken below
# the kernel's ephemeral range when there is room, so that no client connection of the bench
# (loadgen, the proxies' upstream connections) holds it as its local port.
bench_free_port() {
    local p lo=32768 base=20000 span=40000
    read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
    if [ "$lo" -gt 12000 ]; then
        base=10000 span=$((lo - 10000))
    fi
    for _ in $(seq 1 200); do
        p=$((base + RANDOM % span))
        if ! ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then
            echo "$p"
            return 0
        fi
    done
    echo "bench_free_port: no free port found" >&2
    return 1
}

# bench_wait_port PORT TIMEOUT_S [PID] [NETNS]: waits until something listens on PORT (in
# network namespace NETNS if given). Fails if it does not within TIMEOUT_S, or as soon as PID
# (if given) has exited.
bench_wait_port() {
    local port=$1 timeout=$2 pid=${3:-} netns=${4:-} deadline
    local -a in_ns=()
    [ -z "$netns" ] || in_ns=(ip netns exec "$netns")
    deadline=$(($(date +%s%N) + timeout * 1000000000))
    while [ "$(date +%s%N)" -lt "$deadline" ]; do
        # Look for the listening socket rather than connect to it: a probe connection
        # would show up in the server's logs and counters as a failed request.
        if command -v ss >/dev/null; then
            if "${in_ns[@]}" ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
                return 0
            fi
        elif (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        if [ -n "$pid" ] && ! bench_alive "$pid"; then
            return 1
        fi
        sleep 0.05
    done
    return 1
}

# bench_alive PID: true if PID runs (a zombie, which kill -0 still reaches, does not count).
bench_alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

# bench_stop_pid PID [TIMEOUT_S] [SIGNAL]: SIGNAL (default TERM), wait up to TIMEOUT_S
# (default 10), then SIGKILL.
bench_stop_pid() {
    local pid=$1 timeout=${2:-10} sig=${3:-TERM} deadline
    [ -n "$pid" ] || return 0
    bench_alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -"$sig" "$pid" 2>/dev/null || return 0
    deadline=$(($(date +%s%N) + timeout * 1000000000))
    while bench_alive "$pid"; do
        if [ "$(date +%s%N)" -ge "$deadline" ]; then
            echo "process $pid did not stop in ${timeout}s: SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null
            break
        fi
        sleep 0.05
    done
    # Reap it if it is our child; harmless otherwise.
    wait "$pid" 2>/dev/null || true
}

# bench_children PID: the PIDs of PID's direct children (one per line).
bench_children() {
    local t
    for t in /proc/"$1"/task/*/children; do
        [ -r "$t" ] && tr ' ' '\n' <"$t"
    done | grep -E '^[0-9]+$' || true
}
