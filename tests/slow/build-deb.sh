#!/usr/bin/env bash
# build-deb.sh: CTest fixture of the slow tests: build proxyd_<version>_amd64.deb
# from the source tree with scripts/build-deb (CPack; prefix /usr, RelWithDebInfo,
# stripped, reproducible) into $SLOW_CACHE, where test_deb, test_deb_repro and
# test_vm take it. Rebuilt on every run: it must match the sources under test.
set -euo pipefail
export TEST_NAME=build-deb # lib.sh's log() prefixes its lines with it
. "$(dirname "$0")/lib.sh"
need cmake cpack dpkg-shlibdeps
b="$SLOW_CACHE/deb-build"
deb=$("$PROXYD_SRC/scripts/build-deb" "$b")
cp "$deb" "$SLOW_CACHE/"
ln -sf "$(basename "$deb")" "$SLOW_CACHE/proxyd.deb"
log "built $(basename "$deb") ($(stat -c %s "$deb") bytes, SOURCE_DATE_EPOCH $("$PROXYD_SRC/scripts/build-deb" --print-epoch), sha256 $(sha256sum <"$deb" | cut -c1-64))"
dpkg-deb -f "$deb" Depends >&2
