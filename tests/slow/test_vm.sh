#!/usr/bin/env bash
# test_vm.sh: the KVM guest image boots, takes its configuration from a
# cloud-init seed, and proxies.
# Builds proxyd.qcow2 (2 GiB) with vm-images/build-qcow2 from the fixture's
# .deb (cached in $SLOW_CACHE, rebuilt only when the .deb's files or the image
# scripts change). Makes a NoCloud seed with cloud-localds: a proxy.conf of
# its own (http_port 8080, visible_hostname, access log in /var/log/proxyd),
# an SSH key for the user debian, a hostname, a network-config with a second
# address. Boots an overlay of the image grown to 3 GiB (qemu-img resize) with
# vm-images/launch (TCG where KVM cannot run) on a restricted user-net
# virtio-net NIC, the console on a socket; waits for PROXYD-VM-READY on the
# console log and checks the guest's report: the seed's hostname and address,
# cloud-init's NoCloud datasource without errors, the root file system grown
# past 2 GiB, fsck of the root in the initramfs, logrotate, virtio_net. Sends
# requests through the guest's proxyd (on the seed's port, Via with the seed's
# visible_hostname) to an origin on the host's 127.0.0.1 (reached from the
# guest as 10.0.2.100:8080 through a guestfwd relay); logs in with the seed's
# key over SSH, rotates proxyd's log with logrotate and checks proxyd writes a
# new one; gets a login prompt through `launch --console`; then `launch
# --stop` (ACPI) with a request in flight, which must complete.
set -euo pipefail
export TEST_NAME=vm # lib.sh's log() prefixes its lines with it
. "$(dirname "$0")/lib.sh"
need_root
need mmdebstrap qemu-system-x86_64 qemu-img mke2fs mkfs.vfat mcopy syslinux sfdisk curl python3 \
    cloud-localds ssh ssh-keygen
VM="$PROXYD_SRC/vm-images"
deb="$SLOW_CACHE/proxyd.deb"
[ -f "$deb" ] || fail "$deb missing (the build-deb fixture failed?)"

