#!/bin/sh
# SPDX-License-Identifier: MIT
# test_cli_help.sh - `ferry` tells a new user what it takes (issue 19): every
# command has `ferry CMD --help` and `ferry help CMD` with its flags and an
# example; an unknown flag is named as unknown (not "wants a value"), for
# the command it was given to; unknown commands say so; a flag that wants a
# value says it; ferryd's --config and --check-config. No broker is needed:
# none of this reaches one.
set -u
ferry="${FERRY_CLI:?FERRY_CLI is the ferry binary}"
passed=0
failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
bad() { echo "not ok - $1"; failed=$((failed + 1)); }

out=$(mktemp)
trap 'rm -f "$out"' EXIT

# Every command listed by ferry --help has a help of its own with an example.
cmds=$("$ferry" --help | sed -n '/^Commands/,/^$/p' | awk 'NR > 1 && NF { print $1 }')
n=0
for c in $cmds; do
    n=$((n + 1))
    if "$ferry" "$c" --help >"$out" 2>&1 && grep -q "^usage: ferry" "$out" &&
        grep -q "^Example:" "$out" && "$ferry" help "$c" | cmp -s - "$out"; then
        :
    else
        bad "ferry $c --help (and ferry help $c): usage and an example"
        n=-1000
    fi
done
[ "$n" -ge 15 ] && ok "all $n commands have --help and help CMD, with an example"

"$ferry" pub --help >"$out" 2>&1
[ $? -eq 0 ] && grep -q -- "--key K" "$out" && grep -q -- "--expect-version V" "$out" &&
    ok "ferry pub --help lists the flags (exit 0)" || bad "ferry pub --help: $(cat "$out")"

"$ferry" pub orders --bogus x >"$out" 2>&1
[ $? -eq 2 ] && grep -q "pub: unknown option --bogus (ferry pub --help" "$out" &&
    ok "an unknown flag is named as unknown, exit 2" || bad "unknown flag: $(cat "$out")"

"$ferry" get orders --bogus >"$out" 2>&1
[ $? -eq 2 ] && grep -q "get: unknown option --bogus" "$out" &&
    ok "an unknown flag last on the line is unknown, not 'wants a value'" ||
    bad "unknown last flag: $(cat "$out")"

"$ferry" get orders --key k1 >"$out" 2>&1
[ $? -eq 2 ] && grep -q "get: unknown option --key" "$out" &&
    ok "a flag of another command is unknown to this one" || bad "other command's flag: $(cat "$out")"

"$ferry" pub orders --key >"$out" 2>&1
[ $? -eq 2 ] && grep -q -- "--key wants a value" "$out" &&
    ok "a known flag without its value says so" || bad "flag without value: $(cat "$out")"

"$ferry" publish orders x >"$out" 2>&1
[ $? -eq 2 ] && grep -q "unknown command 'publish'" "$out" &&
    ok "an unknown command says so, exit 2" || bad "unknown command: $(cat "$out")"

"$ferry" help publish >"$out" 2>&1
[ $? -eq 2 ] && grep -q "help: no command 'publish'" "$out" &&
    ok "help for an unknown command says so, exit 2" || bad "help unknown: $(cat "$out")"

"$ferry" declare topic >"$out" 2>&1
[ $? -eq 2 ] && grep -q "usage: ferry declare topic|queue NAME" "$out" &&
    ok "wrong arguments print the command's usage" || bad "wrong arguments: $(cat "$out")"

"$ferry" --version >"$out" 2>&1
[ $? -eq 0 ] && grep -q "^ferry [0-9]" "$out" && ok "ferry --version" || bad "--version: $(cat "$out")"

for tool in "${FERRYD:-}" "${FERRY_RELAY:-}"; do
    [ -n "$tool" ] || continue
    name=$(basename "$tool")
    "$tool" --version >"$out" 2>&1
    [ $? -eq 0 ] && grep -q "^$name [0-9]" "$out" && ok "$name --version" ||
        bad "$name --version: $(cat "$out")"
done

# ferryd --config FILE --check-config: the effective settings with their
# sources (defaults < file < environment < flags); a bad line named.
if [ -n "${FERRYD:-}" ]; then
    ini=$(mktemp)
    printf '[ferryd]\nmap-size = 1G\nbatch-max = 10\n' >"$ini"
    FERRY_BATCH_MAX=7 "$FERRYD" --config "$ini" --check-config --log-level warn >"$out" 2>&1
    rc=$?
    if [ $rc -eq 0 ] && grep -q "^map-size *= 1073741824 *; file$" "$out" &&
        grep -q "^batch-max *= 7 *; FERRY_BATCH_MAX$" "$out" &&
        grep -q "^log-level *= warn *; flag$" "$out" && grep -q "^data *= ./data *; default$" "$out"; then
        ok "ferryd --check-config: every setting and where it came from"
    else
        bad "ferryd --check-config (rc $rc): $(cat "$out")"
    fi
    printf 'map-size = 1G\nmap-sise = 2G\n' >"$ini"
    "$FERRYD" --config "$ini" --check-config >"$out" 2>&1
    [ $? -eq 2 ] && grep -q ":2: unknown key 'map-sise'" "$out" &&
        ok "ferryd --config: an unknown key is an error with its line" ||
        bad "unknown key in --config: $(cat "$out")"
    rm -f "$ini"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
