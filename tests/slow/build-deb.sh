#!/usr/bin/env bash
# build-deb.sh: CTest fixture of the slow tests: build proxyd_<version>_amd64.deb
# from the source tree with CPack (prefix /usr, RelWithDebInfo, stripped) into
# $SLOW_CACHE, where test_deb and test_vm take it. Rebuilt on every run: it
# takes seconds and must match the sources under test.
set -euo pipefail
export TEST_NAME=build-deb # lib.sh's log() prefixes its lines with it
. "$(dirname "$0")/lib.sh"
need cmake cpack dpkg-shlibdeps
b="$SLOW_CACHE/deb-build"
cmake -S "$PROXYD_SRC" -B "$b" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
    -DPROXYD_SANITIZE=OFF >/dev/null
cmake --build "$b" -j2 --target proxyd manpage >/dev/null
rm -f "$b"/proxyd_*.deb
(cd "$b" && cpack -G DEB >/dev/null)
deb=$(ls "$b"/proxyd_*_amd64.deb)
cp "$deb" "$SLOW_CACHE/"
ln -sf "$(basename "$deb")" "$SLOW_CACHE/proxyd.deb"
log "built $(basename "$deb") ($(stat -c %s "$deb") bytes)"
dpkg-deb -f "$deb" Depends >&2
