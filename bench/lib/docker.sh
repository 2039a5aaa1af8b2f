# shellcheck shell=bash
# The container platforms with a real Docker engine (sourced, not run; needs common.sh and
# proxies.sh). Issue 19.
#
# Topology (bench/README.md, "docker-nat, docker-routed"): the bench starts its own dockerd
# (Debian's docker.io) inside a network namespace of its own, pdk<PID>, so that the bridge,
# the forwarding and every iptables rule dockerd makes live in that namespace and the host's
# networking is not touched. The namespace plays the study's "proxy machine"; the root
# namespace plays the client and origin machines. One veth pair joins them on a /30 of a
# private /24 DK_NET (10.201.X.0/24, X chosen so that nothing on the host uses it):
#
#   host: pdk<PID>h DK_NET.1/30  <-- veth -->  namespace: pdk<PID>n DK_NET.2/30
#   namespace: docker0 DK_NET.65/26 (dockerd --bip: the default bridge, docker-nat)
#              pdk0r   DK_NET.129/25 (a bridge network, enable_ip_masquerade=false: docker-routed)
#   host: route DK_NET.128/25 via DK_NET.2 (the "static route to the containers")
#
#   docker-nat:    the container on the default bridge, its 3128 published on the
#                  namespace's address (-p DK_NET.2:PORT:3128, dockerd --userland-proxy=false:
#                  Docker's DNAT rule, no docker-proxy); clients connect to DK_NET.2:PORT.
#                  The container reaches the origin through Docker's MASQUERADE rule.
#   docker-routed: the container on pdk0r; clients connect to its own address DK_NET.13x:3128
#                  through the host's route, no NAT either way (the network's masquerading
#                  is off; one DOCKER-USER rule in the namespace lets the veth's traffic in,
#                  as an operator who routes to containers must add: dockerd's FORWARD
#                  policy is DROP).
#   The origin listens on DK_NET.1 (host side of the veth).
#
# dockerd runs under nsenter --net (not ip netns exec, which mounts a new /sys and so hides
# the cgroup file systems dockerd needs), with its data-root in a cache directory (the images
# survive between runs) and its exec-root, pidfile and socket in the run's work directory.
# Everything is named after our PID; dk_cleanup removes the containers, stops dockerd by its
# PID, unmounts what it left and deletes the namespace and the veth; dk_reap_stale deletes
# what a SIGKILLed run left.

DK_TAG=pdk$$
DK_NS=$DK_TAG
DK_NET=
DK_DIR=
DK_CACHE=
DK_PID=
DK_UP=0
DK_CLI=${DOCKER_CLI:-/usr/bin/docker}
DK_IMAGES=${BENCH_DOCKER_IMAGES:-host}
DK_PROXYD_IMAGE=proxyd-bench/proxyd:local
DK_SQUID_IMAGE=proxyd-bench/squid:local
DK_ROUTED_NET=pdk-routed
DK_CONTAINERS=()
DK_CNT=0
# Bound on each image build step (mmdebstrap, docker build), seconds.
DK_BUILD_TIMEOUT=${BENCH_DOCKER_BUILD_TIMEOUT:-1800}

DK_SOCK=
dk() { "$DK_CLI" -H "unix://$DK_SOCK" "$@"; }

# dk_usable: true if dockerd can run here; prints the reason otherwise.
dk_usable() {
    if [ "$(id -u)" != 0 ]; then
        echo "needs root (ip netns, dockerd)"
        return 1
    fi
    command -v dockerd >/dev/null || { echo "dockerd not installed (apt-get install docker.io)"; return 1; }
    [ -x "$DK_CLI" ] || { echo "$DK_CLI missing (apt-get install docker.io)"; return 1; }
    command -v nsenter >/dev/null || { echo "nsenter missing (util-linux)"; return 1; }
    command -v iptables >/dev/null || { echo "iptables not installed (apt-get install iptables)"; return 1; }
    local t=pdkprobe$$
    if ! ip netns add "$t" 2>/dev/null; then
        echo "ip netns add is not permitted here"
        return 1
    fi
    ip netns del "$t" 2>/dev/null
    return 0
}

