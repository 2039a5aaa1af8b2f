#!/usr/bin/env bash
# test_docker.sh: docker/Dockerfile builds and the container proxies.
# No Docker engine runs here and no registry is reachable, so the test starts
# its own dockerd (Debian's docker.io: no iptables, no bridge, its own
# data-root/exec-root/socket in a temp dir) and builds the base image from
# Debian's repositories with mmdebstrap (cached in $SLOW_CACHE), imported as
# BASE_IMAGE of the build stage (the final stage is FROM scratch: its size is
# measured and must be <= 40 MB; the build stage's leftovers are pruned by
# label). A configuration mounted readable by root only fails with a message
# that names the fix. The container runs with host networking; requests go through it
# to an origin on 127.0.0.1; then SIGHUP, SIGTERM (drain, exit 0). Everything
# (containers, images, dockerd, its mounts and files) goes at the end.
# Last, three containers on a user-defined network form a proxyd_cluster
# through the network alias proxyd-peers: the origin sees each URL once.
set -euo pipefail
export TEST_NAME=docker # lib.sh's log() prefixes its lines with it
. "$(dirname "$0")/lib.sh"
need_root
need dockerd mmdebstrap curl python3
DOCKER_CLI=/usr/bin/docker    # Debian's client, matching Debian's dockerd
[ -x $DOCKER_CLI ] || skip "$DOCKER_CLI missing (apt-get install docker.io)"
[ -f "$PROXYD_SRC/conf/proxy.conf" ] || fail "conf/proxy.conf missing"

# 1. base image tarball from Debian's repositories, built once per build dir
base_tar="$SLOW_CACHE/bookworm-slim.tar"
if [ ! -s "$base_tar" ]; then
    log "building the base image with mmdebstrap (once; cached as $base_tar)"
    t0=$SECONDS
    # like debian:bookworm-slim: no docs, man pages, locales or apt lists
    mmdebstrap --quiet --variant=minbase --mode=root --format=tar \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-include=/usr/share/locale/locale.alias' \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
        bookworm "$base_tar.tmp" \
        >"$T/mmdebstrap.log" 2>&1 || { tail -20 "$T/mmdebstrap.log" >&2; rm -f "$base_tar.tmp"; fail "mmdebstrap"; }
    mv "$base_tar.tmp" "$base_tar"
    log "base image built in $((SECONDS - t0)) s"
fi

# 2. our own dockerd (containers and images go while it still runs: their
# cleanups are registered after it)
start_dockerd

NAME="proxyd-slow-$$"
at_exit "$DOCKER_CLI -H unix://$D/docker.sock rmi -f proxyd-slow/proxyd:test proxyd-slow/origin:test proxyd-slow/bookworm:base"
at_exit "$DOCKER_CLI -H unix://$D/docker.sock rm -f $NAME $NAME-origin"
docker import "$base_tar" proxyd-slow/bookworm:base >/dev/null

# 3. the image, built from source (apt in the build reaches Debian's repositories
#    through the host's network)
t0=$SECONDS
DOCKER_BUILDKIT=0 docker build --network host --build-arg BASE_IMAGE=proxyd-slow/bookworm:base \
    -f "$PROXYD_SRC/docker/Dockerfile" -t proxyd-slow/proxyd:test "$PROXYD_SRC" >"$T/build.log" 2>&1 \
    || { tail -30 "$T/build.log" >&2; fail "docker build"; }
