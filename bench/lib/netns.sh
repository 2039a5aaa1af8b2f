# shellcheck shell=bash
# Container platforms without a container engine (sourced, not run; needs common.sh).
#
# Each proxy "container" is a network namespace of ours, joined to the root namespace (the
# "host") by a veth pair on a /30 of one private /24 (10.200.X.0/24, X picked so that no
# address or route of the host already uses it). The proxy runs in the namespace (ip netns
# exec). Two ways in, as Docker offers them:
#   routed: clients connect to the namespace's own address, through the host's route to it;
#   NAT:    clients connect to 127.0.0.1:HOSTPORT, which an iptables DNAT rule of ours (nat
#           OUTPUT) rewrites to the namespace's address, MASQUERADE on the veth (route_localnet
#           on our veth only, as Docker does for published ports on localhost).
# The origin listens on the host side of namespace 1's veth (a host address reachable from
# every namespace through its default route; no forwarding on the host is needed).
#
# Names carry our PID (pdb<PID>-<i>, veths pdb<PID>h<i> / pdb<PID>n<i>, chains PDB<PID>_*), so
# that cleanup deletes exactly what this run made; netns_reap_stale deletes what a run that
# was SIGKILLed left (its PID no longer runs). Traffic never leaves this host.

NS_TAG=pdb$$
NS_NET=
NS_COUNT=0
NS_CHAINS=0
NS_MAX=63

# netns_usable: true if this process may create network namespaces and NAT rules; prints the
# reason otherwise.
netns_usable() {
    if [ "$(id -u)" != 0 ]; then
        echo "needs root (ip netns, veth, iptables)"
        return 1
    fi
    local t=pdbprobe$$
    if ! ip netns add "$t" 2>/dev/null; then
        echo "ip netns add is not permitted here"
        return 1
    fi
    ip netns del "$t" 2>/dev/null
    if ! command -v iptables >/dev/null; then
        echo "iptables not installed (apt-get install iptables)"
        return 1
    fi
    if ! iptables -t nat -S OUTPUT >/dev/null 2>&1; then
        echo "iptables nat table not usable"
        return 1
    fi
    return 0
}

# netns_reap_stale: deletes namespaces, veths and chains named after a bench run whose PID no
# longer runs (left by a run killed with SIGKILL).
netns_reap_stale() {
    local ns pid chain
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
        [[ $ns =~ ^pdb([0-9]+)-[0-9]+$ ]] || continue
        pid=${BASH_REMATCH[1]}
        [ ! -d "/proc/$pid" ] || continue
        ip netns del "$ns" 2>/dev/null || true
    done
    for ns in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
        [[ $ns =~ ^pdb([0-9]+)h[0-9]+$ ]] || continue
        [ ! -d "/proc/${BASH_REMATCH[1]}" ] || continue
        ip link del "$ns" 2>/dev/null || true
    done
    for chain in $(iptables -t nat -S 2>/dev/null | awk '$1 == "-N" {print $2}'); do
        [[ $chain =~ ^PDB([0-9]+)_(OUT|POST)$ ]] || continue
        [ ! -d "/proc/${BASH_REMATCH[1]}" ] || continue
        netns_drop_chain "$chain" "${BASH_REMATCH[2]}"
    done
}

# netns_drop_chain CHAIN OUT|POST: unhooks and deletes one of our nat chains.
netns_drop_chain() {
    local chain=$1 hook=OUTPUT
    [ "$2" = POST ] && hook=POSTROUTING
    while iptables -t nat -D "$hook" -j "$chain" 2>/dev/null; do :; done
    iptables -t nat -F "$chain" 2>/dev/null || true
    iptables -t nat -X "$chain" 2>/dev/null || true
}

# netns_pick_net: chooses 10.200.X (no host address or route in 10.200.X.0/24), sets NS_NET.
netns_pick_net() {
    local x i used
    used=$(ip -4 -o addr show 2>/dev/null; ip -4 route show table all 2>/dev/null)
    for ((i = 0; i < 190; i++)); do
        x=$((64 + ($$ + i) % 190))
        if ! grep -q "10\.200\.$x\." <<<"$used"; then
            NS_NET=10.200.$x
            return 0
        fi
    done
    echo "netns: no free 10.200.X.0/24" >&2
    return 1
}