# dk_reap_stale: the namespace and veth of a bench run whose PID no longer runs (its dockerd
# died with the run's SIGKILL or is stopped here by the pidfile it left).
dk_reap_stale() {
    local ns pid l
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
        [[ $ns =~ ^pdk([0-9]+)$ ]] || continue
        pid=${BASH_REMATCH[1]}
        [ ! -d "/proc/$pid" ] || continue
        ip netns del "$ns" 2>/dev/null || true
    done
    # (pdk0r, the routed network's bridge, belongs in a namespace: one in the host's was made
    # by a dockerd that restored it from a data-root of an older bench version.)
    ip link del pdk0r 2>/dev/null || true
    for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
        [[ $l =~ ^pdk([0-9]+)h$ ]] || continue
        [ ! -d "/proc/${BASH_REMATCH[1]}" ] || continue
        ip link del "$l" 2>/dev/null || true
    done
}

dk_pick_net() {
    local x i used
    used=$(ip -4 -o addr show 2>/dev/null; ip -4 route show table all 2>/dev/null)
    for ((i = 0; i < 190; i++)); do
        x=$((64 + ($$ + i) % 190))
        if ! grep -q "10\.201\.$x\." <<<"$used"; then
            DK_NET=10.201.$x
            return 0
        fi
    done
    echo "docker: no free 10.201.X.0/24" >&2
    return 1
}

dk_origin_addr() { echo "$DK_NET.1"; }
dk_nat_addr() { echo "$DK_NET.2"; }

# dk_base_tar: a Debian 12 minbase tarball (mmdebstrap, Debian's repositories), cached;
# BENCH_DOCKER_BASE_TAR names one made already (e.g. the slow tests' slow-cache/bookworm-slim.tar).
dk_base_tar() {
    local tar=$DK_CACHE/bookworm-minbase.tar
    if [ -n "${BENCH_DOCKER_BASE_TAR:-}" ]; then
        [ -s "$BENCH_DOCKER_BASE_TAR" ] || { echo "BENCH_DOCKER_BASE_TAR: no such tarball" >&2; return 1; }
        echo "$BENCH_DOCKER_BASE_TAR"
        return 0
    fi
    if [ ! -s "$tar" ]; then
        command -v mmdebstrap >/dev/null || { echo "mmdebstrap missing (apt-get install mmdebstrap)" >&2; return 1; }
        timeout "$DK_BUILD_TIMEOUT" mmdebstrap --quiet --variant=minbase --mode=root --format=tar \
            --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
            bookworm "$tar.tmp" >"$DK_DIR/mmdebstrap.log" 2>&1 || {
            tail -20 "$DK_DIR/mmdebstrap.log" >&2
            rm -f "$tar.tmp"
            return 1
        }
        mv "$tar.tmp" "$tar"
    fi
    echo "$tar"
}