# cache key: the files the .deb installs (not its timestamps, nor its docs: a change to
# docs/*.md alone does not cost an image build) and the scripts
key=$( { dpkg-deb --fsys-tarfile "$deb" | tar -xOf - --exclude='./usr/share/doc/*'; cat "$VM/build-qcow2" "$VM"/guest/*; } | sha256sum | cut -c1-16)
img="$SLOW_CACHE/proxyd-$key.qcow2"
if [ ! -s "$img" ]; then
    rm -f "$SLOW_CACHE"/proxyd-*.qcow2
    log "building the qcow2 (cached as $(basename "$img"))"
    t0=$SECONDS
    "$VM/build-qcow2" --deb "$deb" -o "$img" >"$T/build.log" 2>&1 \
        || { tail -40 "$T/build.log" >&2; rm -f "$img"; fail "build-qcow2"; }
    grep '^build-qcow2:' "$T/build.log" >&2
    log "qcow2 built in $((SECONDS - t0)) s"
else
    log "qcow2 from the cache (not rebuilt)"
fi
log "image $(basename "$img"): $(du -m "$img" | cut -f1) MiB on disk, virtual $(qemu-img info --output=json "$img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"] // 2**20)') MiB"

start_origin
cat >"$T/fwd.sh" <<FWD
#!/bin/sh
exec python3 "$PROXYD_SRC/tests/slow/relay.py" $ORIGIN_PORT
FWD
chmod +x "$T/fwd.sh"

# The seed: the packaged proxy.conf on another port, with its own name in Via
# and the access log in a file (for logrotate), an SSH key, a hostname, and
# a static network with an address DHCP would not give.
ssh-keygen -q -t ed25519 -N '' -C proxyd-vm-test -f "$T/id" || fail "ssh-keygen"
grep -q '^http_port 3128$' "$PROXYD_SRC/conf/proxy.conf" || fail "conf/proxy.conf has no 'http_port 3128' line"
sed -e 's/^http_port 3128$/http_port 8080/' -e 's|^access_log stdout squid$|access_log /var/log/proxyd/access.log squid|' \
    "$PROXYD_SRC/conf/proxy.conf" >"$T/proxy.conf"
grep -q '^access_log /var/log/proxyd/access.log squid$' "$T/proxy.conf" || fail "conf/proxy.conf has no 'access_log stdout squid' line"
echo 'visible_hostname seeded-proxy.test' >>"$T/proxy.conf"
{
    echo '#cloud-config'
    echo 'ssh_authorized_keys:'
    echo "  - $(cat "$T/id.pub")"
    echo 'write_files:'
    echo '  - path: /etc/proxyd/proxy.conf'
    echo "    permissions: '0644'"
    echo '    content: |'
    sed 's/^/      /' "$T/proxy.conf"
} >"$T/user-data"
printf 'instance-id: proxyd-test-%s\nlocal-hostname: seeded-guest\n' "$(basename "$T")" >"$T/meta-data"
cat >"$T/network-config" <<'NET'
version: 2
ethernets:
  nic0:
    match:
      macaddress: "52:54:00:12:34:56"
    addresses: [10.0.2.15/24, 10.0.2.42/24]
    routes:
      - to: 0.0.0.0/0
        via: 10.0.2.2
    nameservers:
      addresses: [10.0.2.3]
NET
cloud-localds -N "$T/network-config" "$T/seed.img" "$T/user-data" "$T/meta-data" || fail "cloud-localds"

# An overlay on the cached image (which stays as built), grown to 3 GiB.
qemu-img create -q -f qcow2 -b "$img" -F qcow2 "$T/disk.qcow2" || fail "qemu-img create"
qemu-img resize -q "$T/disk.qcow2" 3G || fail "qemu-img resize"

port=$(free_port)
sshport=$(free_port)
export PROXYD_VM_RUNDIR="$T/run"
console="$T/run/console.log"
t0=$SECONDS
PROXYD_VM_PORT=$port PROXYD_VM_GUEST_PORT=8080 PROXYD_VM_SSH_PORT=$sshport PROXYD_VM_SEED="$T/seed.img" \
PROXYD_VM_RESTRICT=1 PROXYD_VM_CONSOLE=socket PROXYD_VM_GUESTFWD="tcp:10.0.2.100:8080-cmd:$T/fwd.sh" \
    "$VM/launch" "$T/disk.qcow2" >"$T/qemu.log" 2>&1 </dev/null &
qpid=$!
at_exit "kill_wait $qpid 10"
ready() { grep -aq 'PROXYD-VM-READY\|PROXYD-VM-FAILED' "$console"; }
if ! wait_for 480 ready; then   # TCG on a loaded 2-core machine: minutes
    kill -0 $qpid 2>/dev/null || { cat "$T/qemu.log" >&2; fail "qemu exited"; }
    tail -30 "$console" >&2
    fail "no PROXYD-VM-READY on the serial console within 480 s"
fi
grep -a '^proxyd-vm:' "$console" | tr -d '\r' >"$T/report"
cat "$T/report" >&2
grep -aq 'PROXYD-VM-READY' "$console" || fail "the guest says proxyd is not active"
boot_s=$((SECONDS - t0))
log "guest ready $boot_s s after qemu started ($(grep -a 'accelerator' "$T/qemu.log" | cut -d';' -f1))"
has() { grep -Eq "^proxyd-vm: $1" "$T/report" || fail "$2 (no line '$1' in the guest's report)"; }
has 'proxyd unit Type=notify MainPID=[1-9]' "proxyd.service is not a running Type=notify service"
has 'proxyd master runs as proxyd$' "the guest's proxyd does not run as user proxyd"
has 'nic .* driver virtio_net' "the guest's NIC does not use virtio_net"
if grep '^proxyd-vm: nic' "$T/report" | grep -v 'network file' | grep -vq 'virtio_net'; then
    fail "a guest NIC is not virtio_net"
fi
# from the seed
has 'hostname seeded-guest$' "the seed's hostname was not set"
has 'cloud-init datasource DataSourceNoCloud' "cloud-init did not take the NoCloud seed"
has 'cloud-init init-local errors 0$' "cloud-init's local stage had errors"
has 'cloud-init init errors 0$' "cloud-init's init stage had errors"
has 'addr .*10\.0\.2\.42/24' "the seed's network-config was not applied (no 10.0.2.42)"
has 'nic .* network file /etc/systemd/network/10-cloud-init-' "the NIC is not configured by cloud-init's networkd file"
has 'proxyd listens on .*:8080 ' "proxyd does not listen on the seed's http_port 8080"
# the root grown to the 3 GiB disk: more than the 2 GiB image could hold
has 'disk vda 3072 MiB' "the guest does not see a 3 GiB disk"
rootfs=$(sed -n 's/^proxyd-vm: disk .*file system \([0-9]*\)M$/\1/p' "$T/report")
[ -n "$rootfs" ] && [ "$rootfs" -gt 2048 ] || fail "the root file system did not grow to the disk (df: ${rootfs:-?} MiB)"
log "root file system grown to $rootfs MiB on the 3 GiB disk (the image is 2 GiB)"
has 'root fsck in initramfs: .*clean' "the root file system was not checked in the initramfs"
has 'logrotate config ok, /etc/logrotate.d/proxyd present, timer enabled' "logrotate is not set up"
has 'sshd active' "sshd is not running"

check_requests "127.0.0.1:$port" "http://10.0.2.100:8080" 5
grep -qi '^via:.*seeded-proxy\.test' "$T/body.headers" || fail "Via does not name the seed's visible_hostname: $(grep -i '^via:' "$T/body.headers")"
log "the guest serves with the seed's proxy.conf (port 8080, Via: seeded-proxy.test)"

# SSH with the seed's key; logrotate rotates proxyd's access log and proxyd
# writes a new one (SIGUSR1 from the postrotate script)
gssh() {
    ssh -q -i "$T/id" -p "$sshport" -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o ConnectTimeout=20 debian@127.0.0.1 "$@"
}
wait_for 60 gssh true || fail "no SSH login as debian with the seed's key on 127.0.0.1:$sshport"
[ "$(gssh hostname)" = seeded-guest ] || fail "ssh: wrong hostname"
gssh sudo logrotate -f /etc/logrotate.d/proxyd || fail "logrotate -f in the guest failed"
gssh sudo test -s /var/log/proxyd/access.log.1 || fail "logrotate made no access.log.1: $(gssh sudo ls -l /var/log/proxyd)"
code=$(proxy_get "127.0.0.1:$port" "http://10.0.2.100:8080/item/after-rotate" "$T/body") || fail "request after logrotate failed"
[ "$code" = 200 ] || fail "request after logrotate: status $code"
logged() { gssh sudo grep -q /item/after-rotate /var/log/proxyd/access.log; }
wait_for 30 logged || fail "proxyd did not log into the new access.log after logrotate: $(gssh sudo ls -l /var/log/proxyd)"
gssh sudo grep -q /item/1 /var/log/proxyd/access.log.1 || fail "the rotated access.log.1 lacks the earlier requests"
log "ssh with the seed's key; logrotate rotated access.log and proxyd reopened it"

# the console socket: a login prompt with the seed's hostname
printf '\r' | PROXYD_VM_CONSOLE_EXPECT='seeded-guest login:' PROXYD_VM_CONSOLE_WAIT=60 \
    "$VM/launch" --console >"$T/console.out" 2>&1 || fail "no login prompt through launch --console: $(tail -c 300 "$T/console.out")"
log "launch --console: login prompt"

# ACPI power button (launch --stop): systemd stops proxyd.service (SIGTERM to
# the master, KillMode=mixed) while a request is in flight; the drain lets it
# finish; launch --stop returns once qemu has exited.
t1=$SECONDS
powerdown() { "$VM/launch" --stop 120 2>>"$T/stop.log" || fail "launch --stop: $(cat "$T/stop.log")"; }
drain_check "127.0.0.1:$port" "http://10.0.2.100:8080" powerdown
# launch --stop returned: qemu has exited (this reaps it)
wait $qpid 2>/dev/null || true
grep -aq 'reboot: Power down' "$console" || fail "qemu exited without a guest power-down"
log "guest powered off in $((SECONDS - t1)) s ($(cat "$T/stop.log" | tail -1))"
echo "vm: 1 passed, 0 failed"
