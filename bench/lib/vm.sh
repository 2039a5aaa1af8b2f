# shellcheck shell=bash
# KVM platforms (sourced, not run; needs common.sh): the benchmark guest that
# bench/vm/build-image builds (vm-images/proxyd-bench.qcow2) with an emulated NIC (e1000, the
# study's "full virtualization") or a para-virtualized one (virtio-net-pci). KVM when /dev/kvm
# is usable and the CPU has vmx/svm, else TCG (much slower: the report says which). The guest
# runs both proxies, proxyd (one worker) on 3128 and Squid on 3130; a cell loads one of them
# and the other idles.
#
# Network: qemu user-mode networking (no bridge, no tap, nothing on the host's network):
# 127.0.0.1:VM_PORT_PROXYD and 127.0.0.1:VM_PORT_SQUID are forwarded to the guest's 3128 and
# 3130, and the guest reaches the origin on the host's 127.0.0.1 as 10.0.2.2 (slirp's host
# alias), so every packet stays on this host. The guest's configurations are fixed (cache
# on): "cache off" runs fetch the origin's no-store object instead.

VM_PID=
VM_ACCEL=
VM_PORT_PROXYD=
VM_PORT_SQUID=

# vm_image ROOT: prints the image path (BENCH_VM_IMAGE or vm-images/proxyd-bench.qcow2), or
# fails.
vm_image() {
    local root=$1 f
    for f in "${BENCH_VM_IMAGE:-}" "$root/vm-images/proxyd-bench.qcow2"; do
        [ -n "$f" ] && [ -f "$f" ] && { echo "$f"; return 0; }
    done
    return 1
}

# vm_usable ROOT: true if the VM platforms can run; prints the reason otherwise.
vm_usable() {
    if ! command -v qemu-system-x86_64 >/dev/null; then
        echo "qemu-system-x86_64 not installed (apt-get install qemu-system-x86)"
        return 1
    fi
    if ! vm_image "$1" >/dev/null; then
        echo "no image (vm-images/proxyd-bench.qcow2: build it with sudo bench/vm/build-image)"
        return 1
    fi
    return 0
}

# vm_accel: kvm or tcg.
vm_accel() {
    if [ -r /dev/kvm ] && [ -w /dev/kvm ] && grep -qEw 'vmx|svm' /proc/cpuinfo; then
        echo kvm
    else
        echo tcg
    fi
}

# vm_start ROOT DIR NIC LOADGEN TIMEOUT_S: boots the image (a throw-away overlay: -snapshot)
# with NIC (e1000 | virtio-net-pci), 4 vCPUs and 4 GB as in the study, and waits until a
# request for VM_PROBE_URL succeeds through both proxies of the guest. Sets VM_PID (qemu, our
# child), VM_ACCEL, VM_PORT_PROXYD and VM_PORT_SQUID.
vm_start() {
    local root=$1 dir=$2 nic=$3 loadgen=$4 timeout=$5 img deadline port ok
    local -a cpu
    img=$(vm_image "$root") || return 1
    mkdir -p "$dir"
    VM_ACCEL=$(vm_accel)
    if [ "$VM_ACCEL" = kvm ]; then
        cpu=(-accel kvm -cpu host)
    else
        cpu=(-accel "tcg,thread=multi" -cpu max)
    fi
    VM_PORT_PROXYD=$(bench_free_port) || return 1
    VM_PORT_SQUID=$(bench_free_port) || return 1
    [ "$VM_PORT_SQUID" != "$VM_PORT_PROXYD" ] || VM_PORT_SQUID=$(bench_free_port) || return 1
    qemu-system-x86_64 -machine q35 "${cpu[@]}" -m 4096 -smp 4 -snapshot \
        -drive "file=$img,if=virtio,format=qcow2" \
        -nic "user,model=$nic,hostfwd=tcp:127.0.0.1:$VM_PORT_PROXYD-:3128,hostfwd=tcp:127.0.0.1:$VM_PORT_SQUID-:3130" \
        -display none -vga none -no-reboot -serial "file:$dir/serial.log" \
        >"$dir/qemu.out" 2>&1 </dev/null &
    VM_PID=$!
    deadline=$(($(date +%s) + timeout))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        bench_alive "$VM_PID" || { echo "qemu exited: $(tail -3 "$dir/qemu.out")" >&2; return 1; }
        ok=1
        for port in "$VM_PORT_PROXYD" "$VM_PORT_SQUID"; do
            "$loadgen" -c 1 -n 1 --url "$VM_PROBE_URL" --proxy "127.0.0.1:$port" --timeout 5 \
                --duration-limit 6 -q >/dev/null 2>&1 || { ok=0; break; }
        done
        [ "$ok" = 0 ] || return 0
        sleep 2
    done
    echo "the guest's proxies did not both answer in ${timeout}s (see $dir/serial.log)" >&2
    return 1
}

# vm_stop: powers the guest off (SIGTERM to qemu: the overlay is thrown away).
vm_stop() {
    [ -z "$VM_PID" ] || bench_stop_pid "$VM_PID" 10
    VM_PID=
}
