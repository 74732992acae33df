#!/bin/sh
# SPDX-License-Identifier: MIT
# test_install.sh - `make install` into a DESTDIR, then build examples/publish.c
# and the README's C example against the installed header and library with
# pkg-config only, and run the example against a real ferryd. Needs FERRY_BUILD (build dir) and FERRYD; FERRY_SAN
# carries sanitizer flags when the suite runs under check-asan.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ferry-install-XXXXXX")
pid=""
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "not ok - $1"; exit 1; }

make -s -C "$top" install BUILD="$FERRY_BUILD" SAN="${FERRY_SAN:-}" PREFIX=/usr DESTDIR="$tmp/root" \
    >"$tmp/make.log" 2>&1 || { cat "$tmp/make.log"; fail "make install"; }
for f in usr/bin/ferryd usr/bin/ferry usr/bin/ferry-relay usr/include/ferry.h \
         usr/include/ferry_outbox.h usr/include/ferry_saga.h usr/include/ferry_status.h usr/lib/libferry.a \
         usr/lib/libferry.so usr/lib/libferry.so.0 usr/lib/pkgconfig/ferry.pc \
         usr/include/ferry_sql.h usr/lib/libferry-sql.a usr/lib/libferry-sql.so \
         usr/lib/libferry-sql.so.0 usr/lib/pkgconfig/ferry-sql.pc; do
    [ -e "$tmp/root/$f" ] || fail "installed $f"
done
echo "ok - make install put binaries, header, libraries and ferry.pc under DESTDIR"

soname=$(objdump -p "$tmp/root/usr/lib/libferry.so" | awk '/SONAME/ {print $2}')
[ "$soname" = "libferry.so.0" ] || fail "SONAME is libferry.so.0 (got $soname)"
echo "ok - SONAME libferry.so.0"

# The .pc file says prefix=/usr; point a copy at the DESTDIR tree.
mkdir -p "$tmp/pc"
sed "s|^prefix=.*|prefix=$tmp/root/usr|" "$tmp/root/usr/lib/pkgconfig/ferry.pc" >"$tmp/pc/ferry.pc"
flags=$(PKG_CONFIG_PATH="$tmp/pc" pkg-config --cflags --libs ferry) \
    || fail "pkg-config --cflags --libs ferry"
# Only the installed header: compile outside the source tree's include paths.
cp "$top/examples/publish.c" "$tmp/app.c"
${CC:-cc} -std=c11 -Wall -Wextra -Werror ${FERRY_SAN:-} "$tmp/app.c" -o "$tmp/app" $flags \
    || fail "example builds with pkg-config flags ($flags)"
echo "ok - example compiles and links with: $flags"

# The README's C API tour must stay a program that builds.
awk '/^```c/ {f = 1; next} /^```/ {f = 0} f' "$top/README.md" >"$tmp/readme.c"
[ -s "$tmp/readme.c" ] || fail "README.md has a C example"
${CC:-cc} -std=c11 -Wall -Wextra -Werror -Wno-unused-parameter ${FERRY_SAN:-} "$tmp/readme.c" \
    -o "$tmp/readme" $flags || fail "README.md's C example builds"
echo "ok - README.md's C example compiles and links"

# Every C program in docs/client.md builds as well.
awk -v dir="$tmp" '/^```c/ {f = 1; n++; next} /^```/ {f = 0} f {print > (dir "/client" n ".c")}' \
    "$top/docs/client.md"
count=0
for src in "$tmp"/client*.c; do
    [ -e "$src" ] || fail "docs/client.md has C examples"
    ${CC:-cc} -std=c11 -Wall -Wextra -Werror ${FERRY_SAN:-} "$src" -o "${src%.c}" $flags \
        || fail "docs/client.md example $(basename "$src") builds"
    count=$((count + 1))
done
echo "ok - docs/client.md's $count C examples compile and link"

# The LMDB outbox and saga programs build from the installed headers too
# (ferry.pc requires lmdb: ferry_outbox.h and ferry_saga.h include lmdb.h).
for ex in outbox_service order_saga choreography event_sourcing; do
    cp "$top/examples/$ex.c" "$tmp/$ex.c"
    ${CC:-cc} -std=c11 -Wall -Wextra -Werror ${FERRY_SAN:-} "$tmp/$ex.c" -o "$tmp/$ex" $flags \
        -lpthread || fail "examples/$ex.c builds with pkg-config flags"
done
echo "ok - examples/outbox_service.c, order_saga.c, choreography.c, event_sourcing.c compile and link"

