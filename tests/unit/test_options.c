/* SPDX-License-Identifier: MIT */
/*
 * test_options.c - ferryd's configuration: defaults, FERRY_* environment,
 * flags over environment, and bad values refused with the key named.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "endpoint.h"
#include "options.h"

static fy_options_result_t
s_parse(fy_config_t *cfg, fy_err_t *err, int argc, char **argv)
{
    return fy_options_parse(argc, argv, cfg, err);
}

static void
test_defaults(void **state)
{
    (void)state;
    fy_config_t cfg;
    fy_err_t err;
    char *argv[] = {"ferryd", NULL};
    assert_int_equal(s_parse(&cfg, &err, 1, argv), FY_OPTIONS_RUN);
    assert_string_equal(cfg.data_dir, "./data");
    assert_string_equal(cfg.bind, "tcp://127.0.0.1:5555");
    assert_int_equal(cfg.log_level, FY_LOG_INFO);
    assert_int_equal(cfg.map_size, 8ull << 30);
    assert_int_equal(cfg.max_msg_bytes, 1 << 20);
    assert_int_equal(cfg.batch_max, 4096);
    assert_int_equal(cfg.dedupe_window_ms, 120000);
}

static void
test_env_then_flags(void **state)
{
    (void)state;
    setenv("FERRY_DATA", "/var/lib/ferry", 1);
    setenv("FERRY_MAP_SIZE", "512M", 1);
    setenv("FERRY_LOG_LEVEL", "debug", 1);
    fy_config_t cfg;
    fy_err_t err;
    char *argv[] = {"ferryd",      "--map-size", "2G", "--bind", "tcp://127.0.0.1:*",
                    "--batch-max", "100",        NULL};
    assert_int_equal(s_parse(&cfg, &err, 7, argv), FY_OPTIONS_RUN);
    assert_string_equal(cfg.data_dir, "/var/lib/ferry"); /* from the environment */
    assert_int_equal(cfg.log_level, FY_LOG_DEBUG);
    assert_int_equal(cfg.map_size, 2ull << 30); /* the flag wins */
    assert_string_equal(cfg.bind, "tcp://127.0.0.1:*");
    assert_int_equal(cfg.batch_max, 100);
    unsetenv("FERRY_DATA");
    unsetenv("FERRY_MAP_SIZE");
    unsetenv("FERRY_LOG_LEVEL");
    /* Every key's variable, as docs/config.md names it. */
    setenv("FERRY_BIND", "tcp://127.0.0.1:7001", 1);
    setenv("FERRY_MAX_MSG_BYTES", "2M", 1);
    setenv("FERRY_BATCH_MAX", "7", 1);
    setenv("FERRY_DEDUPE_WINDOW_MS", "5000", 1);
    setenv("FERRY_METRICS", "127.0.0.1:9464", 1);
    char *bare[] = {"ferryd", NULL};
    assert_int_equal(s_parse(&cfg, &err, 1, bare), FY_OPTIONS_RUN);
    assert_string_equal(cfg.bind, "tcp://127.0.0.1:7001");
    assert_int_equal(cfg.max_msg_bytes, 2u << 20);
    assert_int_equal(cfg.batch_max, 7);
    assert_int_equal(cfg.dedupe_window_ms, 5000);
    assert_string_equal(cfg.metrics, "127.0.0.1:9464");
    unsetenv("FERRY_BIND");
    unsetenv("FERRY_MAX_MSG_BYTES");
    unsetenv("FERRY_BATCH_MAX");
    unsetenv("FERRY_DEDUPE_WINDOW_MS");
    unsetenv("FERRY_METRICS");
}

