#!/usr/bin/env bash
# test_vm.sh: the KVM guest image boots and proxies.
# Builds proxyd.qcow2 with vm-images/build-qcow2 from the fixture's .deb
# (cached in $SLOW_CACHE, rebuilt only when the .deb's files or the image
# scripts change), boots it with vm-images/launch (TCG where KVM cannot run,
# -snapshot so the cached image stays as built) with a restricted user-net
# virtio-net NIC, waits for PROXYD-VM-READY on the serial console, checks the
# NIC's driver is virtio_net, sends requests through the guest's proxyd to an
# origin on the host's 127.0.0.1 (reached from the guest as 10.0.2.100:8080
# through a guestfwd relay), then powers the guest off (ACPI) and checks qemu
# exits.
set -euo pipefail
export TEST_NAME=vm # lib.sh's log() prefixes its lines with it
. "$(dirname "$0")/lib.sh"
need_root
need mmdebstrap qemu-system-x86_64 qemu-img mke2fs mkfs.vfat mcopy syslinux sfdisk curl python3
VM="$PROXYD_SRC/vm-images"
deb="$SLOW_CACHE/proxyd.deb"
[ -f "$deb" ] || fail "$deb missing (the build-deb fixture failed?)"

# cache key: the files the .deb installs (not its timestamps) and the scripts
key=$( { dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ; cat "$VM/build-qcow2" "$VM"/guest/*; } | sha256sum | cut -c1-16)
img="$SLOW_CACHE/proxyd-$key.qcow2"
if [ ! -s "$img" ]; then
    rm -f "$SLOW_CACHE"/proxyd-*.qcow2
    log "building the qcow2 (cached as $(basename "$img"))"
    t0=$SECONDS
    "$VM/build-qcow2" --deb "$deb" -o "$img" >"$T/build.log" 2>&1 \
        || { tail -40 "$T/build.log" >&2; rm -f "$img"; fail "build-qcow2"; }
    grep '^build-qcow2:' "$T/build.log" >&2
    log "qcow2 built in $((SECONDS - t0)) s"
fi
log "image $(basename "$img"): $(du -m "$img" | cut -f1) MiB on disk, virtual $(qemu-img info --output=json "$img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"] // 2**20)') MiB"

start_origin
cat >"$T/fwd.sh" <<FWD
#!/bin/sh
exec python3 "$PROXYD_SRC/tests/slow/relay.py" $ORIGIN_PORT
FWD
chmod +x "$T/fwd.sh"
port=$(free_port)
t0=$SECONDS
PROXYD_VM_PORT=$port PROXYD_VM_SNAPSHOT=1 PROXYD_VM_SERIAL="$T/serial.log" \
PROXYD_VM_MONITOR="$T/monitor.sock" PROXYD_VM_GUESTFWD="tcp:10.0.2.100:8080-cmd:$T/fwd.sh" \
    "$VM/launch" "$img" >"$T/qemu.log" 2>&1 &
qpid=$!
at_exit "kill_wait $qpid 10"
ready() { grep -aq 'PROXYD-VM-READY\|PROXYD-VM-FAILED' "$T/serial.log"; }
if ! wait_for 420 ready; then   # TCG on a loaded 2-core machine: minutes
    kill -0 $qpid 2>/dev/null || { cat "$T/qemu.log" >&2; fail "qemu exited"; }
    tail -30 "$T/serial.log" >&2
    fail "no PROXYD-VM-READY on the serial console within 420 s"
fi
grep -a '^proxyd-vm:' "$T/serial.log" | tr -d '\r' >&2
grep -aq 'PROXYD-VM-READY' "$T/serial.log" || fail "the guest says proxyd is not active"
boot_s=$((SECONDS - t0))
log "guest ready $boot_s s after qemu started ($(grep -a 'accelerator' "$T/qemu.log"))"
grep -aq '^proxyd-vm: proxyd unit Type=notify MainPID=[1-9]' "$T/serial.log" || fail "proxyd.service is not a running Type=notify service"
grep -aq '^proxyd-vm: proxyd master runs as proxyd' "$T/serial.log" || fail "the guest's proxyd does not run as user proxyd"
grep -aq '^proxyd-vm: nic .* driver virtio_net' "$T/serial.log" || fail "the guest's NIC does not use virtio_net"
if grep -a '^proxyd-vm: nic' "$T/serial.log" | grep -avq 'virtio_net'; then
    fail "a guest NIC is not virtio_net"
fi

check_requests "127.0.0.1:$port" "http://10.0.2.100:8080" 5
grep -q 'proxyd-vm' "$T/body.headers" || fail "the answer did not come through the guest's proxyd (Via)"

cat >"$T/powerdown.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(5)
buf = b""
while b"(qemu)" not in buf:          # the monitor's prompt
    buf += s.recv(4096)
s.sendall(b"system_powerdown\n")
buf = b""
while b"(qemu)" not in buf:          # the command was taken
    buf += s.recv(4096)
s.close()
PY
powerdown() { python3 "$T/powerdown.py" "$T/monitor.sock" || fail "qemu monitor"; }
# ACPI power button: systemd stops proxyd.service (SIGTERM to the master,
# KillMode=mixed) while a request is in flight; the drain lets it finish.
t1=$SECONDS
drain_check "127.0.0.1:$port" "http://10.0.2.100:8080" powerdown
for ((i = 0; i < 900; i++)); do kill -0 $qpid 2>/dev/null || break; sleep 0.1; done
kill -0 $qpid 2>/dev/null && fail "the guest did not power off within 90 s"
grep -aq 'reboot: Power down' "$T/serial.log" || fail "qemu exited without a guest power-down"
log "guest powered off in $((SECONDS - t1)) s"
echo "vm: 1 passed, 0 failed"
