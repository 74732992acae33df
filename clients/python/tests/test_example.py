# SPDX-License-Identifier: MIT
"""examples/python/invoice_service.py as a user runs it: OrderPlaced events
in, its state and one InvoiceIssued per order written in one transaction,
published by the real ferry-relay to the real broker."""
import json
import os
import subprocess
import sys
import time

import ferry

# $FERRY_TOP: the source tree (make test sets it; the tests may run from a copy).
TOP = os.environ.get("FERRY_TOP") or os.path.join(os.path.dirname(__file__), "..", "..", "..")
EXAMPLE = os.path.join(TOP, "examples", "python", "invoice_service.py")


def test_invoice_service(ferryd, tmp_path):
    db = str(tmp_path / "invoices.db")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    n = 25
    with ferry.Client(ferryd.endpoint) as c:
        c.declare("order")
        c.subscribe_durable("order", "invoices")
        for i in range(n):
            c.publish("order", json.dumps({"total": 10 + i}), key=f"o-{i}", id=f"placed-{i}",
                      headers={"event_type": "OrderPlaced"})
        svc = subprocess.run([sys.executable, EXAMPLE, "--db", db, "--server", ferryd.endpoint,
                              "--count", str(n)], env=env, capture_output=True, text=True,
                             timeout=60)
        assert svc.returncode == 0, svc.stderr
        assert svc.stdout.count("invoiced ") == n
        relay = subprocess.Popen([os.environ["FERRY_RELAY"], "--source", f"sqlite:{db}",
                                  "--server", ferryd.endpoint], stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    if c.info("invoice").messages >= n:
                        break
                except ferry.NotFoundError:
                    pass
                time.sleep(0.05)
            got = c.get("invoice", 1, 1000)
        finally:
            relay.terminate()
            assert relay.wait(10) == 0
    assert sorted(m.key for m in got) == sorted(f"o-{i}" for i in range(n))
    assert all(m.headers["event_type"] == "InvoiceIssued" for m in got)
    amounts = {m.key: json.loads(m.data)["amount"] for m in got}
    assert amounts == {f"o-{i}": 10 + i for i in range(n)}
    assert {m.headers["causation"] for m in got} == {f"placed-{i}" for i in range(n)}