static void
test_bad_values_name_the_key(void **state)
{
    (void)state;
    fy_config_t cfg;
    fy_err_t err;
    char *a1[] = {"ferryd", "--map-size", "lots", NULL};
    assert_int_equal(s_parse(&cfg, &err, 3, a1), FY_OPTIONS_ERROR);
    assert_non_null(strstr(err.msg, "map-size"));
    char *a2[] = {"ferryd", "--batch-max", "0", NULL};
    assert_int_equal(s_parse(&cfg, &err, 3, a2), FY_OPTIONS_ERROR);
    assert_non_null(strstr(err.msg, "batch-max"));
    char *a3[] = {"ferryd", "--batch-max", "10K", NULL};
    assert_int_equal(s_parse(&cfg, &err, 3, a3), FY_OPTIONS_ERROR);
    char *a4[] = {"ferryd", "--log-level", "loud", NULL};
    assert_int_equal(s_parse(&cfg, &err, 3, a4), FY_OPTIONS_ERROR);
    assert_non_null(strstr(err.msg, "log-level"));
    char *a5[] = {"ferryd", "--colour", NULL};
    assert_int_equal(s_parse(&cfg, &err, 2, a5), FY_OPTIONS_ERROR);
    assert_non_null(strstr(err.msg, "--colour"));
    char *a6[] = {"ferryd", "stray", NULL};
    assert_int_equal(s_parse(&cfg, &err, 2, a6), FY_OPTIONS_ERROR);
    char *a7[] = {"ferryd", "--data", NULL};
    assert_int_equal(s_parse(&cfg, &err, 2, a7), FY_OPTIONS_ERROR);
    setenv("FERRY_MAX_MSG_BYTES", "-5", 1);
    char *a8[] = {"ferryd", NULL};
    assert_int_equal(s_parse(&cfg, &err, 1, a8), FY_OPTIONS_ERROR);
    assert_non_null(strstr(err.msg, "FERRY_MAX_MSG_BYTES"));
    unsetenv("FERRY_MAX_MSG_BYTES");
    char *a9[] = {"ferryd", "--bind", "localhost", NULL};
    assert_int_equal(s_parse(&cfg, &err, 3, a9), FY_OPTIONS_ERROR);
    assert_non_null(strstr(err.msg, "bind localhost: wants tcp://HOST:PORT, HOST:PORT"));
}

/* Endpoints as people write them (proto/endpoint.c): HOST:PORT means tcp. */
static void
test_endpoints(void **state)
{
    (void)state;
    fy_config_t cfg;
    fy_err_t err;
    char *argv[] = {"ferryd", "--bind", "127.0.0.1:5598", NULL};
    assert_int_equal(s_parse(&cfg, &err, 3, argv), FY_OPTIONS_RUN);
    assert_string_equal(cfg.bind, "tcp://127.0.0.1:5598");
    static const struct {
        const char *in, *out; /* out NULL: refused */
    } cases[] = {{"localhost:5555", "tcp://localhost:5555"},
                 {"tcp://10.0.0.1:80", "tcp://10.0.0.1:80"},
                 {"127.0.0.1:*", "tcp://127.0.0.1:*"},
                 {"[::1]:5555", "tcp://[::1]:5555"},
                 {"ipc:///run/ferry.sock", "ipc:///run/ferry.sock"},
                 {"inproc://x", "inproc://x"},
                 {"localhost", NULL},
                 {"localhost:", NULL},
                 {":5555", NULL},
                 {"::1:5555", NULL},
                 {"host:port", NULL},
                 {"host:123456", NULL},
                 {"tcp://nohost", NULL},
                 {"udp://a:1", NULL},
                 {"ipc://", NULL},
                 {"a b:1", NULL},
                 {"", NULL}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[64] = "x";
        bool ok = fy_endpoint_normalize(cases[i].in, out, sizeof out);
        assert_int_equal(ok, cases[i].out != NULL);
        assert_string_equal(out, cases[i].out ? cases[i].out : "");
    }
    char tiny[8];
    assert_false(fy_endpoint_normalize("localhost:5555", tiny, sizeof tiny));
}

/* --config FILE: INI with the flags' names as keys; defaults < the file <
 * the environment < flags; a bad line is named with its number. */
