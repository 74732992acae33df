# SPDX-License-Identifier: MIT
# Ferry - one Makefile for the broker, the client library, the relay, the CLI,
# the tests and the benchmarks. `make help` lists the targets.
#
# `make` / `make all` builds the programs and the library and installs
# nothing. `make run`, `make test`, `make bench` and `make deps` install the
# Debian packages they need first (scripts/install-deps GROUP), each only
# what it needs.

BUILD   ?= build
PREFIX  ?= /usr/local
DESTDIR ?=
MANDIR  ?= $(PREFIX)/share/man
SYSTEMDDIR ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
CC      ?= cc
DATA    ?= ./data
BIND    ?=

VERSION    := 0.1.0
SOVERSION  := 0

# pkg-config names, per part. Evaluated lazily (=): `make run` and `make test`
# install the packages before the recipes that need the flags run.
PKG_BASE   := libzmq lmdb msgpack libsodium
PKG_BROKER := $(PKG_BASE) libmicrohttpd libxxhash inih raft libuv
PKG_RELAY  := $(PKG_BASE) sqlite3 inih libpq jansson libmicrohttpd
PKG_SQL    := sqlite3 libpq jansson
PKG_TEST   := cmocka sqlite3 libpq
PKG_BENCH  := hiredis sqlite3 libpq
PKG_CLUSTER := raft libuv
PKG_CLI    := ncursesw jansson

pkg_cflags = $(shell pkg-config --cflags $(1) 2>/dev/null)
pkg_libs   = $(shell pkg-config --libs $(1) 2>/dev/null)

WARN     := -Wall -Wextra -Wshadow -Werror
SAN      ?=
BASE_CFLAGS = -std=c11 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -O2 -g -fPIC \
              -fvisibility=hidden $(WARN) $(SAN)
FY_LDFLAGS  = $(SAN) $(LDFLAGS)

# Each folder sees the headers of what it may use, nothing more: arrows run
# programs -> saga -> relay -> client -> proto (docs/hacking.md).
INC_proto    := -Iinclude -Iproto
INC_broker   := $(INC_proto) -Ibroker
INC_client   := $(INC_proto) -Iclient
INC_relay    := $(INC_proto) -Irelay
INC_saga     := $(INC_relay) -Isaga
INC_sql      := $(INC_relay) -Isql
INC_outbox-relay := $(INC_relay) -Ioutbox-relay
INC_cli      := -Iinclude -Iproto
INC_examples := -Iinclude
INC_lib      := -Iinclude -Iproto -Itests/lib
INC_bench    := $(INC_lib) -Ibench
INC_integration := $(INC_lib)

PROTO_SRC  := proto/envelope.c proto/request.c proto/reply.c proto/status.c proto/subject.c proto/curvekey.c \
              proto/text.c proto/endpoint.c proto/textout.c
CLIENT_SRC := client/connection.c client/options.c client/passkey.c client/window.c client/pull.c client/push.c \
              client/topics.c client/cluster.c client/conn.c client/keyread.c client/msgcopy.c client/rpc.c
# The relay core: the LMDB outbox, the relay loop, its LMDB source and the
# in-process relay. In libferry; ferry-relay links it from there.
RELAYCORE_SRC := relay/outbox.c relay/outbox_event.c relay/mdb_util.c relay/identity.c relay/claim.c relay/redact.c relay/relay.c relay/relay_status.c relay/src_lmdb.c relay/outbox_relay.c
SAGA_SRC   := saga/transition.c saga/results.c saga/saga.c saga/start_queue.c saga/saga_lmdb.c saga/saga_participant.c saga/participant_lmdb.c saga/inbox.c
# libferry-sql: the outbox and inbox in a service's SQLite or PostgreSQL
# (ferry_sql.h), with the tables' DDL built in from outbox-relay/sql/.
SQL_SRC    := sql/sql_common.c sql/sqlite_store.c sql/pg_store.c sql/saga_pg.c sql/saga_sqlite.c \
              sql/participant_pg.c sql/participant_sqlite.c
STORE_SRC  := broker/reccache.c broker/wal.c broker/store.c broker/store_wal.c broker/store_open.c broker/store_keyidx.c \
              broker/store_dedupe.c broker/store_retention.c broker/store_restart.c broker/subs.c broker/sub_records.c \
              broker/store_raft.c broker/raftlog.c broker/raft_tcp.c broker/cluster_id.c
