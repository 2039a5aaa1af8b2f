#!/bin/sh
# lint.shellcheck: every shell script of the tree (tracked *.sh and files whose first line
# runs sh or bash) passes shellcheck at warning level. Exit 77 (skipped) without shellcheck.
set -eu
src=${PROXYD_SRC:?PROXYD_SRC: the source tree}
command -v shellcheck >/dev/null || { echo "shellcheck not installed (apt-get install shellcheck)"; exit 77; }
cd "$src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    list=$(git ls-files)
else
    list=$(find . -type f -not -path './build*' -not -path './.git/*' | sed 's|^\./||')
fi
scripts=$(printf '%s\n' "$list" | while IFS= read -r f; do
    [ -f "$f" ] || continue
    case $f in
        *.sh) echo "$f" ;;
        *.py | *.c | *.h | *.md | *.png | *.json | *.yaml | *.conf) ;;
        *) if head -n 1 "$f" 2>/dev/null | grep -qE '^#!.*[/ ](ba)?sh( |$)'; then echo "$f"; fi ;;
    esac
done)
n=$(printf '%s\n' "$scripts" | grep -c .)
[ "$n" -gt 0 ] || { echo "no shell scripts found under $src"; exit 1; }
# shellcheck disable=SC2086  # one argument per path; no path has blanks
shellcheck -S warning -x $scripts
echo "shellcheck: $n scripts, no warnings"