netns_name() { echo "$NS_TAG-$1"; }
# netns_addr I: the address of namespace I (where its proxy listens).
netns_addr() { echo "$NS_NET.$((4 * $1 + 2))"; }
# netns_host_addr I: the host side of namespace I's veth.
netns_host_addr() { echo "$NS_NET.$((4 * $1 + 1))"; }
# netns_origin_addr: where the origin listens (host side of namespace 1).
netns_origin_addr() { netns_host_addr 1; }

# netns_ensure N: creates namespaces 1..N (those not made yet).
netns_ensure() {
    local n=$1 i ns h p
    [ -n "$NS_NET" ] || netns_pick_net || return 1
    [ "$n" -le "$NS_MAX" ] || { echo "netns: at most $NS_MAX namespaces" >&2; return 1; }
    for ((i = NS_COUNT + 1; i <= n; i++)); do
        ns=$(netns_name "$i") h=${NS_TAG}h$i p=${NS_TAG}n$i
        ip netns add "$ns" || return 1
        NS_COUNT=$i
        ip link add "$h" type veth peer name "$p" || return 1
        ip link set "$p" netns "$ns" &&
            ip addr add "$(netns_host_addr "$i")/30" dev "$h" &&
            ip link set "$h" up &&
            ip -n "$ns" addr add "$(netns_addr "$i")/30" dev "$p" &&
            ip -n "$ns" link set "$p" up &&
            ip -n "$ns" link set lo up &&
            ip -n "$ns" route add default via "$(netns_host_addr "$i")" || return 1
    done
}

# netns_nat I HOSTPORT NSPORT: 127.0.0.1:HOSTPORT on the host reaches namespace I's NSPORT.
netns_nat() {
    local i=$1 port=$2 nsport=$3 h=${NS_TAG}h$1
    if [ "$NS_CHAINS" = 0 ]; then
        iptables -t nat -N "${NS_TAG^^}_OUT" || return 1
        iptables -t nat -N "${NS_TAG^^}_POST" || return 1
        NS_CHAINS=1
        iptables -t nat -I OUTPUT -j "${NS_TAG^^}_OUT" || return 1
        iptables -t nat -I POSTROUTING -j "${NS_TAG^^}_POST" || return 1
    fi
    # 127.0.0.1 routed out of a non-loopback device needs route_localnet there (our veth).
    sysctl -qw "net.ipv4.conf.$h.route_localnet=1" || return 1
    iptables -t nat -A "${NS_TAG^^}_OUT" -d 127.0.0.1/32 -p tcp --dport "$port" \
        -j DNAT --to-destination "$(netns_addr "$i"):$nsport" || return 1
    if ! iptables -t nat -C "${NS_TAG^^}_POST" -o "$h" -j MASQUERADE 2>/dev/null; then
        iptables -t nat -A "${NS_TAG^^}_POST" -o "$h" -j MASQUERADE || return 1
    fi
}

# netns_nat_flush: removes the DNAT rules (the chains stay until netns_cleanup).
netns_nat_flush() {
    [ "$NS_CHAINS" = 1 ] || return 0
    iptables -t nat -F "${NS_TAG^^}_OUT" 2>/dev/null || true
    iptables -t nat -F "${NS_TAG^^}_POST" 2>/dev/null || true
}

# netns_cleanup: deletes every namespace, veth and chain this run made. Stop the processes
# running in the namespaces first.
netns_cleanup() {
    local i
    if [ "$NS_CHAINS" = 1 ]; then
        netns_drop_chain "${NS_TAG^^}_OUT" OUT
        netns_drop_chain "${NS_TAG^^}_POST" POST
        NS_CHAINS=0
    fi
    for ((i = 1; i <= NS_COUNT; i++)); do
        ip link del "${NS_TAG}h$i" 2>/dev/null || true
        ip netns del "$(netns_name "$i")" 2>/dev/null || true
    done
    NS_COUNT=0
}
