#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""payment_service.py - a Python service on Ferry (docs/python.md).

It consumes OrderPlaced events from the topic `order` (subscription
`payments`), and for each, in ONE SQLite transaction: records the message in
its inbox (a message that comes again is not charged twice), writes its own
state (a row of `payments`) and its own event (PaymentTaken, a row of
`outbox`). ferry-relay publishes the outbox to the topic `payment`:

    ferry-relay --source sqlite:payments.db &
    python3 examples/python/payment_service.py --db payments.db

Run with --count N to stop after N orders (tests do).
"""
import argparse
import json
import sqlite3
import sys

import ferry
import ferry.sql


def open_db(path):
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE IF NOT EXISTS payments (order_id TEXT PRIMARY KEY, "
               "amount INTEGER NOT NULL, order_seq INTEGER NOT NULL)")
    db.commit()
    ferry.sql.setup(db)  # outbox, inbox (share/ferry/sql or $FERRY_SQL_DIR)
    return db


def take_payment(db, msg):
    """The work of one order: state and event, in the inbox's transaction."""
    order = json.loads(msg.data)
    db.execute("INSERT INTO payments (order_id, amount, order_seq) VALUES (?, ?, ?)",
               (msg.key, order["total"], msg.seq))
    ferry.sql.outbox_put(db, "payment", msg.key, "PaymentTaken",
                         json.dumps({"order": msg.key, "amount": order["total"]}),
                         headers={"causation": msg.id or f"#{msg.seq}"})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default="payments.db")
    ap.add_argument("--server", default=None, help="ferryd (default $FERRY_SERVER)")
    ap.add_argument("--count", type=int, default=0, help="stop after this many orders")
    a = ap.parse_args()
    db = open_db(a.db)
    handled = 0
    with ferry.Client(a.server) as c:
        c.declare("order")
        c.subscribe_durable("order", "payments")
        while not a.count or handled < a.count:
            for msg in c.fetch("order", "payments", max=100, wait=1.0):
                if msg.headers.get("event_type", "OrderPlaced") != "OrderPlaced":
                    msg.ack()
                    continue
                try:
                    new = ferry.sql.inbox_handle(db, "payments", msg, take_payment)
                except (ValueError, KeyError, sqlite3.Error) as e:
                    # It cannot be handled: to the dead letters, with why.
                    print(f"payment_service: order seq {msg.seq}: {e!r}", file=sys.stderr)
                    msg.term(repr(e))
                    continue
                msg.ack()
                handled += 1
                print(f"{'charged' if new else 'seen before'} {msg.key}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