mkdir -p "$tmp/data"
"$FERRYD" --data "$tmp/data" --bind 'tcp://127.0.0.1:*' 2>"$tmp/ferryd.log" &
pid=$!
ep=""
for _ in $(seq 1 200); do
    ep=$(sed -n 's/.*msg="ready" endpoint=\([^ ]*\).*/\1/p' "$tmp/ferryd.log")
    [ -n "$ep" ] && break
    sleep 0.05
done
[ -n "$ep" ] || fail "ferryd ready"
out=$(LD_LIBRARY_PATH="$tmp/root/usr/lib" "$tmp/app" "$ep") || fail "example runs"
echo "$out" | grep -q "stored as seq 1" || fail "example output: $out"
echo "$out" | grep -q "1000 async publishes confirmed" || fail "example output: $out"
echo "ok - installed example published against ferryd"

# libferry-sql: a program using ferry_sql.h builds with `pkg-config
# ferry-sql` alone and sets up a real SQLite database.
sed "s|^prefix=.*|prefix=$tmp/root/usr|" "$tmp/root/usr/lib/pkgconfig/ferry-sql.pc" >"$tmp/pc/ferry-sql.pc"
sqlflags=$(PKG_CONFIG_PATH="$tmp/pc" pkg-config --cflags --libs ferry-sql) \
    || fail "pkg-config --cflags --libs ferry-sql"
cat >"$tmp/sqlapp.c" <<'EOF_C'
#include <ferry_sql.h>
#include <sqlite3.h>
#include <stdio.h>

int
main(int argc, char **argv)
{
    sqlite3 *db;
    char err[256] = "";
    if (argc < 2 || sqlite3_open(argv[1], &db) != SQLITE_OK)
        return 2;
    ferry_status_t st = ferry_sql_setup_sqlite(db, err, sizeof err);
    ferry_outbox_event_t ev = {.aggregate_type = "orders", .aggregate_id = "o-1",
                               .event_type = "OrderPlaced", .payload = "{}", .len = 2};
    if (st == FERRY_OK)
        st = ferry_outbox_sqlite_put(db, &ev, NULL);
    printf("%s %s\n", ferry_errname(st), err);
    sqlite3_close(db);
    return st == FERRY_OK ? 0 : 1;
}
EOF_C
${CC:-cc} -std=c11 -Wall -Wextra -Werror ${FERRY_SAN:-} "$tmp/sqlapp.c" -o "$tmp/sqlapp" $sqlflags \
    -lsqlite3 || fail "a ferry_sql.h program builds with: $sqlflags"
LD_LIBRARY_PATH="$tmp/root/usr/lib" "$tmp/sqlapp" "$tmp/app.db" >"$tmp/sqlapp.out" \
    || fail "the ferry_sql.h program runs: $(cat "$tmp/sqlapp.out")"
[ "$(sqlite3 "$tmp/app.db" 'SELECT count(*) FROM outbox')" = 1 ] || fail "its outbox row"
echo "ok - libferry-sql: a program builds with pkg-config ferry-sql, sets up SQLite, writes a row"
cp "$top/examples/order_saga_sql.c" "$tmp/order_saga_sql.c"
${CC:-cc} -std=c11 -Wall -Wextra -Werror ${FERRY_SAN:-} "$tmp/order_saga_sql.c" -o "$tmp/osq" \
    $sqlflags $(pkg-config --cflags --libs libpq sqlite3) -lpthread \
    || fail "examples/order_saga_sql.c builds with pkg-config ferry-sql"
echo "ok - examples/order_saga_sql.c compiles and links against the installed libferry-sql"

# Manuals: installed, rendered by man without a warning, every flag of each
# program's --help and every command of ferry's in its page.
for page in man1/ferry.1 man3/libferry.3 man8/ferryd.8 man8/ferry-relay.8; do
    f="$tmp/root/usr/share/man/$page"
    [ -f "$f" ] || fail "installed $page"
    warn=$(MANWIDTH=80 man --warnings -l "$f" 2>&1 >/dev/null)
    [ -z "$warn" ] || fail "man -l $page renders without warnings: $warn"
    MANWIDTH=80 man -l "$f" 2>/dev/null >"$tmp/page.txt"
    [ -s "$tmp/page.txt" ] || fail "man -l $page renders"
