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


class Ferryd:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ferry-py-")
        self.endpoint = None
        self.proc = None

    def start(self, timeout=10.0):
        log_path = os.path.join(self.dir, "ferryd.log")
        bind = self.endpoint or "tcp://127.0.0.1:*"
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [os.environ["FERRYD"], "--data", os.path.join(self.dir, "data"), "--bind", bind],
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
def client(ferryd):
    import ferry
    with ferry.Client(ferryd.endpoint, timeout=5.0) as c:
        yield c
