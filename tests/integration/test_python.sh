#!/bin/sh
# SPDX-License-Identifier: MIT
# test_python.sh - the Python client as a user gets it: `pip install` of
# clients/python into a fresh virtual environment (offline: Debian's
# setuptools and wheel through --system-site-packages), then its tests
# (clients/python/tests, Debian's pytest) with that installed package
# against real ferryd processes, through the build's libferry.so.0. Under
# the sanitizers (FERRY_SAN) the ASan and UBSan runtimes are preloaded into
# Python, which was not built with them (leak checks off: the interpreter
# keeps its memory to the end; the quarantine bounded, for the memory test);
# the tests keep them away from PostgreSQL's programs. Needs FERRYD,
# FERRY_RELAY and FERRY_BUILD; the outbox tests start PostgreSQL from Debian
# as tests/lib/pgserver.c does.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ferry-python-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cp -r "$top/clients/python" "$tmp/src" # pip builds in the tree it is given
/usr/bin/python3 -m venv --system-site-packages "$tmp/venv"
if ! "$tmp/venv/bin/pip" install -q --no-index --no-build-isolation "$tmp/src" \
    >"$tmp/pip.log" 2>&1; then
    cat "$tmp/pip.log"
    echo "not ok - pip install ./clients/python into a virtual environment"
    exit 1
fi
echo "ok - pip install ./clients/python into a virtual environment"

export FERRY_LIBRARY="$top/$FERRY_BUILD/libferry.so.0"
export FERRY_SQL_DIR="$top/outbox-relay/sql" # the DDL, as make install puts it
export PYTHONDONTWRITEBYTECODE=1
if [ -n "${FERRY_SAN:-}" ]; then
    LD_PRELOAD="$(${CC:-cc} -print-file-name=libasan.so) $(${CC:-cc} -print-file-name=libubsan.so)"
    export LD_PRELOAD
    export ASAN_OPTIONS="detect_leaks=0:quarantine_size_mb=32${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
fi
cd "$tmp" # not the source tree: the installed package is the one imported
"$tmp/venv/bin/python" -c 'import ferry, sys; sys.exit(0 if "/venv/" in ferry.__file__ else 1)'
exec "$tmp/venv/bin/python" -m pytest -q -p no:cacheprovider "$tmp/src/tests"
