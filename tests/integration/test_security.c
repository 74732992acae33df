/*
 * test_security.c - encryption with ZeroMQ CURVE (issue 16, first step):
 *
 * - `ferry keygen` writes a pair: the secret file 0600, never overwritten;
 * - ferryd --curve-secret logs its public key; a client given it works,
 *   and what passes on the wire is not clear text (a marker in a payload
 *   is seen through a loopback proxy without CURVE, not with it);
 * - a client without the key, with another server's key, and a clear-text
 *   socket get nothing, and the broker goes on serving the right client;
 * - a secret key file others may read is refused at start.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <cmocka.h>

#include "clock.h"
#include "harness.h"
#include "proxy.h"

static const char S_MARKER[] = "clear-text-marker-7f3a";

/* A client of @p endpoint with CURVE server key @p key (NULL: none). */
static ferry_client_t *
s_client(const char *endpoint, const char *key, ferry_status_t *st)
{
    ferry_options_t *o = ferry_options_new();
    ferry_client_t *c = NULL;
    ferry_options_set_server(o, endpoint);
    ferry_options_set_timeout_ms(o, 1500);
    *st = key ? ferry_options_set_server_key(o, key) : FERRY_OK;
    if (*st == FERRY_OK)
        *st = ferry_client_new(o, &c);
    ferry_options_destroy(&o);
    return c;
}

/* Publishes the marker through a proxy in front of @p d and says whether
 * it was seen on the wire. */
static bool
s_marker_seen(const fy_ferryd_t *d, const char *key)
{
    int port = atoi(strrchr(d->endpoint, ':') + 1);
    fy_proxy_t *px = fy_proxy_start("127.0.0.1", port);
    assert_non_null(px);
    fy_proxy_watch(px, S_MARKER, strlen(S_MARKER));
    ferry_status_t st;
    ferry_client_t *c = s_client(fy_proxy_endpoint(px), key, &st);
    assert_int_equal(st, FERRY_OK);
    ferry_message_t m = {.data = S_MARKER, .len = strlen(S_MARKER)};
    assert_int_equal(ferry_client_publish(c, "secret", &m, NULL), FERRY_OK);
    ferry_client_destroy(&c);
    bool seen = fy_proxy_seen(px) > 0;
    fy_proxy_stop(&px);
    return seen;
}

static void
test_curve(void **state)
{
    fy_ferryd_t *d = *state;
    char dir[256], prefix[300], cmd[1200], out[512], pubspec[320], keyfile[320];
    assert_int_equal(fy_tmpdir(dir, sizeof dir), 0);
    snprintf(prefix, sizeof prefix, "%s/server", dir);
    snprintf(keyfile, sizeof keyfile, "%s.key", prefix);
    snprintf(pubspec, sizeof pubspec, "@%s.pub", prefix);
    /* keygen: the pair, the secret private, never overwritten. */
    snprintf(cmd, sizeof cmd, "'%s' keygen '%s'", getenv("FERRY_CLI"), prefix);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    char pub[64];
    snprintf(pub, sizeof pub, "%.40s", out);
    assert_int_equal(strlen(pub), 40);
    struct stat sb;
    assert_int_equal(stat(keyfile, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_not_equal(fy_run(cmd, out, sizeof out), 0); /* exists: refused */

    /* Clear text first: the marker is on the wire. */
    assert_int_equal(fy_ferryd_start(d), 0);
    ferry_status_t st;
    ferry_client_t *c = s_client(d->endpoint, NULL, &st);
    assert_int_equal(st, FERRY_OK);
    assert_int_equal(ferry_client_declare(c, FERRY_KIND_TOPIC, "secret", NULL, NULL, NULL),
                     FERRY_OK);
    ferry_client_destroy(&c);
    assert_true(s_marker_seen(d, NULL));
    fy_ferryd_signal(d, SIGTERM);

    /* CURVE on: the public key in the log, and no clear text. */
    d->extra[0] = "--curve-secret";
    d->extra[1] = keyfile;
    assert_int_equal(fy_ferryd_start(d), 0);
    char want[128];
    snprintf(want, sizeof want, "msg=\"curve on\" public_key=%s", pub);
    assert_int_equal(fy_ferryd_log_count(d, want), 1);
    c = s_client(d->endpoint, pubspec, &st);
    assert_int_equal(st, FERRY_OK);
    assert_int_equal(ferry_client_ping(c), FERRY_OK);
    assert_false(s_marker_seen(d, pub)); /* the key itself works as well as @FILE */

    /* Without the key, with another server's key, in clear text: nothing. */
    ferry_client_t *bad = s_client(d->endpoint, NULL, &st);
    assert_true(st == FERRY_ECONNECT || st == FERRY_ETIMEOUT);
    assert_null(bad);
    char other[320];
    snprintf(other, sizeof other, "%s/other", dir);
    snprintf(cmd, sizeof cmd, "'%s' keygen '%s' >/dev/null", getenv("FERRY_CLI"), other);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    snprintf(other, sizeof other, "@%s/other.pub", dir);
    bad = s_client(d->endpoint, other, &st);
    assert_true(st == FERRY_ECONNECT || st == FERRY_ETIMEOUT);
    assert_int_equal(s_client(d->endpoint, "not-a-key", &st) == NULL, 1);
    assert_int_equal(st, FERRY_EINVAL);
    void *ctx = zmq_ctx_new(), *raw = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0, timeo = 1000;
    zmq_setsockopt(raw, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(raw, ZMQ_RCVTIMEO, &timeo, sizeof timeo);
    assert_int_equal(zmq_connect(raw, d->endpoint), 0);
    zmq_send(raw, "\x80", 1, ZMQ_DONTWAIT);
    char buf[64];
    assert_true(zmq_recv(raw, buf, sizeof buf, 0) < 0); /* no handshake, no answer */
    zmq_close(raw);
    zmq_ctx_term(ctx);
    /* The broker goes on. */
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(c, "secret", &info), FERRY_OK);
    assert_int_equal(info.messages, 2);
    ferry_client_destroy(&c);
    fy_ferryd_signal(d, SIGTERM);

    /* A secret others may read is refused, saying how to fix it. */
    assert_int_equal(chmod(keyfile, 0644), 0);
    snprintf(cmd, sizeof cmd, "'%s' --data '%s/d2' --curve-secret '%s' 2>&1", getenv("FERRYD"), dir,
             keyfile);
    assert_int_equal(fy_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "chmod 600"));
    fy_rmtree(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_curve, fy_ferryd_state_new, fy_ferryd_state_free),
    };
    if (getenv("FERRY_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("security", tests, NULL, NULL);
}
