#!/usr/bin/env bash
# test_docker_arm64.sh: docker/build-images --arch arm64 builds an arm64 image
# on this amd64 machine, and what is in that image proxies, run under user-mode
# emulation. There is no binfmt_misc here (and the test must not register
# one: it would change the shared kernel), so no arm64 program runs by exec:
# the image is built from a cross-compiled proxyd and an arm64 file system
# assembled on the host (FROM scratch + COPY, which needs no emulation), and its
# programs run as `qemu-aarch64 -L ROOTFS ROOTFS/usr/sbin/proxyd` (-L: the
# loader, libraries and /etc files come from the image's file system).
# Steps: our own dockerd (as test_docker.sh) and, with Debian's docker-registry,
# a registry of our own on 127.0.0.1; build-images --push (its arm64 sysroot and
# build folder are cached in $SLOW_CACHE/images): the multi-arch manifest list
# names the arm64 image, and pulling the list for linux/arm64 gives that image
# back (the list has one entry: building amd64 is slow.docker's job, and
# build-images lists both the same way); the image says linux/arm64,
# user 10001, the HEALTHCHECK; its file system, exported from a container, holds
# AArch64 ELF files only; proxyd -t on the embedded configuration; proxyd from
# the image started under qemu as uid 10001 with 2 workers, requests through it
# to an origin on 127.0.0.1 (bodies, a cache hit the origin does not see,
# TCP_MEM_HIT in the access log), the image's bash health check, SIGTERM with a
# request in flight (drained, exit 0). binfmt_misc is as it was at the start.
set -euo pipefail
export TEST_NAME=docker_arm64 # lib.sh's log() prefixes its lines with it
. "$(dirname "$0")/lib.sh"
need_root
need dockerd mmdebstrap aarch64-linux-gnu-gcc readelf cmake curl python3 setpriv
[ "$(dpkg --print-architecture)" = amd64 ] || skip "cross-builds arm64 on amd64 only"
QEMU=$(command -v qemu-aarch64 || command -v qemu-aarch64-static || true)
[ -n "$QEMU" ] || skip "no qemu-aarch64 (apt-get install qemu-user)"
DOCKER_CLI=/usr/bin/docker    # Debian's client, matching Debian's dockerd
[ -x $DOCKER_CLI ] || skip "$DOCKER_CLI missing (apt-get install docker.io)"
binfmt_state() { findmnt -rn -t binfmt_misc -o TARGET || true; ls /proc/sys/fs/binfmt_misc 2>/dev/null || true; }
binfmt_before=$(binfmt_state)

# 1. our own dockerd (no iptables, no bridge, its own dirs and socket)
start_dockerd
export DOCKER="$DOCKER_CLI"

# docker manifest keeps its lists under $DOCKER_CONFIG (not root's ~/.docker)
export DOCKER_CONFIG="$T/docker-config"

# 2. a registry of our own, for the manifest list (optional: docker-registry)
push=()
IMG=proxyd-slow/proxyd:arm64test
if command -v docker-registry >/dev/null 2>&1; then
    rport=$(free_port)
    mkdir -p "$T/registry"
    printf 'version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
        "$T/registry" "$rport" >"$T/registry.yml"
    docker-registry serve "$T/registry.yml" >"$T/registry.log" 2>&1 &
    registry_pid=$!
    at_exit "kill_wait $registry_pid 10"
    wait_for 20 curl -sf --noproxy '*' -o /dev/null "http://127.0.0.1:$rport/v2/" \
        || { cat "$T/registry.log" >&2; fail "docker-registry did not answer on 127.0.0.1:$rport"; }
    IMG="127.0.0.1:$rport/proxyd:arm64test"   # dockerd pushes to 127.0.0.0/8 over plain HTTP
    push=(--push --insecure)
    log "registry on 127.0.0.1:$rport"
else
    log "docker-registry not installed (apt-get install docker-registry): the manifest list is not tested"
fi

# 3. the image, with the one command the docs give
at_exit "$DOCKER_CLI -H unix://$D/docker.sock rmi -f $IMG-arm64 $IMG"
cache=cold
[ ! -f "$SLOW_CACHE/images/arm64/sysroot/.proxyd-sysroot" ] || cache=warm
t0=$SECONDS
"$PROXYD_SRC/docker/build-images" --arch arm64 --tag "$IMG" --out "$SLOW_CACHE/images" "${push[@]}" 2>"$T/build.log" \
    || { tail -30 "$T/build.log" >&2; fail "docker/build-images --arch arm64 ${push[*]}"; }
