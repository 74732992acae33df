#!/bin/sh
# SPDX-License-Identifier: MIT
# test_layout.sh - the promises of docs/hacking.md about the tree: every
# quoted #include of a folder resolves in the folders it may use (the
# arrows run one way), no source file outside tests/ is over 1,000 lines,
# and the default endpoint is written once.
set -u
top="${FERRY_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}"
cd "$top" || exit 1
passed=0
failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
bad() { echo "not ok - $1"; failed=$((failed + 1)); }

# folder: the folders its quoted includes may come from (itself first)
allowed() {
    case "$1" in
    include) echo "include" ;;
    proto) echo "proto include" ;;
    broker) echo "broker proto include" ;;
    client) echo "client proto include" ;;
    relay) echo "relay proto include" ;;
    saga) echo "saga relay proto include" ;;
    sql) echo "sql relay proto include" ;;
    outbox-relay) echo "outbox-relay relay proto include" ;;
    cli) echo "cli proto include" ;;
    examples) echo "include" ;;
    esac
}

for folder in include proto broker client relay saga sql outbox-relay cli examples; do
    wrong=""
    for f in "$folder"/*.c "$folder"/*.h; do
        [ -e "$f" ] || continue
        for inc in $(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f"); do
            found=""
            for a in $(allowed "$folder"); do
                if [ -e "$a/$inc" ]; then
                    found="$a"
                    break
                fi
            done
            [ -n "$found" ] || wrong="$wrong $f:$inc"
        done
    done
    if [ -z "$wrong" ]; then
        ok "$folder/ includes only from: $(allowed "$folder")"
    else
        bad "$folder/ includes from elsewhere:$wrong"
    fi
done

# The broker never sees libferry's public structs.
public=$(grep -n 'ferry_[a-z_]*_t\b' broker/*.c broker/*.h proto/*.c proto/*.h | grep -v 'ferry_status_t')
if [ -z "$public" ]; then
    ok "broker/ and proto/ use no public type of libferry but the status"
else
    bad "broker/ and proto/ use libferry's public types: $(echo "$public" | head -3)"
fi

big=$(git ls-files '*.c' '*.h' | grep -v '^tests/' | xargs wc -l | awk '$2 != "total" && $1 > 1000 {print $2 "(" $1 ")"}')
if [ -z "$big" ]; then
    ok "no source file outside tests/ is over 1,000 lines"
else
    bad "files over 1,000 lines: $big"
fi

uses=$(git ls-files '*.c' | grep -v '^tests/' | xargs grep -l '127\.0\.0\.1:5555' | tr '\n' ' ')
defs=$(git ls-files '*.h' | xargs grep -l '^#define [A-Z_]* *"tcp://127\.0\.0\.1:5555"' | tr '\n' ' ')
if [ -z "$uses" ] && [ "$defs" = "proto/wire_limits.h " ]; then
    ok "the default endpoint is defined once (proto/wire_limits.h), no program spells it out"
else
    bad "the default endpoint is written in: $uses; defined in: $defs"
fi

nospdx=$(git ls-files '*.c' '*.h' '*.sh' '*.sql' Makefile .ci/run scripts/install-deps |
    while read -r f; do head -3 "$f" | grep -q 'SPDX-License-Identifier: MIT' || echo "$f"; done |
    tr '\n' ' ')
if [ -z "$nospdx" ] && grep -q '^MIT License' LICENSE; then
    ok "LICENSE is MIT, and every source file says so (SPDX-License-Identifier)"
else
    bad "LICENSE, or the SPDX line missing in: $nospdx"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