# dk_rootfs_add ROOTFS FILE...: copies FILE (and, for executables, the shared objects ldd
# names) into ROOTFS keeping their paths (merged /usr: /lib -> usr/lib).
dk_rootfs_add() {
    local r=$1 f so real
    shift
    for f in "$@"; do
        [ -e "$f" ] || continue
        mkdir -p "$r$(dirname "$f")"
        cp -a "$f" "$r$f"
        if [ -f "$f" ] && [ "$(head -c 4 "$f" | tail -c 3)" = ELF ]; then
            for so in $(ldd "$f" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && $1 !~ /:$/ {print $1}'); do
                real=$(readlink -f "$so")
                if [ ! -e "$r$real" ]; then
                    mkdir -p "$r$(dirname "$real")"
                    cp -p "$real" "$r$real"
                fi
                [ -e "$r$so" ] || { mkdir -p "$r$(dirname "$so")"; ln -s "$real" "$r$so"; }
            done
        fi
    done
}

# dk_rootfs_base ROOTFS: the skeleton of a FROM scratch image (merged /usr, /tmp, users).
dk_rootfs_base() {
    local r=$1 l
    mkdir -p "$r"/usr/bin "$r"/usr/sbin "$r"/usr/lib "$r"/usr/lib64 "$r"/tmp "$r"/etc "$r"/var/run
    for l in bin sbin lib lib64; do ln -s "usr/$l" "$r/$l"; done
    chmod 1777 "$r/tmp"
    printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nproxy:x:13:13:proxy:/bin:/usr/sbin/nologin\nproxyd:x:10001:10001:proxyd:/nonexistent:/usr/sbin/nologin\n' >"$r/etc/passwd"
    printf 'root:x:0:\nproxy:x:13:\nproxyd:x:10001:\n' >"$r/etc/group"
    printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$r/etc/nsswitch.conf"
}

# dk_image_id IMAGE LABEL: the value of LABEL on IMAGE, empty if there is no such image.
dk_image_label() { dk image inspect -f "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null || true; }

# dk_build_images PROXYD SRCDIR: the two images, rebuilt only when their inputs changed (label
# io.proxyd.bench.inputs = a hash of the files that went in).
#   host (default): FROM scratch images holding the very binaries the native cells run:
#       $PROXYD and its shared objects (the run-time layout of docker/Dockerfile's final
#       stage), and Debian's squid as installed on the host (dpkg -L squid squid-common,
#       ldd). Seconds to build, and native vs container compares the same bytes.
#   dockerfile: proxyd from docker/Dockerfile (compiled from this tree in its build stage)
#       and Squid from bench/docker/squid.Dockerfile (apt-get install squid), both on a
#       Debian 12 base made with mmdebstrap; several minutes the first time.
dk_build_images() {
    local proxyd_bin=$1 src=$2 ctx sum base
    mkdir -p "$DK_DIR/ctx"
    case $DK_IMAGES in
        host)
            ctx=$DK_DIR/ctx/proxyd
            sum=$(sha256sum <"$proxyd_bin" | cut -c1-16)
            if [ "$(dk_image_label "$DK_PROXYD_IMAGE" io.proxyd.bench.inputs)" != "host-$sum" ]; then
                rm -rf "$ctx"
                dk_rootfs_base "$ctx/rootfs"
                dk_rootfs_add "$ctx/rootfs" "$(readlink -f "$proxyd_bin")"
                if [ "$(readlink -f "$proxyd_bin")" != /usr/sbin/proxyd ]; then
                    mkdir -p "$ctx/rootfs/usr/sbin"
                    cp "$(readlink -f "$proxyd_bin")" "$ctx/rootfs/usr/sbin/proxyd"
                fi
                printf 'FROM scratch\nCOPY rootfs/ /\nLABEL io.proxyd.bench.inputs=host-%s\nUSER 10001:10001\nEXPOSE 3128\nENTRYPOINT ["/usr/sbin/proxyd"]\n' \
                    "$sum" >"$ctx/Dockerfile"
                DOCKER_BUILDKIT=0 timeout "$DK_BUILD_TIMEOUT" "$DK_CLI" -H "unix://$DK_SOCK" build -q -t "$DK_PROXYD_IMAGE" "$ctx" >"$DK_DIR/build-proxyd.log" 2>&1 ||
                    { tail -20 "$DK_DIR/build-proxyd.log" >&2; return 1; }
            fi
            ctx=$DK_DIR/ctx/squid
            sum=$(dpkg-query -W -f '${Package}=${Version}\n' squid squid-common 2>/dev/null | sha256sum | cut -c1-16)
            if [ "$(dk_image_label "$DK_SQUID_IMAGE" io.proxyd.bench.inputs)" != "host-$sum" ]; then
                rm -rf "$ctx"
                dk_rootfs_base "$ctx/rootfs"
                # shellcheck disable=SC2046  # one path per line, no blanks in Debian's
                dk_rootfs_add "$ctx/rootfs" $(dpkg -L squid squid-common | grep -Ev '^/usr/share/(doc|man)/|^/etc/(init.d|logrotate.d|apparmor.d|ufw)|^/lib/systemd' |
                    while read -r f; do [ -f "$f" ] && echo "$f"; done)
                printf 'FROM scratch\nCOPY rootfs/ /\nLABEL io.proxyd.bench.inputs=host-%s\nEXPOSE 3128\nENTRYPOINT ["/usr/sbin/squid", "-N"]\n' \
                    "$sum" >"$ctx/Dockerfile"
                DOCKER_BUILDKIT=0 timeout "$DK_BUILD_TIMEOUT" "$DK_CLI" -H "unix://$DK_SOCK" build -q -t "$DK_SQUID_IMAGE" "$ctx" >"$DK_DIR/build-squid.log" 2>&1 ||
                    { tail -20 "$DK_DIR/build-squid.log" >&2; return 1; }
            fi
            ;;
        dockerfile)
            base=$(dk_base_tar) || return 1
            sum=$(sha256sum "$base" | cut -c1-16)
            if [ "$(dk_image_label proxyd-bench/bookworm:base io.proxyd.bench.inputs)" != "$sum" ]; then
                dk import -c "LABEL io.proxyd.bench.inputs=$sum" "$base" proxyd-bench/bookworm:base >/dev/null ||
                    return 1
            fi
            # docker build's own layer cache skips what did not change.
            DOCKER_BUILDKIT=0 timeout "$DK_BUILD_TIMEOUT" "$DK_CLI" -H "unix://$DK_SOCK" build --network host --build-arg BASE_IMAGE=proxyd-bench/bookworm:base \
                -f "$src/docker/Dockerfile" -t "$DK_PROXYD_IMAGE" "$src" >"$DK_DIR/build-proxyd.log" 2>&1 ||
                { tail -30 "$DK_DIR/build-proxyd.log" >&2; return 1; }
            DOCKER_BUILDKIT=0 timeout "$DK_BUILD_TIMEOUT" "$DK_CLI" -H "unix://$DK_SOCK" build --network host --build-arg BASE_IMAGE=proxyd-bench/bookworm:base \
                -f "$src/bench/docker/squid.Dockerfile" -t "$DK_SQUID_IMAGE" "$src/bench/docker" \
                >"$DK_DIR/build-squid.log" 2>&1 || { tail -30 "$DK_DIR/build-squid.log" >&2; return 1; }
            ;;
        *) echo "BENCH_DOCKER_IMAGES=host|dockerfile" >&2; return 1 ;;
    esac
}

