# SPDX-License-Identifier: MIT
"""A cluster from Python: the status calls, membership errors, and a
leader SIGKILLed under a publisher - libferry follows the new leader and
resends with ids, so every confirmed publish is stored once, in order."""
import time

import pytest

import ferry


def _status(c, want_up, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        st = c.cluster()
        if st.leader_id and sum(n.up for n in st.nodes) >= want_up:
            return st
        if time.monotonic() > deadline:
            raise AssertionError(f"no leader with {want_up} nodes up: {st!r}")
        time.sleep(0.05)


def test_single_ferryd_is_no_cluster(client):
    st = client.cluster()
    assert (st.leader_id, st.nodes) == (0, [])
    with pytest.raises(ferry.InvalidError):
        client.cluster_add(2, "127.0.0.1:1")


def test_leader_killed_under_a_publisher(cluster):
    servers = [n.endpoint for n in cluster]
    with ferry.Client(servers, timeout=15.0) as c:
        st = _status(c, 3)
        assert sorted(n.id for n in st.nodes) == [1, 2, 3]
        assert all(n.voter for n in st.nodes)
        assert st.commit_index >= 1 and st.term >= 1
        with pytest.raises(ferry.InvalidError):  # the id is in use
            c.cluster_add(2, "127.0.0.1:1")
        c.declare("orders", dedupe_window=3600)
        first = c.publish_batch("orders", [{"data": f"o{i}", "id": f"id-{i}", "key": "k"}
                                           for i in range(100)])
        assert [cf.seq for cf in first] == list(range(1, 101))
        leader = st.leader_id
        futures = [c.publish_async("orders", f"o{i}", id=f"id-{i}", key="k")
                   for i in range(100, 300)]
        assert c.in_flight == 200  # none answered yet, as far as the client knows
        cluster[leader - 1].kill()  # SIGKILL, with publishes in flight
        futures += [c.publish_async("orders", f"o{i}", id=f"id-{i}", key="k")
                    for i in range(300, 400)]
        confirms = [f.result(30) for f in futures]
        assert [cf.seq for cf in confirms] == list(range(101, 401))
        after = _status(c, 2)
        assert after.leader_id != leader and after.term > st.term
        assert [n.up for n in after.nodes if n.id == leader] == [False]
        got = c.get("orders", 1, 1000)
        assert [m.text for m in got] == [f"o{i}" for i in range(400)]
        assert [m.key_version for m in got] == list(range(1, 401))