done
bin="$tmp/root/usr/bin"
for prog in ferryd:man8/ferryd.8 ferry-relay:man8/ferry-relay.8 ferry:man1/ferry.1; do
    p=${prog%%:*}
    page="$tmp/root/usr/share/man/${prog#*:}"
    MANWIDTH=200 man -l "$page" 2>/dev/null | sed 's/\x08.//g' >"$tmp/page.txt"
    LD_LIBRARY_PATH="$tmp/root/usr/lib" "$bin/$p" --help 2>&1 | grep -o -- '--[a-z][a-z-]*' | sort -u \
        >"$tmp/flags.txt"
    [ -s "$tmp/flags.txt" ] || fail "$p --help lists flags"
    while read -r flag; do
        grep -q -- "$flag" "$tmp/page.txt" || fail "$p's flag $flag is in its manual"
    done <"$tmp/flags.txt"
done
LD_LIBRARY_PATH="$tmp/root/usr/lib" "$bin/ferry" --help 2>&1 | awk '/^Commands/ {on=1; next} /^$/ {on=0} on && /^  [a-z]/ {print $1}' \
    >"$tmp/cmds.txt"
[ "$(wc -l <"$tmp/cmds.txt")" -ge 20 ] || fail "ferry --help lists its commands"
MANWIDTH=200 man -l "$tmp/root/usr/share/man/man1/ferry.1" 2>/dev/null | sed 's/\x08.//g' >"$tmp/page.txt"
while read -r cmd; do
    grep -q -- "^ *$cmd\b" "$tmp/page.txt" || fail "ferry's command $cmd is in ferry(1)"
done <"$tmp/cmds.txt"
echo "ok - the manuals render without warnings and name every flag and command of --help"

# Service files: installed with the binaries' paths, hardened, and the
# configuration file they name is one ferryd accepts.
unit="$tmp/root/usr/lib/systemd/system/ferryd.service"
relay="$tmp/root/usr/lib/systemd/system/ferry-relay@.service"
[ -f "$unit" ] && [ -f "$relay" ] || fail "installed the systemd units"
grep -q '^ExecStart=/usr/bin/ferryd --config /etc/ferry/ferryd.conf' "$unit" || fail "ferryd.service runs /usr/bin/ferryd"
grep -q '^ExecStart=/usr/bin/ferry-relay --config /etc/ferry/relay-%i.conf' "$relay" || fail "ferry-relay@.service runs /usr/bin/ferry-relay"
for opt in DynamicUser=yes StateDirectory=ferry ProtectSystem=strict NoNewPrivileges=yes; do
    grep -q "^$opt" "$unit" || fail "ferryd.service has $opt"
done
for opt in DynamicUser=yes ProtectSystem=strict NoNewPrivileges=yes Restart=on-failure; do
    grep -q "^$opt" "$relay" || fail "ferry-relay@.service has $opt"
done
LD_LIBRARY_PATH="$tmp/root/usr/lib" "$bin/ferryd" --config "$tmp/root/etc/ferry/ferryd.conf" \
    --data "$tmp/svc" --check-config >"$tmp/check.txt" 2>&1 || fail "ferryd accepts the installed ferryd.conf: $(cat "$tmp/check.txt")"
grep -q '^bind .*tcp://127.0.0.1:5555 .*; file' "$tmp/check.txt" || fail "ferryd.conf's bind is read"
echo "ok - systemd units for ferryd and ferry-relay@, hardened, and the default ferryd.conf"

# The outbox DDL and a sample relay configuration, which ferry-relay reads.
for f in usr/share/ferry/sql/sqlite.sql usr/share/ferry/sql/postgres.sql \
         usr/share/doc/ferry/examples/relay-orders.conf usr/share/doc/ferry/examples/LICENSE; do
    [ -f "$tmp/root/$f" ] || fail "installed $f"
done
sqlite3 "$tmp/ddl.db" <"$tmp/root/usr/share/ferry/sql/sqlite.sql" >/dev/null || fail "the installed SQLite DDL runs"
[ "$(sqlite3 "$tmp/ddl.db" "SELECT count(*) FROM sqlite_master WHERE name = 'outbox'")" = 1 ] \
    || fail "the installed SQLite DDL makes the outbox table"
sed "s|/var/lib/orders/app.db|$tmp/ddl.db|" "$tmp/root/usr/share/doc/ferry/examples/relay-orders.conf" \
    >"$tmp/relay.conf"
LD_LIBRARY_PATH="$tmp/root/usr/lib" "$bin/ferry-relay" --config "$tmp/relay.conf" --setup \
    >"$tmp/setup.txt" 2>&1 || fail "ferry-relay accepts the sample configuration: $(cat "$tmp/setup.txt")"
grep -q '^source orders (sqlite): ready' "$tmp/setup.txt" || fail "the sample's source is set up"
echo "ok - the outbox DDL and a sample relay configuration, installed and usable"
echo "11 passed, 0 failed"
