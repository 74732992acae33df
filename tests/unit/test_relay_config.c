/* SPDX-License-Identifier: MIT */
/*
 * test_relay_config.c - ferry-relay's settings (outbox-relay/config.c): the
 * defaults, flags, the INI file with [relay] defaults and [source NAME]
 * sections (real files on disk), and the errors each mistake gets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "redact.h"
#include "fixture.h"

static void
test_defaults(void **state)
{
    (void)state;
    unsetenv("FERRY_SERVER");
    fr_source_cfg_t c;
    fr_config_defaults(&c);
    fy_err_t err = {0};
    assert_int_equal(fr_config_set(&c, "source", "sqlite:/tmp/app.db", &err), FERRY_OK);
    assert_int_equal(fr_config_finish(&c, &err), FERRY_OK);
    assert_ptr_equal(c.cfg.ops, &fr_sqlite_source);
    assert_string_equal(c.cfg.location, "/tmp/app.db");
    assert_string_equal(c.cfg.broker, "tcp://127.0.0.1:5555");
    assert_string_equal(c.cfg.table, "outbox");
    assert_string_equal(c.cfg.name, ""); /* the source makes its default at open */
    assert_string_equal(c.cfg.rename_from, "");
    assert_string_equal(c.cfg.topic_template, "{aggregate_type}");
    assert_string_equal(c.cfg.dlq_topic, "ferry-relay.dlq");
    assert_int_equal(c.cfg.poll_ms, 20);
    assert_int_equal(c.cfg.batch, 1000);
    assert_int_equal(c.cfg.dedupe_window_ms, 86400000);
    assert_int_equal(c.cfg.stats_ms, 10000);
    assert_int_equal(c.cfg.on_poison, FR_POISON_DLQ);
    assert_false(c.cfg.delete_published);

    setenv("FERRY_SERVER", "tcp://10.0.0.9:7000", 1);
    fr_config_defaults(&c);
    assert_string_equal(c.broker, "tcp://10.0.0.9:7000");
    unsetenv("FERRY_SERVER");
}

