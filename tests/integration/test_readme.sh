#!/bin/sh
# SPDX-License-Identifier: MIT
# test_readme.sh - runs README.md's quick tour on a fresh ferryd and compares
# what each command prints with what the README shows under it (times
# aside), so that the README stays true. A command shown without output
# must succeed; one whose shown output starts with "ferry: E" must fail with
# exactly that. Commands ending in & run in the background until the end;
# commands that need a PostgreSQL server or /etc are listed, not run.
# Needs FERRYD, FERRY_CLI and FERRY_RELAY.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ferry-readme-XXXXXX")
pids=""
cleanup() {
    for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
    echo "not ok - $1"
    exit 1
}

# The tour's blocks: "C<tab>command" and "O<tab>expected line" records.
awk '
    /^## A quick tour/ { on = 1; next }
    /^### / && on { exit }
    !on { next }
    /^    \$ / { cmd = substr($0, 7); print "C\t" cmd; next }
    /^    / {
        line = substr($0, 5)
        if (line ~ /^ *#/) next        # a comment line inside a block
        print "O\t" line; next
    }
' "$top/README.md" >"$tmp/tour.txt"
[ "$(grep -c '^C' "$tmp/tour.txt")" -ge 20 ] || fail "the tour has its commands"

"$FERRYD" --data "$tmp/data" --bind 'tcp://127.0.0.1:*' 2>"$tmp/ferryd.log" &
pids="$pids $!"
i=0
until grep -q 'msg="ready"' "$tmp/ferryd.log" 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 200 ] || fail "ferryd started"
    sleep 0.05
done
ep=$(sed -n 's/.*msg="ready" endpoint=\([^ ]*\).*/\1/p' "$tmp/ferryd.log" | head -1)
[ -n "$ep" ] || fail "ferryd said its endpoint"
export FERRY_SERVER="$ep"
mkdir -p "$tmp/run/build"
ln -s "$FERRY_CLI" "$tmp/run/build/ferry"
ln -s "$FERRY_RELAY" "$tmp/run/build/ferry-relay"
ln -s "$top/outbox-relay" "$tmp/run/outbox-relay"
cd "$tmp/run"

norm() { sed -e 's/time=[0-9T:.-]*Z/time=T/g' -e '/^$/d'; }

ran=0
skipped=""
# Runs the command held in $cmd, compares with $tmp/want.
run_one() {
    [ -n "$cmd" ] || return 0
    case "$cmd" in
    *host=db* | */etc/*)
        skipped="$skipped
  $cmd"
        return 0
        ;;
    esac
    ran=$((ran + 1))
    case "$cmd" in
    *'&' | *'& '*)
        sh -c "${cmd%%&*}" >"$tmp/bg.$ran" 2>&1 &
        pids="$pids $!"
        sleep 0.3
        return 0
        ;;
    esac
    rc=0
    sh -c "$cmd" >"$tmp/got" 2>&1 || rc=$?
    norm <"$tmp/got" >"$tmp/got.n"
    norm <"$tmp/want" >"$tmp/want.n"
    if [ -s "$tmp/want" ]; then
        if ! diff -u "$tmp/want.n" "$tmp/got.n" >"$tmp/diff"; then
            cat "$tmp/diff"
            fail "\$ $cmd prints what README.md shows"
        fi
        if head -1 "$tmp/want" | grep -q '^ferry: E'; then
            [ $rc -ne 0 ] || fail "\$ $cmd fails, as README.md shows"
            return 0
        fi
    fi
    [ $rc -eq 0 ] || { cat "$tmp/got"; fail "\$ $cmd succeeds (exit $rc)"; }
}

cmd=""
: >"$tmp/want"
while IFS= read -r rec; do
    kind=${rec%%"	"*}
    text=${rec#*"	"}
    if [ "$kind" = C ]; then
        run_one
        cmd=$text
        : >"$tmp/want"
    else
        printf '%s\n' "$text" >>"$tmp/want"
    fi
done <"$tmp/tour.txt"
run_one

echo "ok - README.md's quick tour: $ran commands ran on a fresh broker and printed what it shows"
echo "   (not run, they need a PostgreSQL server or /etc:$skipped)"
echo "1 passed, 0 failed"
