#!/usr/bin/env bash
# test_deb_repro.sh: the .deb is reproducible and lintian-clean.
# The build-deb fixture built it from the source tree in $SLOW_CACHE/deb-build;
# this test copies the same sources (tracked and untracked, as git lists them)
# into a folder of another name and length and builds again there, with the
# same SOURCE_DATE_EPOCH: the two .debs must be the same bytes (both sha256 are
# printed; on a difference, the members and files that differ). Then lintian:
# no error and no warning (informational tags are printed, not failed on).
set -euo pipefail
export TEST_NAME=deb_repro # lib.sh's log() prefixes its lines with it
. "$(dirname "$0")/lib.sh"
need cmake cpack dpkg-shlibdeps dpkg-deb git sha256sum
deb="$SLOW_CACHE/proxyd.deb"
[ -f "$deb" ] || fail "$deb missing (the build-deb fixture failed?)"
git -C "$PROXYD_SRC" rev-parse --git-dir >/dev/null 2>&1 || skip "$PROXYD_SRC is not a git checkout: cannot list its sources"

SOURCE_DATE_EPOCH=$("$PROXYD_SRC/scripts/build-deb" --print-epoch)
export SOURCE_DATE_EPOCH
copy="$T/another/source-folder"
mkdir -p "$copy"
(cd "$PROXYD_SRC" && git ls-files -z -c -o --exclude-standard | xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh \
    | tar --null -T - -cf -) | tar -xf - -C "$copy"
log "sources copied to $copy; second build in $T/b2 (SOURCE_DATE_EPOCH $SOURCE_DATE_EPOCH)"
deb2=$("$copy/scripts/build-deb" "$T/b2")
a=$(sha256sum <"$(readlink -f "$deb")" | cut -c1-64)
b=$(sha256sum <"$deb2" | cut -c1-64)
log "sha256 $a  $(readlink -f "$deb") (build-deb fixture)"
log "sha256 $b  $deb2 (second build)"
if [ "$a" != "$b" ]; then
    mkdir -p "$T/x1" "$T/x2"
    (cd "$T/x1" && ar x "$(readlink -f "$deb")" && dpkg-deb -R "$(readlink -f "$deb")" tree)
    (cd "$T/x2" && ar x "$deb2" && dpkg-deb -R "$deb2" tree)
    diff <(ar tv "$(readlink -f "$deb")") <(ar tv "$deb2") >&2 || true
    diff <(dpkg-deb -c "$(readlink -f "$deb")") <(dpkg-deb -c "$deb2") >&2 || true
    diff -r "$T/x1/tree" "$T/x2/tree" >&2 || true
    fail "two builds of the same sources differ"
fi
log "the two builds are the same bytes"

if command -v lintian >/dev/null; then
    lintian --info --display-info "$deb2" >"$T/lintian.out" 2>&1 || true
    grep -v '^running with root privileges' "$T/lintian.out" >&2 || true
    if grep -Eq '^[EW]: ' "$T/lintian.out"; then
        fail "lintian reports errors or warnings"
    fi
    log "lintian: no errors, no warnings ($(grep -c '^[IP]: ' "$T/lintian.out" || true) informational tags)"
else
    skip "lintian not installed (apt-get install lintian); the builds were reproducible"
fi
echo "deb_repro: 2 passed, 0 failed"