static void
test_every_kind_and_setting(void **state)
{
    (void)state;
    static const struct {
        const char *source;
        const fr_source_ops_t *ops;
    } kinds[] = {{"sqlite:a.db", &fr_sqlite_source},
                 {"lmdb:/srv/env", &fr_lmdb_source},
                 {"pg:dbname=app", &fr_pg_source},
                 {"pg-logical:dbname=app", &fr_pglog_source}};
    for (size_t i = 0; i < 4; i++) {
        fr_source_cfg_t c;
        fr_config_defaults(&c);
        fy_err_t err = {0};
        assert_int_equal(fr_config_set(&c, "source", kinds[i].source, &err), FERRY_OK);
        assert_int_equal(fr_config_finish(&c, &err), FERRY_OK);
        assert_ptr_equal(c.cfg.ops, kinds[i].ops);
    }
    fr_source_cfg_t c;
    fr_config_defaults(&c);
    fy_err_t err = {0};
    const char *kv[][2] = {{"source", "sqlite:x.db"},
                           {"name", "billing"},
                           {"rename-from", "sqlite"},
                           {"table", "events"},
                           {"broker", "tcp://127.0.0.1:9"},
                           {"on-publish", "delete"},
                           {"on-poison", "stop"},
                           {"poll-ms", "5"},
                           {"batch", "250"},
                           {"dedupe-window-ms", "60000"},
                           {"stats-ms", "100"},
                           {"topic-template", "billing.{aggregate_type}"},
                           {"dlq-topic", "billing.dlq"}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        assert_int_equal(fr_config_set(&c, kv[i][0], kv[i][1], &err), FERRY_OK);
    assert_int_equal(fr_config_finish(&c, &err), FERRY_OK);
    assert_string_equal(c.cfg.name, "billing");
    assert_string_equal(c.cfg.rename_from, "sqlite");
    assert_string_equal(c.cfg.table, "events");
    assert_string_equal(c.cfg.broker, "tcp://127.0.0.1:9");
    assert_true(c.cfg.delete_published);
    assert_int_equal(c.cfg.on_poison, FR_POISON_STOP);
    assert_int_equal(c.cfg.poll_ms, 5);
    assert_int_equal(c.cfg.batch, 250);
    assert_int_equal(c.cfg.dedupe_window_ms, 60000);
    assert_int_equal(c.cfg.stats_ms, 100);
    assert_string_equal(c.cfg.topic_template, "billing.{aggregate_type}");
    assert_string_equal(c.cfg.dlq_topic, "billing.dlq");
}

static void
test_bad_settings(void **state)
{
    (void)state;
    const char *bad[][2] = {{"batch", "0"},         {"batch", "1001"},  {"poll-ms", "x"},
                            {"poll-ms", ""},        {"stats-ms", "99"}, {"on-publish", "drop"},
                            {"on-poison", "retry"}, {"batchsize", "5"}, {"dedupe-window-ms", "5"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fr_source_cfg_t c;
        fr_config_defaults(&c);
        fy_err_t err = {0};
        assert_int_equal(fr_config_set(&c, bad[i][0], bad[i][1], &err), FERRY_EINVAL);
        assert_int_equal(err.code, FERRY_EINVAL);
        assert_non_null(strstr(err.msg, bad[i][0])); /* the message names the key */
    }
    char longname[400];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    fr_source_cfg_t c;
    fr_config_defaults(&c);
    fy_err_t err = {0};
    assert_int_equal(fr_config_set(&c, "name", longname, &err), FERRY_EINVAL);
    assert_non_null(strstr(err.msg, "too long"));

    const char *sources[] = {"", "mysql:db", "sqlite:", "sqlite"};
    for (size_t i = 0; i < sizeof sources / sizeof sources[0]; i++) {
        fr_config_defaults(&c);
        if (sources[i][0])
            assert_int_equal(fr_config_set(&c, "source", sources[i], &err), FERRY_OK);
        assert_int_equal(fr_config_finish(&c, &err), FERRY_EINVAL);
        assert_true(err.msg[0]);
    }
}

/* Writes @p text to DIR/relay.ini; the path goes to @p path. */
static void
s_write(const char *dir, const char *text, char *path, size_t cap)
{
    snprintf(path, cap, "%s/relay.ini", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void
test_ini_file(void **state)
{
    (void)state;
    char dir[256], path[300];
    assert_int_equal(fy_tmpdir(dir, sizeof dir), 0);
    s_write(dir,
            "; two outboxes, one process\n"
            "[relay]\n"
            "broker = tcp://127.0.0.1:7777\n"
            "stats-ms = 500\n"
            "\n"
            "[source billing]\n"
            "source = sqlite:/srv/billing/app.db\n"
            "on-publish = delete\n"
            "\n"
            "[source shipping]\n"
            "source = lmdb:/srv/shipping/env\n"
            "topic-template = shipping.{aggregate_type}\n"
            "stats-ms = 2000\n",
            path, sizeof path);
    fr_source_cfg_t defaults, *out[4];
    fr_config_defaults(&defaults);
    size_t n = 0;
    fy_err_t err = {0};
    assert_int_equal(fr_config_load(path, &defaults, out, 4, &n, &err), FERRY_OK);
    assert_int_equal(n, 2);
    assert_string_equal(out[0]->cfg.name, "billing");
    assert_ptr_equal(out[0]->cfg.ops, &fr_sqlite_source);
    assert_string_equal(out[0]->cfg.location, "/srv/billing/app.db");
    assert_string_equal(out[0]->cfg.broker, "tcp://127.0.0.1:7777"); /* from [relay] */
    assert_true(out[0]->cfg.delete_published);
    assert_int_equal(out[0]->cfg.stats_ms, 500);
    assert_string_equal(out[1]->cfg.name, "shipping");
    assert_ptr_equal(out[1]->cfg.ops, &fr_lmdb_source);
    assert_false(out[1]->cfg.delete_published);
    assert_int_equal(out[1]->cfg.stats_ms, 2000); /* the section wins over [relay] */
    assert_string_equal(out[1]->cfg.topic_template, "shipping.{aggregate_type}");
    free(out[0]);
    free(out[1]);
    fy_rmtree(dir);
}

static void
test_ini_mistakes(void **state)
{
    (void)state;
    static const struct {
        const char *text, *says;
        fy_status_t code;
    } cases[] = {
        {"[relay]\nbroker = tcp://127.0.0.1:1\n[source a]\nsource = sqlite:a.db\nbatchsize = 5\n",
         "relay.ini:5: bad setting batchsize = 5", FERRY_EINVAL},
        {"[sources a]\nsource = sqlite:a.db\n", "unknown section [sources a]", FERRY_EINVAL},
        {"[source a]\nname = b\n", "the section names the source", FERRY_EINVAL},
        {"[relay]\nbroker = tcp://127.0.0.1:1\n", "has no [source NAME] section", FERRY_EINVAL},
        {"[source a]\non-publish = delete\n", "a source is required", FERRY_EINVAL},
        {"[source a]\nsource = sqlite:a.db\nthis is not ini\n", "relay.ini:3", FERRY_EINVAL},
        {"[source a]\nsource=sqlite:a\n[source b]\nsource=sqlite:b\n[source c]\nsource=sqlite:c\n",
         "at most 2 sources", FERRY_EINVAL},
        /* Two sources of one name would publish under the same ids. */
        {"[source a]\nsource=sqlite:a\n[source b]\nsource=sqlite:b\n[source a]\ntable=t\n",
         "relay.ini:6: [source a] appears twice", FERRY_EINVAL},
    };
    char dir[256], path[300];
    assert_int_equal(fy_tmpdir(dir, sizeof dir), 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_write(dir, cases[i].text, path, sizeof path);
        fr_source_cfg_t defaults, *out[2];
        fr_config_defaults(&defaults);
        size_t n = 99;
        fy_err_t err = {0};
        assert_int_equal(fr_config_load(path, &defaults, out, 2, &n, &err), cases[i].code);
        assert_int_equal(n, 0);
        if (!strstr(err.msg, cases[i].says))
            fail_msg("case %zu: '%s' does not say '%s'", i, err.msg, cases[i].says);
    }
    fr_source_cfg_t defaults, *out[2];
    fr_config_defaults(&defaults);
    size_t n = 0;
    fy_err_t err = {0};
    snprintf(path, sizeof path, "%s/missing.ini", dir);
    assert_int_equal(fr_config_load(path, &defaults, out, 2, &n, &err), FERRY_EIO);
    assert_non_null(strstr(err.msg, "cannot read"));
    fy_rmtree(dir);
}

/* Passwords never reach a log line: conninfo keywords (quoted or not, any
 * case), URI user:password@ and password= query parameters are hidden;
 * everything else stays as written. */
static void
test_redact(void **state)
{
    (void)state;
    char out[256];
    assert_string_equal(
        fr_redact("host=db port=5432 user=app password=s3cret dbname=x", out, sizeof out),
        "host=db port=5432 user=app password=*** dbname=x");
    assert_string_equal(fr_redact("password='a b\\' c' host=x", out, sizeof out),
                        "password=*** host=x");
    assert_string_equal(fr_redact("PASSWORD = s3cret host=x", out, sizeof out),
                        "PASSWORD = *** host=x");
    assert_string_equal(
        fr_redact("postgresql://app:s3cret@db:5432/x?sslmode=require&password=p2", out, sizeof out),
        "postgresql://app:***@db:5432/x?sslmode=require&password=***");
    assert_string_equal(fr_redact("postgres://app@db/x", out, sizeof out), "postgres://app@db/x");
    assert_string_equal(fr_redact("/var/lib/app.db", out, sizeof out), "/var/lib/app.db");
    assert_string_equal(fr_redact("passfile=/x mypassword=y", out, sizeof out),
                        "passfile=/x mypassword=y");
    assert_string_equal(fr_redact(NULL, out, sizeof out), "");
    char small[12];
    assert_string_equal(fr_redact("password=s3cret host=x", small, sizeof small), "password=**");
    /* The relay's own messages: a bad source is named without its password. */
    fr_source_cfg_t c;
    fr_config_defaults(&c);
    fy_err_t err;
    assert_int_equal(fr_config_set(&c, "source", "kafka:host=x password=s3cret", &err), FERRY_OK);
    assert_int_not_equal(fr_config_finish(&c, &err), FERRY_OK);
    assert_null(strstr(err.msg, "s3cret"));
    assert_non_null(strstr(err.msg, "password=***"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),     cmocka_unit_test(test_every_kind_and_setting),
        cmocka_unit_test(test_bad_settings), cmocka_unit_test(test_ini_file),
        cmocka_unit_test(test_ini_mistakes), cmocka_unit_test(test_redact),
    };
    if (getenv("FERRY_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("relay_config", tests, NULL, NULL);
}