# dk_start WORKDIR CACHEDIR PROXYD SRCDIR: the namespace, the veth, dockerd, the routed network and
# the images. Once per run (the first docker cell).
dk_start() {
    local h=${DK_TAG}h n=${DK_TAG}n deadline
    [ "$DK_UP" = 0 ] || return 0
    DK_DIR=$1 DK_CACHE=$2
    mkdir -p "$DK_DIR" "$DK_CACHE"
    dk_pick_net || return 1
    ip netns add "$DK_NS" || return 1
    DK_UP=1
    ip link add "$h" type veth peer name "$n" &&
        ip link set "$n" netns "$DK_NS" &&
        ip addr add "$DK_NET.1/30" dev "$h" &&
        ip link set "$h" up &&
        ip -n "$DK_NS" addr add "$DK_NET.2/30" dev "$n" &&
        ip -n "$DK_NS" link set "$n" up &&
        ip -n "$DK_NS" link set lo up &&
        ip -n "$DK_NS" route add default via "$DK_NET.1" &&
        ip route add "$DK_NET.128/25" via "$DK_NET.2" || return 1
    # The data-root is the image cache; only one dockerd may use it at a time.
    exec {DK_LOCK}>"$DK_CACHE/lock"
    flock -w 60 "$DK_LOCK" || { echo "docker: $DK_CACHE is in use by another bench run" >&2; return 1; }
    if [ "$DK_IMAGES" = dockerfile ]; then
        # apt-get in the build stages needs Debian's repositories, which the namespace does
        # not reach (the host does not forward for it): the images are built by a dockerd in
        # the host's namespace without bridge or iptables rules (as tests/slow/test_docker.sh
        # runs it; builds use --network host), on the same data-root, stopped before the
        # namespace's dockerd starts on it.
        DK_SOCK=$DK_DIR/build.sock
        dk_dockerd build --iptables=false --ip6tables=false --bridge=none --ip-forward=false \
            --ip-masq=false || return 1
        dk_build_images "$3" "$4" || return 1
        bench_stop_pid "$DK_PID" 30
        DK_PID=''
        dk_umount
    fi
    DK_SOCK=$DK_DIR/docker.sock
    dk_dockerd docker --iptables=true --ip-masq=true --ip6tables=false --userland-proxy=false \
        --bip "$DK_NET.65/26" --cgroup-parent "/$DK_TAG" || return 1
    dk network rm "$DK_ROUTED_NET" >/dev/null 2>&1 || true
    dk network create -d bridge --subnet "$DK_NET.128/25" --gateway "$DK_NET.129" \
        -o com.docker.network.bridge.enable_ip_masquerade=false \
        -o com.docker.network.bridge.name=pdk0r "$DK_ROUTED_NET" >/dev/null || return 1
    ip netns exec "$DK_NS" iptables -I DOCKER-USER -i "$n" -o pdk0r -j ACCEPT || return 1
    [ "$DK_IMAGES" = dockerfile ] || dk_build_images "$3" "$4" || return 1
}

