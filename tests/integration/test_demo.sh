#!/bin/sh
# SPDX-License-Identifier: MIT
# test_demo.sh - runs `make demo`'s program (tests/demo/demo.c: ferryd,
# PostgreSQL, five relays, the four services of examples/order_saga_sql.c
# and the Python invoice service) with its 20 orders and checks what it
# prints against the plan: 14 done, 4 compensated after the card was
# declined, 2 compensated after inventory did not answer in time (three
# attempts each), none failed; what each service holds agrees; the three
# sagas shown have the histories of their paths; the Python service
# invoiced every order. Needs FERRYD, FERRY_CLI, FERRY_RELAY, FERRY_TOP and
# FERRY_BUILD.
set -eu
out=$(mktemp "${TMPDIR:-/tmp}/ferry-demo-XXXXXX")
trap 'rm -f "$out"' EXIT
fail() {
    echo "not ok - $1"
    cat "$out"
    exit 1
}
DEMO_ORDERS=20 "$FERRY_TOP/$FERRY_BUILD/tests/demo" >"$out" 2>&1 || fail "the demo exits 0"
has() { grep -q -- "$1" "$out" || fail "the demo prints '$1'"; }
count() { # how many lines from the line matching $1 to the next empty line match $2
    awk -v from="$1" -v what="$2" '
        index($0, from) == 1 { on = 1; next }
        on && $0 == "" { exit }
        on && $0 ~ what { n++ }
        END { print n + 0 }' "$out"
}
has "^orders 20$"
has "^  done         14  (reserved, charged, shipped)$"
has "^  compensated  4  (card declined: the reservation released)$"
has "^  compensated  2  (inventory did not answer in time: nothing reserved)$"
has "^  failed       0$"
has "^  inventory  18 reservations, 4 released; 22 events in its outbox$"
has "^  payment    14 payments; 14 events in its outbox$"
has "^  shipping   14 shipments (SQLite)$"
has "^  orders     20 sagas; "
# The Python service (examples/python/invoice_service.py) followed the
# orders' OrderPlaced events: one invoice each, its events published.
has "^  invoices   20 invoices (Python, SQLite); 20 InvoiceIssued on topic invoice$"
# order-4: inventory failed for now, the step tried again, then done.
[ "$(count 'ferry saga show order order-4' ' retry ')" -eq 1 ] || fail "order-4 retried once"
[ "$(count 'ferry saga show order order-4' ' done ')" -eq 1 ] || fail "order-4 done"
# order-6: every one of the three attempts timed out, then compensated.
[ "$(count 'ferry saga show order order-6' ' timeout ')" -eq 3 ] || fail "order-6 timed out 3x"
[ "$(count 'ferry saga show order order-6' 'compensated +compensated +reserve .*step reserve timed out')" -eq 1 ] ||
    fail "order-6 compensated after its timeouts"
# order-10: declined; its release failed twice and passed on the third try.
[ "$(count 'ferry saga show order order-10' ' fail .*card declined')" -eq 3 ] ||
    fail "order-10: the charge failed, then the release twice"
[ "$(count 'ferry saga show order order-10' '^[^ ]+ +compensated +compensated +reserve +3 ')" -eq 1 ] ||
    fail "order-10 compensated on the release's third attempt"
has "^stopping everything"
echo "ok - make demo: 20 orders end as planned, on every path"
