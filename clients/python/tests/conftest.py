# SPDX-License-Identifier: MIT
"""A real ferryd per test: $FERRYD on a fresh directory, bound to a free
port on 127.0.0.1, ready once its log says so (as tests/lib/fixture.c)."""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Ferryd:
    """ferryd on a fresh directory; `extra` flags (a cluster node's), bound
    to `endpoint` (default: a free port, kept across restarts)."""

    def __init__(self, extra=(), endpoint=None):
        self.dir = tempfile.mkdtemp(prefix="ferry-py-")
        self.endpoint = endpoint
        self.extra = list(extra)
        self.proc = None

    def start(self, timeout=10.0):
        log_path = os.path.join(self.dir, "ferryd.log")
        bind = self.endpoint or "tcp://127.0.0.1:*"
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [os.environ["FERRYD"], "--data", os.path.join(self.dir, "data"), "--bind", bind]
                + self.extra,
                stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + timeout
        pattern = re.compile(r'msg="ready" endpoint=(\S+)')
        while time.monotonic() < deadline:
            with open(log_path) as f:
                found = pattern.findall(f.read())
            if len(found) >= self._starts + 1:
                self.endpoint = found[-1]
                self._starts += 1
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"ferryd exited {self.proc.returncode}; log {log_path}")
            time.sleep(0.02)
        raise RuntimeError(f"ferryd not ready in {timeout} s; log {log_path}")

    _starts = 0

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait()

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def ferryd():
    if "FERRYD" not in os.environ:
        pytest.fail("FERRYD is not set (run through make test)")
    d = Ferryd().start()
    yield d
    d.cleanup()


@pytest.fixture
def cluster():
    """Three ferryd nodes of one cluster (docs/cluster.md), each on its own
    client and Raft ports."""
    if "FERRYD" not in os.environ:
        pytest.fail("FERRYD is not set (run through make test)")
    raft = [free_port() for _ in range(3)]
    peers = ",".join(f"{i + 1}=127.0.0.1:{raft[i]}" for i in range(3))
    nodes = [Ferryd(["--cluster-id", str(i + 1), "--peers", peers,
                     f"--cluster-bind=127.0.0.1:{raft[i]}"],
                    endpoint=f"tcp://127.0.0.1:{free_port()}") for i in range(3)]
    try:
        for n in nodes:
            n.start()
        yield nodes
    finally:
        for n in nodes:
            n.cleanup()


@pytest.fixture
def client(ferryd):
    import ferry
    with ferry.Client(ferryd.endpoint, timeout=5.0) as c:
        yield c


def _clean_env():
    """The environment without the sanitizer runtimes test_python.sh may
    preload for our libferry: PostgreSQL's programs hang under them."""
    return {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS")}


class Postgres:
    """Debian's PostgreSQL on a fresh directory and a free port, run as the
    unprivileged postgres user when we are root (initdb refuses root), as
    tests/lib/pgserver.c does."""

    def __init__(self):
        import glob
        import pwd
        import socket
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bins:
            raise RuntimeError("PostgreSQL is not installed (scripts/install-deps test)")
        self.bin = bins[-1]
        self.dir = tempfile.mkdtemp(prefix="ferry-py-pg-")
        self.as_user = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._run([f"{self.bin}/initdb", "-D", f"{self.dir}/data", "-A", "trust", "-U", "ferry",
                   "-E", "UTF8", "--no-sync"])
        self._run([f"{self.bin}/pg_ctl", "-D", f"{self.dir}/data", "-l", f"{self.dir}/pg.log",
                   "-w", "-t", "60", "-o",
                   f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                   "-c wal_level=logical -c max_connections=50", "start"])
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1",
                        f"host=127.0.0.1 port={self.port} user=ferry dbname=postgres",
                        "-c", "CREATE DATABASE app"], check=True, stdout=subprocess.DEVNULL,
                       env=_clean_env(), timeout=60)
        self.conninfo = f"host=127.0.0.1 port={self.port} user=ferry dbname=app"

    def _run(self, argv):
        subprocess.run(self.as_user + argv, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, env=_clean_env(), timeout=120)

    def stop(self):
        subprocess.run(self.as_user + [f"{self.bin}/pg_ctl", "-D", f"{self.dir}/data", "-m",
                                       "immediate", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_clean_env(),
                       timeout=120)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def postgres():
    pg = Postgres()
    yield pg
    pg.stop()