static void
test_config_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/ferry-options-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], bad[128];
    snprintf(path, sizeof path, "%s/ferryd.ini", dir);
    snprintf(bad, sizeof bad, "%s/bad.ini", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("; ferryd settings\n[ferryd]\nmap-size = 2G\nbatch-max = 100\nlog-level = warn\n"
          "bind = 127.0.0.1:5598\ndata = /srv/ferry\n",
          f);
    fclose(f);
    fy_config_t cfg;
    fy_err_t err;
    setenv("FERRY_BATCH_MAX", "200", 1); /* the environment beats the file */
    char *argv[] = {"ferryd", "--config", path, "--log-level", "debug", NULL};
    assert_int_equal(s_parse(&cfg, &err, 5, argv), FY_OPTIONS_RUN);
    assert_int_equal(cfg.map_size, 2ull << 30);            /* the file */
    assert_int_equal(cfg.batch_max, 200);                  /* the environment */
    assert_int_equal(cfg.log_level, FY_LOG_DEBUG);         /* the flag */
    assert_string_equal(cfg.bind, "tcp://127.0.0.1:5598"); /* HOST:PORT as everywhere */
    assert_string_equal(cfg.data_dir, "/srv/ferry");
    assert_int_equal(cfg.dedupe_window_ms, 120000); /* the default */
    unsetenv("FERRY_BATCH_MAX");
    setenv("FERRY_CONFIG", path, 1); /* or named by the environment */
    char *bare[] = {"ferryd", NULL};
    assert_int_equal(s_parse(&cfg, &err, 1, bare), FY_OPTIONS_RUN);
    assert_int_equal(cfg.batch_max, 100);
    unsetenv("FERRY_CONFIG");
    static const struct {
        const char *text, *says;
    } cases[] = {{"map-size = 2G\ncolour = blue\n", "bad.ini:2: unknown key 'colour'"},
                 {"batch-max = many\n", "bad.ini:1: key batch-max: not a valid number"},
                 {"[broker]\nmap-size = 1G\n", "bad.ini:2: unknown section [broker]"},
                 {"map-size 2G\n", "bad.ini:1: not a key = value line"},
                 {"insecure = maybe\n", "bad.ini:1: insecure: true or false"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        f = fopen(bad, "w");
        assert_non_null(f);
        fputs(cases[i].text, f);
        fclose(f);
        char *a[] = {"ferryd", "--config", bad, NULL};
        assert_int_equal(s_parse(&cfg, &err, 3, a), FY_OPTIONS_ERROR);
        if (!strstr(err.msg, cases[i].says))
            fail_msg("%s: got '%s'", cases[i].says, err.msg);
    }
    char *missing[] = {"ferryd", "--config", "/nonexistent/ferryd.ini", NULL};
    assert_int_equal(s_parse(&cfg, &err, 3, missing), FY_OPTIONS_ERROR);
    assert_non_null(strstr(err.msg, "cannot open"));
    unlink(bad);
    unlink(path);
    rmdir(dir);
}

static void
test_sizes(void **state)
{
    (void)state;
    uint64_t v;
    assert_true(fy_options_parse_size("123", &v));
    assert_int_equal(v, 123);
    assert_true(fy_options_parse_size("64K", &v));
    assert_int_equal(v, 65536);
    assert_true(fy_options_parse_size("3g", &v));
    assert_int_equal(v, 3ull << 30);
    assert_false(fy_options_parse_size("", &v));
    assert_false(fy_options_parse_size("12Q", &v));
    assert_false(fy_options_parse_size("-1", &v));
    assert_false(fy_options_parse_size("99999999999999999999", &v));
    assert_false(fy_options_parse_size("20000000000000T", &v));
}

/* Cluster flags (docs/cluster.md): --peers parsed and checked against
 * --cluster-id; each refusal says what is wrong. */
static void
test_cluster_flags(void **state)
{
    (void)state;
    fy_config_t cfg;
    fy_err_t err;
    char peers[] = "1=127.0.0.1:7001,2=127.0.0.1:7002,3=10.0.0.3:7001";
    char *ok[] = {"ferryd", "--cluster-id", "2", "--peers", peers, NULL};
    assert_int_equal(s_parse(&cfg, &err, 5, ok), FY_OPTIONS_RUN);
    assert_int_equal(cfg.cluster_id, 2);
    assert_int_equal(cfg.npeers, 3);
    assert_int_equal(cfg.peer_ids[2], 3);
    assert_string_equal(cfg.peer_addrs[2], "10.0.0.3:7001");
    assert_int_equal(cfg.snapshot_every, 8192);
    char *single[] = {"ferryd", NULL};
    assert_int_equal(s_parse(&cfg, &err, 1, single), FY_OPTIONS_RUN);
    assert_int_equal(cfg.cluster_id, 0);
    assert_int_equal(cfg.npeers, 0);
    char *not_me[] = {"ferryd", "--cluster-id", "4", "--peers", peers, NULL};
    assert_int_equal(s_parse(&cfg, &err, 5, not_me), FY_OPTIONS_ERROR);
    assert_non_null(strstr(err.msg, "--cluster-id 4 is not among --peers"));
    char *no_peers[] = {"ferryd", "--cluster-id", "1", NULL};
    assert_int_equal(s_parse(&cfg, &err, 3, no_peers), FY_OPTIONS_ERROR);
    assert_non_null(strstr(err.msg, "both --cluster-id and --peers"));
    char *no_id[] = {"ferryd", "--peers", peers, NULL};
    assert_int_equal(s_parse(&cfg, &err, 3, no_id), FY_OPTIONS_ERROR);
    char twice[] = "1=127.0.0.1:7001,1=127.0.0.1:7002";
    char *dup[] = {"ferryd", "--cluster-id", "1", "--peers", twice, NULL};
    assert_int_equal(s_parse(&cfg, &err, 5, dup), FY_OPTIONS_ERROR);
    assert_non_null(strstr(err.msg, "twice"));
    /* A new node: --join its own cluster address, instead of --peers. */
    char *join[] = {"ferryd", "--cluster-id", "4", "--join", "10.0.0.4:7001", NULL};
    assert_int_equal(s_parse(&cfg, &err, 5, join), FY_OPTIONS_RUN);
    assert_int_equal(cfg.npeers, 1);
    assert_int_equal(cfg.peer_ids[0], 4);
    assert_string_equal(cfg.peer_addrs[0], "10.0.0.4:7001");
    char *both[] = {"ferryd",        "--cluster-id", "4",   "--join",
                    "10.0.0.4:7001", "--peers",      peers, NULL};
    assert_int_equal(s_parse(&cfg, &err, 7, both), FY_OPTIONS_ERROR);
    assert_non_null(strstr(err.msg, "not both"));
    char *badjoin[] = {"ferryd", "--cluster-id", "4", "--join", "10.0.0.4", NULL};
    assert_int_equal(s_parse(&cfg, &err, 5, badjoin), FY_OPTIONS_ERROR);
    assert_non_null(strstr(err.msg, "--join 10.0.0.4: wants HOST:PORT"));
    char *badbind[] = {"ferryd", "--cluster-id",   "1", "--peers",
                       peers,    "--cluster-bind", "x", NULL};
    assert_int_equal(s_parse(&cfg, &err, 7, badbind), FY_OPTIONS_ERROR);
    assert_non_null(strstr(err.msg, "--cluster-bind x: wants HOST:PORT"));
    const char *bad[] = {"1=127.0.0.1", "x=127.0.0.1:7001", "1:127.0.0.1:7001",
                         "1=:7001",     "1=127.0.0.1:70a1", "0=127.0.0.1:7001"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *a[] = {"ferryd", "--cluster-id", "1", "--peers", (char *)bad[i], NULL};
        assert_int_equal(s_parse(&cfg, &err, 5, a), FY_OPTIONS_ERROR);
        assert_non_null(strstr(err.msg, "is not ID=HOST:PORT"));
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_env_then_flags),
        cmocka_unit_test(test_bad_values_name_the_key),
        cmocka_unit_test(test_endpoints),
        cmocka_unit_test(test_config_file),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_cluster_flags),
    };
    if (getenv("FERRY_TEST_FILTER")) /* e.g. FERRY_TEST_FILTER='test_pg*' */
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("options", tests, NULL, NULL);
}