# dk_dockerd NAME ARGS...: starts dockerd (in the namespace for NAME=docker) on the cache's
# data-root with its exec-root, pidfile and log named NAME in DK_DIR and its socket DK_SOCK;
# sets DK_PID; returns once it answers (60 s at most).
dk_dockerd() {
    local name=$1 deadline
    local -a in_ns=()
    shift
    [ "$name" != docker ] || in_ns=(nsenter --net="/run/netns/$DK_NS")
    # The networks a dockerd stored in the data-root would be made again by the next one,
    # wherever it runs (the routed network's bridge in the host's namespace, for the build
    # dockerd): the cache keeps images only.
    rm -rf "$DK_CACHE/root/network"
    "${in_ns[@]}" dockerd "$@" --data-root "$DK_CACHE/root" --exec-root "$DK_DIR/exec-$name" \
        --pidfile "$DK_DIR/$name.pid" -H "unix://$DK_SOCK" --log-level warn >"$DK_DIR/$name.log" 2>&1 &
    DK_PID=$!
    deadline=$((SECONDS + 60))
    until dk info >/dev/null 2>&1; do
        if ! bench_alive "$DK_PID" || [ $SECONDS -ge $deadline ]; then
            echo "dockerd did not start; its log says:" >&2
            tail -10 "$DK_DIR/$name.log" >&2
            return 1
        fi
        sleep 0.1
    done
}

# dk_umount: what a stopped dockerd left mounted under its directories.
dk_umount() {
    findmnt -rn -o TARGET | grep -E "^($DK_DIR|$DK_CACHE)/" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
}