size=$(docker image inspect -f '{{.Size}}' proxyd-slow/proxyd:test)
log "image built in $((SECONDS - t0)) s, size $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1e6 }') MB)"
max_size=$((40 * 1000 * 1000))
((size <= max_size)) || fail "the image is $size bytes, over the $max_size allowed: something besides proxyd's run-time files got in"
# the build stage leaves untagged images; the documented prune removes them all
dangling=$(docker images -q -f dangling=true | wc -l)
labelled=$(docker images -q -f dangling=true -f label=io.proxyd.stage=build | wc -l)
docker image prune -f --filter label=io.proxyd.stage=build >/dev/null
left=$(docker images -q -f dangling=true | wc -l)
log "dangling images after the build: $dangling ($labelled labelled io.proxyd.stage=build); after the prune: $left"
[ "$left" = 0 ] || fail "dangling images left after prune --filter label=io.proxyd.stage=build: $(docker images -f dangling=true)"
[ "$(docker image inspect -f '{{.Config.User}}' proxyd-slow/proxyd:test)" = 10001:10001 ] || fail "image user is not 10001 (proxyd)"
docker image inspect -f '{{json .Config.ExposedPorts}}' proxyd-slow/proxyd:test | grep -q '3128/tcp' || fail "no EXPOSE 3128"
docker image inspect -f '{{json .Config.Healthcheck}}' proxyd-slow/proxyd:test | grep -q healthcheck || fail "no HEALTHCHECK"
docker image inspect -f '{{json .Config.Env}}' proxyd-slow/proxyd:test | grep -q 'PROXYD_ADMIN_PORT=3129' || fail "the image does not point its HEALTHCHECK at admin port 3129"

# the embedded default configuration is valid as is
docker run --rm --network none proxyd-slow/proxyd:test -t >"$T/t.out" 2>&1 \
    || { cat "$T/t.out" >&2; fail "proxyd -t on the embedded /etc/proxyd/proxy.conf"; }

# 4. run it with a mounted configuration: the default with a free port
start_origin
port=$(free_port)
aport=$(free_port)
mkdir -p "$T/conf"
local_conf "$PROXYD_SRC/conf/proxy.conf" "$T/conf/proxy.conf" "$port" "$aport"
chmod 755 "$T" "$T/conf"
# mounted readable by root only (as `umask 077` or a secrets tool leaves it):
# proxyd (uid 10001) must refuse it and say what to change
chmod 600 "$T/conf/proxy.conf"
if docker run --rm --network none -v "$T/conf/proxy.conf:/etc/proxyd/proxy.conf:ro" \
        proxyd-slow/proxyd:test -t >"$T/perm.out" 2>&1; then
    fail "proxyd -t accepted a configuration it cannot read"
fi
grep -q 'Permission denied (proxyd runs as uid 10001, gid 10001: .*chmod 644' "$T/perm.out" \
    || fail "a root-only configuration fails without saying what to change: $(cat "$T/perm.out")"
log "a 0600 root-owned configuration: $(head -1 "$T/perm.out")"
# the fix the message names: readable by uid 10001 (owner) or by all
chown 10001:10001 "$T/conf/proxy.conf"
docker run --rm --network none -v "$T/conf/proxy.conf:/etc/proxyd/proxy.conf:ro" \
    proxyd-slow/proxyd:test -t >"$T/perm.out" 2>&1 || fail "0600 owned by 10001 refused: $(cat "$T/perm.out")"
chown 0:0 "$T/conf/proxy.conf"
chmod 644 "$T/conf/proxy.conf"
docker run -d --name "$NAME" --network host --health-interval=1s --health-start-period=1s \
    -e PROXYD_ADMIN_PORT="$aport" \
    -v "$T/conf/proxy.conf:/etc/proxyd/proxy.conf:ro" proxyd-slow/proxyd:test >/dev/null
wait_for 30 sh -c "$DOCKER_CLI -H unix://$D/docker.sock logs $NAME 2>&1 | grep -q 'proxyd: ready'" \
    || { docker logs "$NAME" >&2; fail "proxyd did not get ready in the container"; }
hpid=$(docker inspect -f '{{.State.Pid}}' "$NAME")
[ "$(cat /proc/$hpid/comm)" = proxyd ] || fail "the container's first process is $(cat /proc/$hpid/comm)"
grep -Eq '^NSpid:[[:space:]]+[0-9]+[[:space:]]+1$' /proc/$hpid/status || fail "proxyd is not PID 1 in the container"
uid=$(awk '/^Uid:/ {print $2}' /proc/$hpid/status)
[ "$uid" = 10001 ] || fail "proxyd runs as uid $uid in the container, not 10001"
log "PID 1 in the container is proxyd (host pid $hpid, uid $uid)"

