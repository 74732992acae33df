# Ferry - one Makefile for the broker, the client library, the CLI, the tests
# and the benchmarks. `make help` lists the targets.

BUILD   ?= build
PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
DATA    ?= ./data
BIND    ?= tcp://127.0.0.1:5555

VERSION    := 0.1.0
SOVERSION  := 0
PKGS       := libzmq lmdb msgpack

# Evaluated lazily (=) so that a first `make` can install the packages first.
DEP_CFLAGS  = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
DEP_LIBS    = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
TEST_LIBS   = $(shell pkg-config --libs cmocka 2>/dev/null)

WARN       := -Wall -Wextra -Wshadow -Werror
SAN        ?=
FY_CFLAGS   = -std=c11 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -O2 -g -fPIC \
              -fvisibility=hidden -Iinclude -Iclient -Iproto -Ibroker -Ioutbox-relay -Itests/support \
              $(shell pkg-config --cflags libpq 2>/dev/null) \
              $(DEP_CFLAGS) $(WARN) $(SAN) $(CFLAGS)
FY_LDFLAGS  = $(SAN) $(LDFLAGS)

# Installed as they are: everything in include/.
PUBLIC_HEADERS := $(wildcard include/*.h)

PROTO_SRC  := proto/envelope.c proto/request.c proto/reply.c proto/status.c proto/subject.c
CLIENT_SRC := client/connection.c client/options.c client/window.c client/pull.c client/push.c client/topics.c client/conn.c client/keyread.c client/msgcopy.c client/rpc.c \
              client/outbox.c client/outbox_relay.c outbox-relay/relay.c outbox-relay/src_lmdb.c \
              client/saga.c client/saga_participant.c client/inbox.c client/mdb_util.c
BROKER_SRC := broker/log.c broker/store.c broker/subs.c broker/consumers.c broker/broker.c broker/options.c \
              broker/metrics.c
CLI_SRC    := cli/ferry.c
# relay.c and src_lmdb.c are in libferry (the in-process relay); ferry-relay
# links them from there.
RELAY_SRC  := outbox-relay/main.c outbox-relay/config.c outbox-relay/src_sqlite.c \
              outbox-relay/src_pg.c outbox-relay/src_pglog.c outbox-relay/pgutil.c
SUPPORT_SRC := tests/support/fixture.c
HARNESS_SRC := tests/support/harness.c tests/support/pgserver.c

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIB_OBJ    = $(call obj,$(PROTO_SRC) $(CLIENT_SRC))
BROKER_OBJ = $(call obj,$(PROTO_SRC) $(BROKER_SRC))

UNIT_TESTS  := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))
INTEG_TESTS := $(patsubst tests/integration/%.c,%,$(wildcard tests/integration/test_*.c))
TEST_BINS    = $(addprefix $(BUILD)/tests/,$(UNIT_TESTS) $(INTEG_TESTS))
TEST_SCRIPTS := $(wildcard tests/integration/test_*.sh)

LIBA  = $(BUILD)/libferry.a
LIBSO = $(BUILD)/libferry.so.$(VERSION)

# Keep object files of examples and benchmarks (make would delete them as intermediates).
.SECONDARY:

.PHONY: all deps run test check-asan check-valgrind valgrind bench bench-profile install uninstall clean help format

all: deps $(BUILD)/ferryd $(BUILD)/ferry $(BUILD)/ferry-relay $(LIBA) $(LIBSO) \
     $(BUILD)/examples/publish $(BUILD)/examples/outbox_service $(BUILD)/examples/order_saga $(BUILD)/examples/choreography $(BUILD)/examples/event_sourcing \
     $(BUILD)/bench/bench_publish $(BUILD)/bench/bench_queue $(BUILD)/bench/bench_timers \
     $(BUILD)/bench/bench_events $(BUILD)/bench/bench_compare $(BUILD)/bench/bench_relay $(BUILD)/bench/bench_saga

help:
	@echo "make run             build and start ferryd ($(BIND), data in $(DATA))"
	@echo "make test            build and run every test"
	@echo "make check-asan      every test under AddressSanitizer + UBSan"
	@echo "make check-valgrind  the test programs under valgrind (leaks are errors)"
	@echo "make bench           Ferry vs Redis Streams (W1-W3, backlog) into bench/results/DATE.tsv,"
	@echo "                     then publish, queue, pending-set and event benchmarks (bench/README.md)"
	@echo "make bench-profile   W1 with ferryd under perf; top functions in bench/results/DATE-profile/"
	@echo "make install         PREFIX=$(PREFIX) DESTDIR=..."

deps:
	@scripts/install-deps

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(FY_CFLAGS) -MMD -MP -c $< -o $@

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

$(LIBA): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(LIBSO): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libferry.so.$(SOVERSION) -o $@ $^ $(FY_LDFLAGS) $(DEP_LIBS)
	ln -sf libferry.so.$(VERSION) $(BUILD)/libferry.so.$(SOVERSION)
	ln -sf libferry.so.$(VERSION) $(BUILD)/libferry.so

$(BUILD)/ferryd: $(BROKER_OBJ) $(call obj,broker/main.c)
	$(CC) -o $@ $^ $(FY_LDFLAGS) $(DEP_LIBS) $(shell pkg-config --libs libmicrohttpd 2>/dev/null) -lpthread

$(BUILD)/ferry: $(call obj,$(CLI_SRC)) $(LIBA)
	$(CC) -o $@ $^ $(FY_LDFLAGS) $(DEP_LIBS) -lpthread

$(BUILD)/ferry-relay: $(call obj,$(RELAY_SRC)) $(LIBA)
	$(CC) -o $@ $^ $(FY_LDFLAGS) $(DEP_LIBS) $(shell pkg-config --libs sqlite3 inih libpq jansson 2>/dev/null) -lpthread

$(BUILD)/examples/%: $(call obj,examples/%.c) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(FY_LDFLAGS) $(DEP_LIBS) -lpthread

# Unit tests link the module they test; integration tests use libferry and
# start the real ferryd built above.
$(BUILD)/tests/test_envelope: $(call obj,tests/unit/test_envelope.c $(PROTO_SRC))
$(BUILD)/tests/test_store: $(call obj,tests/unit/test_store.c $(PROTO_SRC) $(SUPPORT_SRC) broker/store.c broker/subs.c broker/log.c)
$(BUILD)/tests/test_subject: $(call obj,tests/unit/test_subject.c proto/subject.c)
$(BUILD)/tests/test_consumers: $(call obj,tests/unit/test_consumers.c broker/consumers.c)
$(BUILD)/tests/test_options: $(call obj,tests/unit/test_options.c $(PROTO_SRC) broker/options.c broker/log.c)
$(addprefix $(BUILD)/tests/,$(INTEG_TESTS)): $(BUILD)/tests/%: $(call obj,tests/integration/%.c $(SUPPORT_SRC) $(HARNESS_SRC)) $(LIBA)

$(BUILD)/tests/%:
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(FY_LDFLAGS) $(DEP_LIBS) $(TEST_LIBS) $(shell pkg-config --libs sqlite3 libpq 2>/dev/null) -lpthread

TEST_ENV = FERRYD=$(abspath $(BUILD)/ferryd) FERRY_CLI=$(abspath $(BUILD)/ferry) \
           FERRY_RELAY=$(abspath $(BUILD)/ferry-relay) FERRY_TOP=$(CURDIR) \
           FERRY_BUILD=$(BUILD) FERRY_SAN="$(SAN)"

test: all $(TEST_BINS)
	$(TEST_ENV) tests/run-tests $(TEST_BINS) $(TEST_SCRIPTS)

check-asan:
	$(MAKE) BUILD=build/asan SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" test

check-valgrind valgrind: all $(TEST_BINS)
	$(TEST_ENV) FERRY_TEST_QUICK=1 RUNNER="valgrind -q --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect --error-exitcode=99" \
	    tests/run-tests $(TEST_BINS)

run: all
	@mkdir -p $(DATA)
	$(BUILD)/ferryd --data $(DATA) --bind $(BIND)

# bench_compare also drives Redis Streams, through hiredis.
$(BUILD)/bench/bench_compare: $(call obj,bench/bench_compare.c bench/backends.c $(SUPPORT_SRC) $(HARNESS_SRC)) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(FY_LDFLAGS) $(DEP_LIBS) $(shell pkg-config --libs hiredis 2>/dev/null) -lpthread

$(BUILD)/bench/%: $(call obj,bench/%.c $(SUPPORT_SRC) $(HARNESS_SRC)) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(FY_LDFLAGS) $(DEP_LIBS) $(shell pkg-config --libs sqlite3 libpq 2>/dev/null) -lpthread

BENCH_ENV = FERRYD=$(abspath $(BUILD)/ferryd) FERRY_RELAY=$(abspath $(BUILD)/ferry-relay)
RESULTS   = bench/results/$(shell date -u +%Y-%m-%d)

bench: all
	@mkdir -p bench/results
	$(BENCH_ENV) $(BUILD)/bench/bench_compare --out $(RESULTS).tsv
	$(BENCH_ENV) $(BUILD)/bench/bench_publish -n 200000 -w 1000
	$(BENCH_ENV) $(BUILD)/bench/bench_publish -n 200000 -w 1000 --ids
	$(BENCH_ENV) $(BUILD)/bench/bench_publish -n 200000 -w 4000
	$(BENCH_ENV) $(BUILD)/bench/bench_queue -n 200000 -w 1000 -f 1000
	$(BENCH_ENV) $(BUILD)/bench/bench_queue -n 200000 -w 1000 -p 1000
	$(BENCH_ENV) $(BUILD)/bench/bench_queue -n 100000 -w 1000 -p 1000 -k 4
	$(BENCH_ENV) $(BUILD)/bench/bench_timers -n 1000000
	$(BENCH_ENV) $(BUILD)/bench/bench_events
	$(BENCH_ENV) $(BUILD)/bench/bench_relay
	$(BENCH_ENV) $(BUILD)/bench/bench_saga

# W1 with ferryd under perf (Debian linux-perf), top functions saved.
bench-profile: all
	@command -v perf >/dev/null || { echo "bench-profile: perf is not installed (apt-get install linux-perf)"; exit 1; }
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
	install -m 644 $(PUBLIC_HEADERS) $(DESTDIR)$(PREFIX)/include/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' client/ferry.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/ferry.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/ferryd $(DESTDIR)$(PREFIX)/bin/ferry $(DESTDIR)$(PREFIX)/bin/ferry-relay \
	    $(DESTDIR)$(PREFIX)/lib/libferry.a $(DESTDIR)$(PREFIX)/lib/libferry.so* \
	    $(addprefix $(DESTDIR)$(PREFIX)/,$(PUBLIC_HEADERS)) \
	    $(DESTDIR)$(PREFIX)/lib/pkgconfig/ferry.pc

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build
