#!/usr/bin/env bash
# test_deb.sh: the .deb installs on this Debian 12 machine, creates the proxyd
# user and /var/log/proxyd, ships its files (conffile, unit, man page), and the
# daemon started as the unit starts it (proxyd -t, then proxyd -c as the proxyd
# user) proxies requests and drains on SIGTERM. The package is purged at the end.
# systemd is not PID 1 here: the unit file itself is checked with
# systemd-analyze verify where available, not run. The proxyd user stays after
# the purge (documented); the test deletes it when it made it.
set -euo pipefail
export TEST_NAME=deb # lib.sh's log() prefixes its lines with it
. "$(dirname "$0")/lib.sh"
need_root
need dpkg curl python3 runuser setpriv
deb="$SLOW_CACHE/proxyd.deb"
[ -f "$deb" ] || fail "$deb missing (the build-deb fixture failed?)"
if dpkg -s proxyd >/dev/null 2>&1; then
    skip "a proxyd package is already installed here; not touching it"
fi

[[ "$(dpkg-deb -f "$deb" Depends)" == *libevent-core-2.1-7* ]] || fail "Depends lacks libevent"
[[ "$(dpkg-deb -f "$deb" Depends)" == *libjemalloc2* ]] || fail "Depends lacks libjemalloc2"
dpkg-deb -I "$deb" conffiles | grep -qx /etc/proxyd/proxy.conf || fail "proxy.conf is not a conffile"

had_user=0
getent passwd proxyd >/dev/null && had_user=1
at_exit "dpkg --purge proxyd"
[ $had_user = 1 ] || at_exit "deluser --system --quiet proxyd; delgroup --system --quiet proxyd"
log "dpkg -i $(basename "$(readlink -f "$deb")")"
DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" >"$T/dpkg.log" 2>&1 || { cat "$T/dpkg.log" >&2; fail "dpkg -i failed (dependencies missing? apt-get install libevent-2.1-7 libevent-extra-2.1-7 libjemalloc2)"; }

# an upgrade (here: the same version again) keeps a locally edited conffile
echo "# local edit" >>/etc/proxyd/proxy.conf
DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold "$deb" >"$T/dpkg.log" 2>&1 || { cat "$T/dpkg.log" >&2; fail "dpkg -i over itself"; }
tail -1 /etc/proxyd/proxy.conf | grep -qx '# local edit' || fail "reinstall lost the local edit of proxy.conf"
sed -i '$d' /etc/proxyd/proxy.conf

for f in /usr/sbin/proxyd /etc/proxyd/proxy.conf /lib/systemd/system/proxyd.service \
         /usr/share/man/man8/proxyd.8.gz /etc/logrotate.d/proxyd; do
    [ -e "$f" ] || fail "$f not installed"
done
getent passwd proxyd >/dev/null || fail "postinst did not create the proxyd user"
[ "$(stat -c %U:%G "/var/log/proxyd")" = proxyd:proxyd ] || fail "/var/log/proxyd not owned by proxyd"
/usr/sbin/proxyd -v | grep -q '^proxyd ' || fail "proxyd -v"
/usr/sbin/proxyd -h | grep -q -- '-c FILE' || fail "proxyd -h"
/usr/sbin/proxyd -h | grep -q '/etc/proxyd/proxy.conf' || fail "default configuration is not /etc/proxyd/proxy.conf"
if command -v man >/dev/null; then
    man -l /usr/share/man/man8/proxyd.8.gz 2>/dev/null | grep -q 'SIGHUP' || fail "man page does not render"
fi
if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify /lib/systemd/system/proxyd.service >"$T/verify" 2>&1 \
        || { cat "$T/verify" >&2; fail "systemd-analyze verify proxyd.service"; }
    log "systemd-analyze verify proxyd.service: OK"
fi
grep -q '^Type=notify' /lib/systemd/system/proxyd.service
grep -q '^ExecStartPre=/usr/sbin/proxyd -t' /lib/systemd/system/proxyd.service