BROKER_SRC := broker/log.c $(STORE_SRC) broker/consumers.c broker/peerq.c broker/histo.c broker/broker.c broker/broker_start.c broker/broker_auth.c broker/broker_reply.c broker/broker_admin.c broker/users.c broker/zap.c broker/userconns.c \
              broker/broker_deliver.c broker/broker_cluster.c broker/metrics_topics.c broker/topicstats.c broker/peernames.c broker/ratelog.c broker/fence.c broker/options.c broker/metrics.c
CLI_SRC    := cli/ferry.c cli/args.c cli/help.c cli/keys.c cli/saga_cmd.c cli/cluster_cmd.c cli/sub_cmd.c cli/top.c cli/print.c
RELAY_SRC  := outbox-relay/main.c outbox-relay/config.c outbox-relay/relay_metrics.c outbox-relay/src_sqlite.c \
              outbox-relay/src_pg.c outbox-relay/src_pglog.c outbox-relay/pgutil.c
FIXTURE_SRC := tests/lib/fixture.c
HARNESS_SRC := tests/lib/harness.c tests/lib/pgserver.c tests/lib/proxy.c tests/lib/clusterfx.c tests/lib/raftlinks.c
# Only the integration tests: the relay fixture, the power-cut controls and
# the saga example's checker.
INTEG_LIB_SRC := tests/lib/relayfx.c tests/lib/cutctl.c tests/lib/shopcheck.c tests/lib/sqlshop.c

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIB_OBJ    = $(call obj,$(PROTO_SRC) $(CLIENT_SRC) $(RELAYCORE_SRC) $(SAGA_SRC))
BROKER_OBJ = $(call obj,$(PROTO_SRC) $(BROKER_SRC))
SQL_OBJ    = $(call obj,$(SQL_SRC) relay/outbox_event.c) $(BUILD)/obj/gen/sql_ddl.o

UNIT_TESTS  := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))
INTEG_TESTS := $(patsubst tests/integration/%.c,%,$(wildcard tests/integration/test_*.c))
# Fuzz targets (tests/fuzz/fuzz.h): replayed on their corpus by make test,
# fuzzed with libFuzzer by make fuzz.
FUZZ_TARGETS := request reply subject relay_config pgoutput
FUZZ_REPLAY   = $(addprefix $(BUILD)/tests/fuzz_,$(FUZZ_TARGETS))
TEST_BINS    = $(addprefix $(BUILD)/tests/,$(UNIT_TESTS) $(INTEG_TESTS)) $(FUZZ_REPLAY)
TEST_SCRIPTS := $(wildcard tests/integration/test_*.sh)
EXAMPLES     = $(addprefix $(BUILD)/examples/,publish outbox_service order_saga choreography \
                 event_sourcing order_saga_sql)
BENCHES      = $(addprefix $(BUILD)/bench/,bench_publish bench_queue bench_timers bench_events \
                 bench_compare bench_relay bench_saga bench_failover)

LIBA  = $(BUILD)/libferry.a
LIBSO = $(BUILD)/libferry.so.$(VERSION)
SQLA  = $(BUILD)/libferry-sql.a
SQLSO = $(BUILD)/libferry-sql.so.$(VERSION)
PROGRAMS = $(BUILD)/ferryd $(BUILD)/ferry $(BUILD)/ferry-relay $(LIBA) $(LIBSO) $(SQLA) $(SQLSO)