# dk_run PLATFORM PROXY DIR WORKERS: one proxy container, its configuration from proxies.sh
# mounted at DIR (the same path inside: the configuration names its own files), listening
# on 0.0.0.0:3128. Sets PROXY_PID (the container's first process, as the host sees it),
# DK_ENDPOINT and DK_CID.
# shellcheck disable=SC2034  # PROXY_PID, DK_ENDPOINT, DK_CID are for the caller
dk_run() {
    local plat=$1 proxy=$2 dir=$3 workers=$4 name image hp addr pid deadline
    local -a net=() cmd=()
    DK_CNT=$((DK_CNT + 1))
    name=$DK_TAG-$DK_CNT
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    chmod 755 "$dir"
    if [ "$proxy" = proxyd ]; then
        BENCH_BIND=0.0.0.0 bench_proxyd_conf "$dir" 3128 "$workers"
        chmod 644 "$dir/proxy.conf"
        image=$DK_PROXYD_IMAGE cmd=(-c "$dir/proxy.conf")
    else
        BENCH_BIND=0.0.0.0 bench_squid_conf "$dir" 3128
        # Squid, started as root in the container, runs as proxy (uid 13 in the image as on
        # the host) and writes its log and pid file in DIR.
        chown -R 13:13 "$dir"
        image=$DK_SQUID_IMAGE cmd=(-f "$dir/squid.conf")
    fi
    case $plat in
        docker-nat)
            hp=$(bench_free_port) || return 1
            net=(-p "$(dk_nat_addr):$hp:3128")
            ;;
        docker-routed) net=(--network "$DK_ROUTED_NET") ;;
    esac
    # The study: 4 vCPUs and 4 GB per container (this machine may have fewer CPUs).
    local cpus=4
    [ "$(nproc)" -ge 4 ] || cpus=$(nproc)
    DK_CID=$(dk run -d --name "$name" "${net[@]}" --cpus "$cpus" --memory 4g \
        -v "$dir:$dir" "$image" "${cmd[@]}") || return 1
    DK_CONTAINERS+=("$name")
    if [ "$plat" = docker-nat ]; then
        DK_ENDPOINT=$(dk_nat_addr):$hp
    else
        addr=$(dk inspect -f "{{(index .NetworkSettings.Networks \"$DK_ROUTED_NET\").IPAddress}}" "$name") || return 1
        DK_ENDPOINT=$addr:3128
    fi
    pid=$(dk inspect -f '{{.State.Pid}}' "$name") || return 1
    PROXY_PID=$pid
    # Ready when the proxy listens in the container's namespace.
    deadline=$((SECONDS + 20))
    until nsenter --net="/proc/$pid/ns/net" ss -Hltn "sport = :3128" 2>/dev/null | grep -q .; do
        if ! bench_alive "$pid" || [ $SECONDS -ge $deadline ]; then
            echo "$proxy in container $name did not listen on 3128; it said:" >&2
            dk logs "$name" 2>&1 | tail -5 >&2
            bench_show_logs "$dir/cache.log"
            return 1
        fi
        sleep 0.05
    done
}

# dk_rm_containers: removes the cell's containers (SIGKILL: their proxies are idle).
dk_rm_containers() {
    [ ${#DK_CONTAINERS[@]} -gt 0 ] || return 0
    dk rm -f "${DK_CONTAINERS[@]}" >/dev/null 2>&1 || true
    DK_CONTAINERS=()
}

# dk_cleanup: everything dk_start made (the images stay in the cache's data-root).
dk_cleanup() {
    [ "$DK_UP" = 1 ] || return 0
    if [ -n "$DK_PID" ] && bench_alive "$DK_PID"; then
        dk_rm_containers
        dk network rm "$DK_ROUTED_NET" >/dev/null 2>&1 || true
        dk ps -aq --filter "name=^$DK_TAG-" 2>/dev/null | xargs -r "$DK_CLI" -H "unix://$DK_SOCK" rm -f >/dev/null 2>&1
        bench_stop_pid "$DK_PID" 30
    fi
    DK_PID=''
    [ -z "$DK_DIR" ] || dk_umount
    ip route del "$DK_NET.128/25" 2>/dev/null || true
    ip link del "${DK_TAG}h" 2>/dev/null || true
    ip netns del "$DK_NS" 2>/dev/null || true
    DK_UP=0
}