# As the unit does: ExecStartPre (check), then ExecStart as User=proxyd.
runuser -u proxyd -- /usr/sbin/proxyd -t -c /etc/proxyd/proxy.conf || fail "proxyd -t on the packaged proxy.conf"
# The packaged file listens on 3128 (admin 3129), which another program on a
# shared machine may hold: run it with only the two ports changed to free ones.
port=$(free_port)
aport=$(free_port)
install -d -o proxyd -g proxyd "$T/run"
local_conf /etc/proxyd/proxy.conf "$T/run/proxy.conf" "$port" "$aport"
chmod 755 "$T"
start_origin
# a stand-in for $NOTIFY_SOCKET, to see the master's READY=1 as systemd would
python3 - "$T/run/notify" >"$T/notify.out" 2>&1 <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
import os; os.chmod(sys.argv[1], 0o777)
s.settimeout(60)
print(s.recv(4096).decode(), flush=True)
PY
notify_pid=$!
at_exit "kill $notify_pid"
wait_for 5 test -S "$T/run/notify" || fail "notify socket"
setpriv --reuid=proxyd --regid=proxyd --init-groups env NOTIFY_SOCKET="$T/run/notify" /usr/sbin/proxyd -c "$T/run/proxy.conf" \
    >"$T/access.log" 2>"$T/proxyd.err" &
mpid=$!
at_exit "kill_wait $mpid 40"
wait_for 20 grep -q 'proxyd: ready' "$T/proxyd.err" || { cat "$T/proxyd.err" >&2; fail "proxyd did not get ready"; }
[ "$(ps -o user= -p $mpid)" = proxyd ] || fail "proxyd does not run as the proxyd user"
wait "$notify_pid" || true
grep -q 'READY=1' "$T/notify.out" || fail "no READY=1 on NOTIFY_SOCKET: $(cat "$T/notify.out")"
grep -q "MAINPID=$mpid" "$T/notify.out" || fail "MAINPID is not the master's pid: $(cat "$T/notify.out")"
log "master sent $(tr '\n' ' ' <"$T/notify.out")"

healthz "$aport"
check_requests "127.0.0.1:$port" "http://127.0.0.1:$ORIGIN_PORT" 5
grep -q "/item/3" "$T/access.log" || fail "no access log line on stdout"

kill -HUP $mpid
wait_for 20 grep -q 'reloaded: generation 2' "$T/proxyd.err" || { cat "$T/proxyd.err" >&2; fail "SIGHUP: no reload"; }
log "SIGHUP: reloaded"
check_requests "127.0.0.1:$port" "http://127.0.0.1:$ORIGIN_PORT" 2
drain_check "127.0.0.1:$port" "http://127.0.0.1:$ORIGIN_PORT" kill -TERM $mpid
for ((i = 0; i < 400; i++)); do kill -0 $mpid 2>/dev/null || break; sleep 0.1; done
kill -0 $mpid 2>/dev/null && fail "proxyd still runs 40 s after SIGTERM"
wait $mpid && rc=0 || rc=$?
[ $rc = 0 ] || fail "proxyd exited $rc after SIGTERM"
log "SIGTERM: master drained and exited 0"

dpkg --purge proxyd >"$T/dpkg.log" 2>&1 || { cat "$T/dpkg.log" >&2; fail "dpkg --purge"; }
[ ! -e /usr/sbin/proxyd ] && [ ! -e /etc/proxyd/proxy.conf ] && [ ! -e /var/log/proxyd ] || fail "purge left files"
# documented (docs/deployment.md): the system user and group stay after a purge
getent passwd proxyd >/dev/null && getent group proxyd >/dev/null || fail "purge removed the proxyd user or group"
log "purged (the proxyd user and group stay, as documented)"
echo "deb: 1 passed, 0 failed"