healthz "$aport"
check_requests "127.0.0.1:$port" "http://127.0.0.1:$ORIGIN_PORT" 5
docker logs "$NAME" 2>/dev/null | grep -q '/item/3' || fail "no access log line on the container's stdout"
wait_for 30 sh -c "[ \"\$($DOCKER_CLI -H unix://$D/docker.sock inspect -f '{{.State.Health.Status}}' $NAME)\" = healthy ]" \
    || fail "HEALTHCHECK never healthy: $(docker inspect -f '{{json .State.Health}}' "$NAME")"
log "HEALTHCHECK (GET /healthz on the admin port): healthy"

# compose's origin image (docker/origin.Dockerfile) behind the proxyd container
DOCKER_BUILDKIT=0 docker build --network host --build-arg BASE_IMAGE=proxyd-slow/bookworm:base \
    -f "$PROXYD_SRC/docker/origin.Dockerfile" -t proxyd-slow/origin:test "$PROXYD_SRC/docker" \
    >"$T/build-origin.log" 2>&1 || { tail -20 "$T/build-origin.log" >&2; fail "docker build origin.Dockerfile"; }
oport=$(free_port)
docker run -d --name "$NAME-origin" --network host proxyd-slow/origin:test \
    busybox httpd -f -p "127.0.0.1:$oport" -h /srv/www >/dev/null
wait_for 20 curl -sf --noproxy '*' -o /dev/null "http://127.0.0.1:$oport/" || fail "the origin container does not serve"
code=$(proxy_get "127.0.0.1:$port" "http://127.0.0.1:$oport/100k.txt" "$T/100k") || fail "request to the origin container"
[ "$code" = 200 ] && [ "$(stat -c %s "$T/100k")" = 100000 ] || fail "100k.txt through proxyd: status $code, $(stat -c %s "$T/100k") bytes"
log "origin.Dockerfile image serves through the proxyd container (100 KB, 200)"
docker rm -f "$NAME-origin" >/dev/null

docker kill -s HUP "$NAME" >/dev/null
wait_for 20 sh -c "$DOCKER_CLI -H unix://$D/docker.sock logs $NAME 2>&1 | grep -q 'reloaded: generation 2'" \
    || { docker logs "$NAME" 2>&1 | tail >&2; fail "SIGHUP to PID 1 did not reload"; }
log "SIGHUP to PID 1: reloaded"
check_requests "127.0.0.1:$port" "http://127.0.0.1:$ORIGIN_PORT" 2
[ "$(docker inspect -f '{{.State.Running}}' "$NAME")" = true ] || fail "SIGHUP stopped the container"

t0=$SECONDS
drain_check "127.0.0.1:$port" "http://127.0.0.1:$ORIGIN_PORT" docker stop -t 40 "$NAME" >/dev/null
code=$(docker inspect -f '{{.State.ExitCode}}' "$NAME")
[ "$code" = 0 ] || { docker logs "$NAME" 2>&1 | tail >&2; fail "exit code $code after SIGTERM (137 = killed)"; }
log "docker stop: SIGTERM drained, exit 0 in $((SECONDS - t0)) s"

# 5. a proxyd_cluster of three containers on a user-defined network: the alias
#    proxyd-peers resolves (Docker's embedded DNS) to all three; each URL asked
#    through every member reaches the origin once; a member killed: its URLs are
#    served by the next owner, fetched once more each.
t0=$SECONDS
n3=$((200 + $$ % 50))
n2=$((($$ / 50) % 250))
net="$NAME-net"
at_exit "$DOCKER_CLI -H unix://$D/docker.sock network rm $net"
docker network create --driver bridge --subnet "10.$n3.$n2.0/24" --gateway "10.$n3.$n2.1" "$net" >/dev/null \
    || fail "docker network create $net (10.$n3.$n2.0/24)"