# Installed as they are: everything in include/.
PUBLIC_HEADERS := $(wildcard include/*.h)

# Keep object files of examples and benchmarks (make would delete them as intermediates).
.SECONDARY:

.PHONY: all deps deps-run deps-build deps-test deps-bench check-pkgs run test test-run \
        examples benches check-asan check-valgrind valgrind bench bench-run bench-profile \
        install uninstall clean help format fuzz fuzz-run fuzz-seeds deps-fuzz soak demo

all: check-pkgs $(PROGRAMS)

examples: $(EXAMPLES)
benches: $(BENCHES)

help:
	@echo "make                 build ferryd, ferry, ferry-relay and libferry (installs nothing)"
	@echo "make run             install what ferryd needs, build and start it (data in $(DATA))"
	@echo "make test            install what the tests need, build and run every test"
	@echo "make deps            install every Debian package any target needs"
	@echo "make examples        build the examples; make benches: the benchmarks"
	@echo "make check-asan      every test under AddressSanitizer + UBSan"
	@echo "make check-valgrind  the test programs under valgrind (leaks are errors)"
	@echo "make fuzz            each fuzz target under libFuzzer for FUZZ_SECONDS (default 60)"
	@echo "make soak            mixed load with random kills for SOAK_MINUTES (default 5), then a verdict"
	@echo "make demo            the order saga with each service on PostgreSQL or SQLite, all real: DEMO_ORDERS (20)"
	@echo "make bench           Ferry vs Redis Streams (W1-W4, backlog; W1 and W4 at 1 KiB and 16 KiB) into bench/results/DATE.tsv,"
	@echo "                     then publish, queue, pending-set and event benchmarks (bench/README.md)"
	@echo "make bench-profile   W1 with ferryd under perf; top functions in bench/results/DATE-profile/"
	@echo "make install         PREFIX=$(PREFIX) DESTDIR=..."

deps:
	@scripts/install-deps all
deps-run:
	@scripts/install-deps run
deps-build:
	@scripts/install-deps build
deps-test:
	@scripts/install-deps test
deps-bench:
	@scripts/install-deps bench
deps-fuzz:
	@scripts/install-deps fuzz

# A plain `make` installs nothing: it names what is missing and how to get it.
check-pkgs:
	@scripts/install-deps --check build || { \
	    echo "ferry: missing Debian packages for the build (listed above);" >&2; \
	    echo "ferry: run 'make deps' (as root) or install them, then make again." >&2; exit 1; }

# Objects take the include paths of their folder (INC_<folder>).
folder_of = $(lastword $(subst /, ,$(patsubst $(BUILD)/obj/%,%,$(dir $(1)))))
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(INC_$(call folder_of,$@)) $(EXTRA_CFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

# Per-folder package flags.
$(BUILD)/obj/proto/%.o $(BUILD)/obj/client/%.o $(BUILD)/obj/relay/%.o $(BUILD)/obj/saga/%.o \
$(BUILD)/obj/cli/%.o $(BUILD)/obj/examples/%.o: EXTRA_CFLAGS = $(call pkg_cflags,$(PKG_BASE))
$(BUILD)/obj/broker/%.o: EXTRA_CFLAGS = $(call pkg_cflags,$(PKG_BROKER))
$(BUILD)/obj/sql/%.o: EXTRA_CFLAGS = $(call pkg_cflags,$(PKG_BASE) $(PKG_SQL))
$(BUILD)/obj/outbox-relay/%.o: EXTRA_CFLAGS = $(call pkg_cflags,$(PKG_RELAY))
$(BUILD)/obj/cli/%.o: EXTRA_CFLAGS = $(call pkg_cflags,$(PKG_CLI))
$(BUILD)/obj/tests/%.o $(BUILD)/obj/bench/%.o: EXTRA_CFLAGS = \
    $(call pkg_cflags,$(PKG_BASE) $(PKG_TEST))
$(BUILD)/obj/tests/unit/%.o $(BUILD)/obj/tests/fuzz/%.o: EXTRA_CFLAGS = \
    $(call pkg_cflags,$(PKG_RELAY) $(PKG_TEST))

-include $(shell find $(BUILD)/obj $(BUILD)/obj-nosync -name '*.d' 2>/dev/null)

$(LIBA): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(LIBSO): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libferry.so.$(SOVERSION) -o $@ $^ $(FY_LDFLAGS) \
	    $(call pkg_libs,$(PKG_BASE)) -lpthread
	ln -sf libferry.so.$(VERSION) $(BUILD)/libferry.so.$(SOVERSION)
	ln -sf libferry.so.$(VERSION) $(BUILD)/libferry.so

# The DDL as C strings: one text for the relay's documentation and the library.
sql_to_c = { printf 'const char %s[] =\n' $(1); \
             sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' -e 's/$$/\\n"/' $(2); echo ';'; }
$(BUILD)/gen/sql_ddl.c: outbox-relay/sql/sqlite.sql outbox-relay/sql/postgres.sql
	@mkdir -p $(dir $@)
	{ echo '/* Generated by the Makefile from outbox-relay/sql/; do not edit. */'; \
	  $(call sql_to_c,fy_sql_ddl_sqlite,outbox-relay/sql/sqlite.sql); \
	  $(call sql_to_c,fy_sql_ddl_pg,outbox-relay/sql/postgres.sql); } > $@.tmp && mv $@.tmp $@
$(BUILD)/obj/gen/sql_ddl.o: $(BUILD)/gen/sql_ddl.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -c $< -o $@

$(SQLA): $(SQL_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(SQLSO): $(SQL_OBJ) $(LIBSO)
	$(CC) -shared -Wl,-soname,libferry-sql.so.$(SOVERSION) -o $@ $(SQL_OBJ) $(FY_LDFLAGS) \
	    -L$(BUILD) -lferry $(call pkg_libs,$(PKG_SQL))
	ln -sf libferry-sql.so.$(VERSION) $(BUILD)/libferry-sql.so.$(SOVERSION)
	ln -sf libferry-sql.so.$(VERSION) $(BUILD)/libferry-sql.so

$(BUILD)/ferryd: $(BROKER_OBJ) $(call obj,broker/main.c)
	$(CC) -o $@ $^ $(FY_LDFLAGS) $(call pkg_libs,$(PKG_BROKER)) -lpthread

# Test tools: the power-cut preload library (tests/lib/powercut.h), never
# sanitized (it is loaded into other programs), and ferryd-nosync, a ferryd
# whose store never syncs, which the power-cut test must catch.
POWERCUT_SO   = $(BUILD)/tests/libpowercut.so
FERRYD_NOSYNC = $(BUILD)/tests/ferryd-nosync
$(POWERCUT_SO): tests/lib/powercut.c tests/lib/powercut.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 -g -fPIC -shared -Wall -Wextra -Werror -o $@ $< -ldl -lpthread
# Kept (not an intermediate file that make deletes), so that its .d file
# rebuilds it when a header changes.
.SECONDARY: $(BUILD)/obj-nosync/broker/store_open.o
$(BUILD)/obj-nosync/broker/store_open.o: broker/store_open.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(INC_broker) $(call pkg_cflags,$(PKG_BROKER)) $(CFLAGS) -DFY_DEBUG_NOSYNC \
	    -MMD -MP -c $< -o $@
$(FERRYD_NOSYNC): $(filter-out %/store_open.o,$(BROKER_OBJ)) $(BUILD)/obj-nosync/broker/store_open.o \
    $(call obj,broker/main.c)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(FY_LDFLAGS) $(call pkg_libs,$(PKG_BROKER)) -lpthread

$(BUILD)/ferry: $(call obj,$(CLI_SRC)) $(LIBA)
	$(CC) -o $@ $^ $(FY_LDFLAGS) $(call pkg_libs,$(PKG_BASE) $(PKG_CLI)) -lpthread

$(BUILD)/ferry-relay: $(call obj,$(RELAY_SRC)) $(LIBA)
	$(CC) -o $@ $^ $(FY_LDFLAGS) $(call pkg_libs,$(PKG_RELAY)) -lpthread

$(BUILD)/examples/%: $(call obj,examples/%.c) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(FY_LDFLAGS) $(call pkg_libs,$(PKG_BASE)) -lpthread
# The order saga on PostgreSQL and SQLite: libferry-sql too.
$(BUILD)/obj/examples/order_saga_sql.o: EXTRA_CFLAGS = $(call pkg_cflags,$(PKG_BASE) $(PKG_SQL))
$(BUILD)/examples/order_saga_sql: $(call obj,examples/order_saga_sql.c) $(SQLA) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(FY_LDFLAGS) $(call pkg_libs,$(PKG_BASE) $(PKG_SQL)) -lpthread

# Unit tests link the module they test (with the include paths of its
# folder); integration tests use libferry and start the real ferryd.
UNIT_INC = $(INC_broker) $(INC_client) $(INC_relay) $(INC_saga) $(INC_outbox-relay) -Itests/lib
INC_unit = $(UNIT_INC)
$(BUILD)/tests/test_envelope: $(call obj,tests/unit/test_envelope.c $(PROTO_SRC))
$(BUILD)/tests/test_store $(BUILD)/tests/test_store_subs: $(BUILD)/tests/%: \
    $(call obj,tests/unit/%.c tests/unit/storefx.c $(PROTO_SRC) $(FIXTURE_SRC) $(STORE_SRC) broker/log.c)
$(BUILD)/tests/test_subject: $(call obj,tests/unit/test_subject.c proto/subject.c)
$(BUILD)/tests/test_consumers: $(call obj,tests/unit/test_consumers.c broker/consumers.c)
$(BUILD)/tests/test_options: $(call obj,tests/unit/test_options.c $(PROTO_SRC) broker/options.c broker/log.c)
$(BUILD)/tests/test_options: TEST_EXTRA_LIBS = $(call pkg_libs,inih)
$(BUILD)/tests/test_conn: $(call obj,tests/unit/test_conn.c client/conn.c proto/status.c)
$(BUILD)/tests/test_saga_transition: $(call obj,tests/unit/test_saga_transition.c saga/transition.c)
$(BUILD)/tests/test_relay_config: $(call obj,tests/unit/test_relay_config.c $(FIXTURE_SRC) \
    outbox-relay/config.c outbox-relay/src_sqlite.c outbox-relay/src_pg.c outbox-relay/src_pglog.c \
    outbox-relay/pgutil.c) $(LIBA)
$(BUILD)/tests/test_relay_loop: $(call obj,tests/unit/test_relay_loop.c $(FIXTURE_SRC)) $(LIBA)
$(BUILD)/tests/test_relay_config: TEST_EXTRA_LIBS = $(call pkg_libs,$(PKG_RELAY))
$(BUILD)/tests/test_wal: $(call obj,tests/unit/test_wal.c broker/wal.c broker/log.c $(PROTO_SRC) $(FIXTURE_SRC))
$(BUILD)/tests/test_store $(BUILD)/tests/test_store_subs $(BUILD)/tests/test_wal: TEST_EXTRA_LIBS = \
    $(call pkg_libs,libxxhash $(PKG_CLUSTER))
$(BUILD)/tests/test_raftlog: $(call obj,tests/unit/test_raftlog.c broker/raftlog.c broker/raft_tcp.c broker/log.c \
    $(PROTO_SRC) $(FIXTURE_SRC))
$(BUILD)/tests/test_raftlog: TEST_EXTRA_LIBS = $(call pkg_libs,$(PKG_CLUSTER))
# Fuzz targets with replay.c as main: one replay object per target.
INC_fuzz = $(UNIT_INC) -Itests/fuzz
FUZZ_RELAY_OBJ = $(call obj,outbox-relay/config.c outbox-relay/src_sqlite.c outbox-relay/src_pg.c \
    outbox-relay/src_pglog.c outbox-relay/pgutil.c)
$(BUILD)/obj/tests/fuzz/replay_%.o: tests/fuzz/replay.c tests/fuzz/fuzz.h
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(INC_fuzz) $(CFLAGS) -DFUZZ_TARGET=\"$*\" -c $< -o $@
$(BUILD)/tests/fuzz_request $(BUILD)/tests/fuzz_reply $(BUILD)/tests/fuzz_subject: \
$(BUILD)/tests/fuzz_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o $(BUILD)/obj/tests/fuzz/replay_%.o $(LIBA)
$(BUILD)/tests/fuzz_relay_config: $(BUILD)/obj/tests/fuzz/fuzz_relay_config.o \
    $(BUILD)/obj/tests/fuzz/replay_relay_config.o $(FUZZ_RELAY_OBJ) $(LIBA)
$(BUILD)/tests/fuzz_pgoutput: $(BUILD)/obj/tests/fuzz/fuzz_pgoutput.o \
    $(BUILD)/obj/tests/fuzz/replay_pgoutput.o $(call obj,outbox-relay/pgutil.c) $(LIBA)
$(BUILD)/tests/fuzz_relay_config $(BUILD)/tests/fuzz_pgoutput: TEST_EXTRA_LIBS = \
    $(call pkg_libs,$(PKG_RELAY))
$(BUILD)/tests/fuzz-seeds: $(call obj,tests/fuzz/seeds.c) $(LIBA)

$(addprefix $(BUILD)/tests/,$(INTEG_TESTS)): $(BUILD)/tests/%: $(call obj,tests/integration/%.c $(FIXTURE_SRC) $(HARNESS_SRC) $(INTEG_LIB_SRC)) $(LIBA)
# libferry-sql's tests: its archive, then libferry's again (it uses libferry).
SQL_TESTS = $(BUILD)/tests/test_sql_outbox_inbox $(BUILD)/tests/test_sql_sagas
$(SQL_TESTS): $(SQLA)
$(SQL_TESTS): TEST_EXTRA_LIBS = $(call pkg_libs,$(PKG_SQL)) $(LIBA)

$(BUILD)/tests/%:
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(FY_LDFLAGS) $(call pkg_libs,$(PKG_BASE) $(PKG_TEST)) $(TEST_EXTRA_LIBS) -lpthread

TEST_ENV = FERRYD=$(abspath $(BUILD)/ferryd) FERRY_CLI=$(abspath $(BUILD)/ferry) \
           FERRY_POWERCUT=$(abspath $(POWERCUT_SO)) FERRYD_NOSYNC=$(abspath $(FERRYD_NOSYNC)) \
           FERRY_RELAY=$(abspath $(BUILD)/ferry-relay) FERRY_TOP=$(CURDIR) \
           FERRY_BUILD=$(BUILD) FERRY_SAN="$(SAN)"

# `make test` installs what the tests need, then builds (examples and
# benchmarks too, so they keep building) and runs every test.
test: deps-test
	@$(MAKE) --no-print-directory test-run

# Then the integration tests once more with security on (FERRY_TEST_SECURE:
# every ferryd with CURVE and a users file, every client with a key of it;
# tests/lib/fixture.c). test_security sets up its own.
SECURE_TESTS = $(filter-out %/test_security,$(addprefix $(BUILD)/tests/,$(INTEG_TESTS)))
test-run: all examples benches $(TEST_BINS) $(BUILD)/tests/demo $(POWERCUT_SO) $(FERRYD_NOSYNC)
	$(TEST_ENV) tests/run-tests $(TEST_BINS) $(TEST_SCRIPTS)
	@echo "=== the integration tests again, with CURVE and users (FERRY_TEST_SECURE=1)"
	$(TEST_ENV) FERRY_TEST_SECURE=1 tests/run-tests $(SECURE_TESTS)

check-asan: deps-test
	@$(MAKE) --no-print-directory BUILD=build/asan \
	    SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" test-run

# make demo: the order saga on PostgreSQL and SQLite with every part real
# (tests/demo/demo.c, examples/order_saga_sql.c), DEMO_ORDERS orders.
DEMO_ORDERS ?= 20
INC_demo = $(INC_proto) -Itests/lib
$(BUILD)/tests/demo: $(call obj,tests/demo/demo.c $(FIXTURE_SRC) $(HARNESS_SRC) tests/lib/relayfx.c \
    tests/lib/sqlshop.c) $(LIBA)
demo: deps-test
	@$(MAKE) --no-print-directory all examples $(BUILD)/tests/demo
	$(TEST_ENV) DEMO_ORDERS=$(DEMO_ORDERS) $(BUILD)/tests/demo

# make soak: mixed load for SOAK_MINUTES with every process killed at random
# (tests/soak/soak.c); prints throughput, RSS and file size over time, then
# the history checker's verdict.
SOAK_MINUTES ?= 5
INC_soak = $(INC_proto) -Itests/lib
$(BUILD)/tests/soak: $(call obj,tests/soak/soak.c $(FIXTURE_SRC) $(HARNESS_SRC)) $(LIBA)
soak: deps-test
	@$(MAKE) --no-print-directory $(BUILD)/ferryd $(BUILD)/ferry-relay $(BUILD)/tests/soak
	$(TEST_ENV) SOAK_MINUTES=$(SOAK_MINUTES) $(BUILD)/tests/soak

# make fuzz: every target under libFuzzer (clang), ASan and UBSan, for
# FUZZ_SECONDS each, on its corpus (which grows); crashes land in build/fuzz/.
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_FLAGS    = -std=c11 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -g -O1 \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_INC      = $(INC_fuzz) $(call pkg_cflags,$(PKG_RELAY))
FUZZ_LIBS     = $(call pkg_libs,$(PKG_RELAY)) -lpthread
FUZZ_SRC_request      = $(PROTO_SRC)
FUZZ_SRC_reply        = $(PROTO_SRC)
FUZZ_SRC_subject      = $(PROTO_SRC)
FUZZ_SRC_relay_config = $(PROTO_SRC) $(CLIENT_SRC) $(RELAYCORE_SRC) outbox-relay/config.c \
    outbox-relay/src_sqlite.c outbox-relay/src_pg.c outbox-relay/src_pglog.c outbox-relay/pgutil.c
FUZZ_SRC_pgoutput     = $(PROTO_SRC) $(CLIENT_SRC) $(RELAYCORE_SRC) outbox-relay/pgutil.c
build/fuzz/%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) $(FUZZ_INC) -o $@ $< $(FUZZ_SRC_$*) $(FUZZ_LIBS)
fuzz: deps-fuzz
	@$(MAKE) --no-print-directory fuzz-run
fuzz-run: $(addprefix build/fuzz/,$(FUZZ_TARGETS))
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p tests/fuzz/corpus/$$t; \
	    echo "=== fuzz $$t: $(FUZZ_SECONDS) s"; \
	    build/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build/fuzz/crash-$$t- \
	        -print_final_stats=1 tests/fuzz/corpus/$$t > build/fuzz/$$t.log 2>&1 || \
	        { tail -40 build/fuzz/$$t.log; exit 1; }; \
	    grep -E '^(Done|stat::new_units_added)' build/fuzz/$$t.log; \
	    rm -rf build/fuzz/min-$$t && mkdir -p build/fuzz/min-$$t && \
	    build/fuzz/$$t -merge=1 build/fuzz/min-$$t tests/fuzz/corpus/$$t > /dev/null 2>&1 && \
	    cp tests/fuzz/corpus/$$t/seed-* build/fuzz/min-$$t/ && rm -rf tests/fuzz/corpus/$$t && \
	    mv build/fuzz/min-$$t tests/fuzz/corpus/$$t && \
	    echo "corpus $$t: $$(ls tests/fuzz/corpus/$$t | wc -l) inputs (merged)"; \
	done
fuzz-seeds: $(BUILD)/tests/fuzz-seeds
	$(BUILD)/tests/fuzz-seeds $(CURDIR)

check-valgrind valgrind: deps-test
	@scripts/install-deps valgrind
	@$(MAKE) --no-print-directory valgrind-run

valgrind-run: all $(TEST_BINS) $(POWERCUT_SO) $(FERRYD_NOSYNC)
	$(TEST_ENV) FERRY_TEST_QUICK=1 FERRY_TEST_TIMEOUT=3600 RUNNER="valgrind -q --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect --error-exitcode=99" \
	    tests/run-tests $(TEST_BINS)

# ferryd alone: only what it needs is installed and built. BIND empty:
# ferryd's own default endpoint (ferryd --help).
run: deps-run
	@$(MAKE) --no-print-directory $(BUILD)/ferryd
	@mkdir -p $(DATA)
	$(BUILD)/ferryd --data $(DATA) $(if $(BIND),--bind $(BIND))

# bench_compare also drives Redis Streams, through hiredis.
$(BUILD)/bench/bench_compare: $(call obj,bench/bench_compare.c bench/backends.c $(FIXTURE_SRC) $(HARNESS_SRC)) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(FY_LDFLAGS) $(call pkg_libs,$(PKG_BASE) $(PKG_BENCH)) -lpthread

# bench_saga also runs the orchestrator on SQLite and PostgreSQL (libferry-sql).
$(BUILD)/bench/bench_saga: $(call obj,bench/bench_saga.c $(FIXTURE_SRC) $(HARNESS_SRC) \
    tests/lib/relayfx.c) $(SQLA) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(FY_LDFLAGS) $(call pkg_libs,$(PKG_BASE) $(PKG_TEST) $(PKG_SQL)) -lpthread
$(BUILD)/bench/%: $(call obj,bench/%.c $(FIXTURE_SRC) $(HARNESS_SRC)) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(FY_LDFLAGS) $(call pkg_libs,$(PKG_BASE) $(PKG_BENCH)) -lpthread

BENCH_ENV = FERRYD=$(abspath $(BUILD)/ferryd) FERRY_RELAY=$(abspath $(BUILD)/ferry-relay)
RESULTS   = bench/results/$(shell date -u +%Y-%m-%d)

bench: deps-bench
	@$(MAKE) --no-print-directory bench-run

bench-run: all benches
	@mkdir -p bench/results
	$(BENCH_ENV) $(BUILD)/bench/bench_compare --out $(RESULTS).tsv
	$(BENCH_ENV) $(BUILD)/bench/bench_compare --workloads w1,w4 -s 1024 -n 100000 --out $(RESULTS).tsv
	$(BENCH_ENV) $(BUILD)/bench/bench_compare --workloads w1,w4 -s 16384 -n 20000 --out $(RESULTS).tsv
	$(BENCH_ENV) $(BUILD)/bench/bench_publish -n 200000 -w 1000
	$(BENCH_ENV) $(BUILD)/bench/bench_publish -n 200000 -w 1000 --ids
	$(BENCH_ENV) $(BUILD)/bench/bench_publish -n 200000 -w 4000
	$(BENCH_ENV) $(BUILD)/bench/bench_queue -n 200000 -w 1000 -f 1000
	$(BENCH_ENV) $(BUILD)/bench/bench_queue -n 200000 -w 1000 -f 1000 -a
	$(BENCH_ENV) $(BUILD)/bench/bench_queue -n 200000 -w 1000 -p 1000
	$(BENCH_ENV) $(BUILD)/bench/bench_queue -n 100000 -w 1000 -p 1000 -k 4
	$(BENCH_ENV) $(BUILD)/bench/bench_timers -n 1000000
	$(BENCH_ENV) $(BUILD)/bench/bench_events
	$(BENCH_ENV) $(BUILD)/bench/bench_relay
	$(BENCH_ENV) $(BUILD)/bench/bench_saga
	$(BENCH_ENV) $(BUILD)/bench/bench_compare --cluster 3 --only ferry --workloads w1,w2,w3 --out $(RESULTS).tsv
	$(BENCH_ENV) $(BUILD)/bench/bench_failover -k 10
	$(BENCH_ENV) FERRY_LIBRARY=$(abspath $(BUILD)/libferry.so.0) \
	    FERRY_BENCH=$(abspath $(BUILD)/bench/bench_publish) bench/bench_python.py

# W1 with ferryd under perf (Debian linux-perf), top functions saved.
bench-profile: deps-bench
	@command -v perf >/dev/null || { echo "bench-profile: perf is not installed (apt-get install linux-perf)"; exit 1; }
	@$(MAKE) --no-print-directory all benches
	@mkdir -p $(RESULTS)-profile
	$(BENCH_ENV) $(BUILD)/bench/bench_compare --only ferry --workloads w1 -n 400000 --profile $(abspath $(RESULTS)-profile)
	@cat $(RESULTS)-profile/profile.txt

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include \
	    $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(BUILD)/ferryd $(BUILD)/ferry $(BUILD)/ferry-relay $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(LIBA) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(LIBSO) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libferry.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libferry.so.$(SOVERSION)
	ln -sf libferry.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libferry.so
	install -m 644 $(SQLA) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(SQLSO) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libferry-sql.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libferry-sql.so.$(SOVERSION)
	ln -sf libferry-sql.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libferry-sql.so
	install -m 644 $(PUBLIC_HEADERS) $(DESTDIR)$(PREFIX)/include/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' client/ferry.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/ferry.pc
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' sql/ferry-sql.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/ferry-sql.pc
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man8 \
	    $(DESTDIR)$(SYSTEMDDIR) $(DESTDIR)$(SYSCONFDIR)/ferry
	install -m 644 man/ferry.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 man/libferry.3 $(DESTDIR)$(MANDIR)/man3/
	install -m 644 man/ferryd.8 man/ferry-relay.8 $(DESTDIR)$(MANDIR)/man8/
	for u in ferryd.service ferry-relay@.service; do \
	    sed -e 's|@PREFIX@|$(PREFIX)|g' packaging/systemd/$$u > $(DESTDIR)$(SYSTEMDDIR)/$$u; done
	[ -e $(DESTDIR)$(SYSCONFDIR)/ferry/ferryd.conf ] || \
	    install -m 644 packaging/ferryd.conf $(DESTDIR)$(SYSCONFDIR)/ferry/ferryd.conf
	install -d $(DESTDIR)$(PREFIX)/share/ferry/sql $(DESTDIR)$(PREFIX)/share/doc/ferry/examples
	install -m 644 outbox-relay/sql/sqlite.sql outbox-relay/sql/postgres.sql \
	    $(DESTDIR)$(PREFIX)/share/ferry/sql/
	install -m 644 packaging/relay-orders.conf LICENSE $(DESTDIR)$(PREFIX)/share/doc/ferry/examples/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/ferryd $(DESTDIR)$(PREFIX)/bin/ferry $(DESTDIR)$(PREFIX)/bin/ferry-relay \
	    $(DESTDIR)$(PREFIX)/lib/libferry.a $(DESTDIR)$(PREFIX)/lib/libferry.so* \
	    $(DESTDIR)$(PREFIX)/lib/libferry-sql.a $(DESTDIR)$(PREFIX)/lib/libferry-sql.so* \
	    $(addprefix $(DESTDIR)$(PREFIX)/,$(PUBLIC_HEADERS)) \
	    $(DESTDIR)$(PREFIX)/lib/pkgconfig/ferry.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/ferry-sql.pc \
	    $(DESTDIR)$(MANDIR)/man1/ferry.1 $(DESTDIR)$(MANDIR)/man3/libferry.3 \
	    $(DESTDIR)$(MANDIR)/man8/ferryd.8 $(DESTDIR)$(MANDIR)/man8/ferry-relay.8 \
	    $(DESTDIR)$(SYSTEMDDIR)/ferryd.service $(DESTDIR)$(SYSTEMDDIR)/ferry-relay@.service
	rm -rf $(DESTDIR)$(PREFIX)/share/ferry $(DESTDIR)$(PREFIX)/share/doc/ferry

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build