sed 's/^/  /' "$T/build.log" >&2
log "arm64 image built in $((SECONDS - t0)) s ($cache cache: sysroot and build folder in $SLOW_CACHE/images)"
img="$IMG-arm64"
if [ ${#push[@]} -gt 0 ]; then
    docker manifest inspect --insecure "$IMG" >"$T/list.json" || fail "docker manifest inspect $IMG"
    python3 - "$T/list.json" <<'PY' || fail "the manifest list $IMG: $(cat "$T/list.json")"
import json, sys
m = json.load(open(sys.argv[1]))
assert m["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json", m["mediaType"]
plats = [(e["platform"]["os"], e["platform"]["architecture"]) for e in m["manifests"]]
assert plats == [("linux", "arm64")], plats
PY
    # pulled by the list's name for linux/arm64: the image just built
    docker pull -q --platform linux/arm64 "$IMG" >/dev/null || fail "docker pull --platform linux/arm64 $IMG"
    [ "$(docker image inspect -f '{{.Id}}' "$IMG")" = "$(docker image inspect -f '{{.Id}}' "$img")" ] \
        || fail "pulling the manifest list for linux/arm64 gave another image than $img"
    log "manifest list $IMG: linux/arm64 -> $img (pulled back, same image id)"
fi
[ "$(docker image inspect -f '{{.Os}}/{{.Architecture}}' "$img")" = linux/arm64 ] \
    || fail "$img is $(docker image inspect -f '{{.Os}}/{{.Architecture}}' "$img"), not linux/arm64"
[ "$(docker image inspect -f '{{.Config.User}}' "$img")" = 10001:10001 ] || fail "image user is not 10001 (proxyd)"
docker image inspect -f '{{json .Config.ExposedPorts}}' "$img" | grep -q '3128/tcp' || fail "no EXPOSE 3128"
docker image inspect -f '{{json .Config.Healthcheck}}' "$img" | grep -q proxyd-healthcheck || fail "no HEALTHCHECK"
[ "$(docker image inspect -f '{{json .Config.Entrypoint}}' "$img")" = '["/usr/sbin/proxyd"]' ] || fail "entrypoint is not /usr/sbin/proxyd"
size=$(docker image inspect -f '{{.Size}}' "$img")
max_size=$((40 * 1000 * 1000))
((size <= max_size)) || fail "the image is $size bytes, over the $max_size allowed"
log "$img: linux/arm64, user 10001:10001, $size bytes"

# 4. its file system, as a container would see it
R="$T/rootfs"
mkdir -p "$R"
cid=$(docker create "$img" 2>/dev/null) || fail "docker create $img"
at_exit "$DOCKER_CLI -H unix://$D/docker.sock rm -f $cid"
docker export "$cid" | tar -x -C "$R" || fail "docker export"
nelf=0
while IFS= read -r -d '' f; do
    [ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ] || continue
    readelf -h "$f" | grep -q 'Machine:.*AArch64' || fail "${f#"$R"} in the arm64 image is not an AArch64 ELF: $(readelf -h "$f" | grep Machine)"
    nelf=$((nelf + 1))
done < <(find "$R" -type f -print0)
((nelf >= 3)) || fail "only $nelf ELF files in the image (proxyd, bash, libc at least)"
log "the image's file system: $nelf ELF files, all AArch64"
as_proxyd=(setpriv --reuid 10001 --regid 10001 --clear-groups)   # the image's USER
chmod 755 "$T"
"${as_proxyd[@]}" "$QEMU" -L "$R" "$R/usr/sbin/proxyd" -t -c /etc/proxyd/proxy.conf >"$T/t.out" 2>&1 \
    || { cat "$T/t.out" >&2; fail "arm64 proxyd -t on the embedded /etc/proxyd/proxy.conf"; }
grep -q 'is OK' "$T/t.out" || fail "proxyd -t said: $(cat "$T/t.out")"

# 5. proxyd from the image under qemu, as uid 10001, the default configuration
#    on ports of our own (2 workers: fork under emulation too)
start_origin
port=$(free_port)
aport=$(free_port)
mkdir -p "$T/conf"
local_conf "$PROXYD_SRC/conf/proxy.conf" "$T/conf/proxy.conf" "$port" "$aport"
sed -i 's/^workers .*/workers 2/' "$T/conf/proxy.conf"
chmod 755 "$T/conf"
chmod 644 "$T/conf/proxy.conf"
t0=$SECONDS
"${as_proxyd[@]}" "$QEMU" -L "$R" "$R/usr/sbin/proxyd" -c "$T/conf/proxy.conf" >"$T/access.log" 2>"$T/proxyd.err" &
ppid=$!
at_exit "kill_wait $ppid 10"
wait_for 60 grep -q 'proxyd: ready' "$T/proxyd.err" || { cat "$T/proxyd.err" >&2; fail "arm64 proxyd did not get ready"; }
grep -q "$R/usr/sbin/proxyd" "/proc/$ppid/cmdline" && [ "$(cat "/proc/$ppid/comm")" = "$(basename "$QEMU" | cut -c1-15)" ] \
    || fail "pid $ppid is not the image's proxyd under $QEMU"
[ "$(awk '/^Uid:/ {print $2}' "/proc/$ppid/status")" = 10001 ] || fail "proxyd does not run as uid 10001"
log "arm64 proxyd ready under $(basename "$QEMU") in $((SECONDS - t0)) s: $(grep 'proxyd: ready' "$T/proxyd.err")"

healthz "$aport"
check_requests "127.0.0.1:$port" "http://127.0.0.1:$ORIGIN_PORT" 5
grep -q ' TCP_MISS/200 .* http://127.0.0.1:[0-9]*/item/3 ' "$T/access.log" || fail "no TCP_MISS line for /item/3 in the access log"
grep -q ' TCP_MEM_HIT/200 .* http://127.0.0.1:[0-9]*/item/1 ' "$T/access.log" || fail "no TCP_MEM_HIT line for the repeat of /item/1: $(cat "$T/access.log")"
log "access log: $(grep -c TCP_MISS/200 "$T/access.log") TCP_MISS/200, $(grep -c TCP_MEM_HIT/200 "$T/access.log") TCP_MEM_HIT/200"

# the image's HEALTHCHECK script with the image's (arm64) bash: healthy, and
# unhealthy when nothing answers on the admin port
PROXYD_ADMIN_PORT=$aport "${as_proxyd[@]}" "$QEMU" -L "$R" "$R/usr/bin/bash" "$R/usr/local/bin/proxyd-healthcheck" \
    || fail "the image's health check says unhealthy while /healthz answers"
dead=$(free_port)
if PROXYD_ADMIN_PORT=$dead "${as_proxyd[@]}" "$QEMU" -L "$R" "$R/usr/bin/bash" "$R/usr/local/bin/proxyd-healthcheck" 2>/dev/null; then
    fail "the image's health check says healthy with nothing on port $dead"
fi
log "the image's health check (arm64 bash): healthy; unhealthy on a dead port"

# 6. SIGTERM with a request in flight: drained, exit 0
drain_check "127.0.0.1:$port" "http://127.0.0.1:$ORIGIN_PORT" kill -TERM "$ppid"
# exited: gone (bash reaped it) or a zombie not reaped yet (kill -0 still succeeds on one)
wait_for 40 sh -c "! kill -0 $ppid 2>/dev/null || grep -q '^State:[[:space:]]*Z' /proc/$ppid/status" \
    || fail "arm64 proxyd still runs 40 s after SIGTERM"
rc=0
wait "$ppid" || rc=$?
[ "$rc" = 0 ] || { tail "$T/proxyd.err" >&2; fail "exit code $rc after SIGTERM"; }
log "SIGTERM: drained, exit 0"

[ "$(binfmt_state)" = "$binfmt_before" ] || fail "binfmt_misc changed during the test: '$binfmt_before' -> '$(binfmt_state)'"
log "binfmt_misc untouched ($( [ -n "$binfmt_before" ] && echo "as it was" || echo "not mounted"))"
echo "docker_arm64: 1 passed, 0 failed"