gw="10.$n3.$n2.1"
python3 "$PROXYD_SRC/tests/slow/origin.py" 0 "$T/corigin.port" 600 "$gw" &
corigin_pid=$!
at_exit "kill_wait $corigin_pid 5"
wait_for 10 test -s "$T/corigin.port" || fail "the cluster's origin did not start on $gw"
cport=$(cat "$T/corigin.port")
ccount() { cat "$T/corigin.port.count" 2>/dev/null || echo 0; }
# the shipped configuration, one worker, the members re-resolved every 2 s at most
sed -e 's/^workers .*/workers 1/' -e 's/^cache_mem .*/cache_mem 32 MB/' "$PROXYD_SRC/conf/proxy.conf" >"$T/conf/cluster.conf"
echo "proxyd_cluster proxyd-peers max-ttl=2" >>"$T/conf/cluster.conf"
chmod 644 "$T/conf/cluster.conf"
members=()
for i in 11 12 13; do
    at_exit "$DOCKER_CLI -H unix://$D/docker.sock rm -f $NAME-m$i"
    docker run -d --name "$NAME-m$i" --network "$net" --network-alias proxyd-peers --ip "10.$n3.$n2.$i" \
        -v "$T/conf/cluster.conf:/etc/proxyd/proxy.conf:ro" proxyd-slow/proxyd:test >/dev/null 2>"$T/run-m$i.err" \
        || fail "docker run member $i: $(cat "$T/run-m$i.err")" # (its warning: no IP forwarding, not needed on one bridge)
    members+=("10.$n3.$n2.$i")
done
for i in 11 12 13; do
    wait_for 30 sh -c "$DOCKER_CLI -H unix://$D/docker.sock logs $NAME-m$i 2>&1 | grep -q 'proxyd_cluster proxyd-peers: 3 members, this proxy one of them'" \
        || { docker logs "$NAME-m$i" 2>&1 | tail >&2; fail "member $i never saw 3 members (is Docker's embedded DNS answering?)"; }
done
log "3 proxyd containers on $net see each other through the alias proxyd-peers ($((SECONDS - t0)) s)"
nurl=12
for ((u = 1; u <= nurl; u++)); do
    for m in "${members[@]}"; do
        code=$(proxy_get "$m:3128" "http://$gw:$cport/c/$u" "$T/cbody") || fail "GET /c/$u through $m"
        [ "$code" = 200 ] && grep -qx "origin says hello for /c/$u" "$T/cbody" || fail "GET /c/$u through $m: $code $(head -c 200 "$T/cbody")"
    done
done
[ "$(ccount)" = "$nurl" ] || fail "$nurl URLs asked through each of 3 members: the origin served $(ccount) (want $nurl)"
carp=0
for i in 11 12 13; do
    c=$(docker logs "$NAME-m$i" 2>/dev/null | grep -c " CARP/10\.$n3\.$n2\." || true)
    carp=$((carp + c))
done
[ "$carp" = $((2 * nurl)) ] || fail "$carp requests forwarded to their owner (want $((2 * nurl)))"
log "$nurl URLs x 3 members: the origin served each once; $carp requests went to the URL's owner"
# the third member goes: its URLs are fetched once more, by their next owner
owned=$(docker logs "$NAME-m13" 2>/dev/null | grep -c " TCP_MISS/200 .* HIER_DIRECT/$gw " || true)
before=$(ccount)
docker kill "$NAME-m13" >/dev/null
for ((u = 1; u <= nurl; u++)); do
    for m in "${members[@]:0:2}"; do
        code=$(proxy_get "$m:3128" "http://$gw:$cport/c/$u" "$T/cbody") || fail "GET /c/$u through $m after the kill"
        [ "$code" = 200 ] || fail "GET /c/$u through $m after the kill: $code"
    done
done
[ "$(ccount)" = $((before + owned)) ] || fail "after the kill the origin served $(($(ccount) - before)) more (want $owned: the dead member's URLs, once each)"
log "member 13 killed: its $owned URLs served by the next owner, fetched once more each; the rest still hits"
log "cluster part: $((SECONDS - t0)) s"
echo "docker: 1 passed, 0 failed"
