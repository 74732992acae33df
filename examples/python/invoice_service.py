#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""invoice_service.py - a Python service on Ferry (docs/python.md).

It consumes OrderPlaced events from the topic `order` (subscription
`invoices`), and for each, in ONE SQLite transaction: records the message in
its inbox (a message that comes again is not invoiced twice), writes its own
state (a row of `invoices`) and its own event (InvoiceIssued, a row of
`outbox`). ferry-relay publishes the outbox to the topic `invoice`:

    ferry-relay --source sqlite:invoices.db &
    python3 examples/python/invoice_service.py --db invoices.db

`make demo` runs it beside the order saga's services (the order service
writes an OrderPlaced event with each order). Run with --count N to stop
after N orders (tests and the demo do).
"""
import argparse
import json
import sqlite3
import sys

import ferry
import ferry.sql


def open_db(path):
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE IF NOT EXISTS invoices (order_id TEXT PRIMARY KEY, "
               "amount INTEGER NOT NULL, order_seq INTEGER NOT NULL)")
    db.commit()
    ferry.sql.setup(db)  # outbox, inbox (share/ferry/sql or $FERRY_SQL_DIR)
    return db


def issue_invoice(db, msg):
    """The work of one order: state and event, in the inbox's transaction."""
    order = json.loads(msg.data)
    db.execute("INSERT INTO invoices (order_id, amount, order_seq) VALUES (?, ?, ?)",
               (msg.key, order["total"], msg.seq))
    ferry.sql.outbox_put(db, "invoice", msg.key, "InvoiceIssued",
                         json.dumps({"order": msg.key, "amount": order["total"]}),
                         headers={"causation": msg.id or f"#{msg.seq}"})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default="invoices.db")
    ap.add_argument("--server", default=None, help="ferryd (default $FERRY_SERVER)")
    ap.add_argument("--count", type=int, default=0, help="stop after this many orders")
    a = ap.parse_args()
    db = open_db(a.db)
    handled = 0
    with ferry.Client(a.server) as c:
        c.declare("order")
        c.subscribe_durable("order", "invoices")
        while not a.count or handled < a.count:
            for msg in c.fetch("order", "invoices", max=100, wait=1.0):
                if msg.headers.get("event_type", "OrderPlaced") != "OrderPlaced":
                    msg.ack()
                    continue
                try:
                    new = ferry.sql.inbox_handle(db, "invoices", msg, issue_invoice)
                except (ValueError, KeyError, sqlite3.Error) as e:
                    # It cannot be handled: to the dead letters, with why.
                    print(f"invoice_service: order seq {msg.seq}: {e!r}", file=sys.stderr)
                    msg.term(repr(e))
                    continue
                msg.ack()
                handled += 1
                print(f"{'invoiced' if new else 'seen before'} {msg.key}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
