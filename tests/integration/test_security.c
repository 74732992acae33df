/* SPDX-License-Identifier: MIT */
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
#include "relayfx.h"

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

/* A client logging in as @p user with @p password (NULL: with the key pair
 * in PREFIX.pub / PREFIX.key of @p keys, or a fresh pair if NULL too). */
static ferry_client_t *
s_login(const char *endpoint, const char *server_pub, const char *user, const char *password,
        const char *keys, ferry_status_t *st)
{
    ferry_options_t *o = ferry_options_new();
    ferry_client_t *c = NULL;
    ferry_options_set_server(o, endpoint);
    ferry_options_set_timeout_ms(o, 1500);
    *st = ferry_options_set_server_key(o, server_pub);
    if (*st == FERRY_OK && user)
        *st = ferry_options_set_credentials(o, user, password);
    if (*st == FERRY_OK && keys) {
        char pub[320], sec[320], pk[64] = "";
        snprintf(pub, sizeof pub, "%s.pub", keys);
        snprintf(sec, sizeof sec, "@%s.key", keys);
        FILE *f = fopen(pub, "r");
        if (f && fgets(pk, sizeof pk, f))
            pk[strcspn(pk, "\n")] = '\0';
        if (f)
            fclose(f);
        *st = ferry_options_set_client_keys(o, pk, sec);
    }
    if (*st == FERRY_OK)
        *st = ferry_client_new(o, &c);
    ferry_options_destroy(&o);
    return c;
}

static void
s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* ferryd's next start: CURVE with the secret @p srv.key, users from @p users
 * (@p keyfile holds the key file's name; it must outlive the start). */
static void
s_secure(fy_ferryd_t *d, const char *srv, const char *users, char *keyfile, size_t cap)
{
    snprintf(keyfile, cap, "%s.key", srv);
    d->extra[0] = "--curve-secret";
    d->extra[1] = keyfile;
    d->extra[2] = "--users";
    d->extra[3] = users;
}

/* Waits (up to 5 s) for the log to hold @p n lines with @p needle. */
static void
s_wait_log(const fy_ferryd_t *d, const char *needle, int n)
{
    long long until = fy_now_ms() + 5000;
    while (fy_ferryd_log_count(d, needle) < n && fy_now_ms() < until)
        fy_sleep_ms(20);
    assert_int_equal(fy_ferryd_log_count(d, needle), n);
}

/* A temporary directory with a server key pair, a key pair per user and a
 * users file giving each user its key and settings; ferryd's next start
 * uses them. */
typedef struct {
    char dir[256], srv[300], srvpub[310], users[300], keyfile[320], keys[8][300];
} s_site_t;

/* @p sections: user name, then its settings ("consume = >\n..."), ...,
 * NULL; s->keys[i] gets the i-th user's key pair prefix (for s_login). */
static void
s_site(fy_ferryd_t *d, s_site_t *s, const char *const *sections)
{
    char cmd[1400], out[512];
    assert_int_equal(fy_tmpdir(s->dir, sizeof s->dir), 0);
    snprintf(s->srv, sizeof s->srv, "%s/server", s->dir);
    snprintf(s->srvpub, sizeof s->srvpub, "@%s.pub", s->srv);
    snprintf(s->users, sizeof s->users, "%s/users.ini", s->dir);
    snprintf(cmd, sizeof cmd, "'%s' keygen '%s' >/dev/null", getenv("FERRY_CLI"), s->srv);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    FILE *f = fopen(s->users, "w");
    assert_non_null(f);
    for (size_t i = 0; sections[2 * i]; i++) {
        assert_true(i < 8);
        snprintf(s->keys[i], sizeof s->keys[i], "%s/%s", s->dir, sections[2 * i]);
        snprintf(cmd, sizeof cmd, "'%s' keygen '%s' >/dev/null && cat '%s.pub'",
                 getenv("FERRY_CLI"), s->keys[i], s->keys[i]);
        assert_int_equal(fy_run(cmd, out, sizeof out), 0);
        out[strcspn(out, "\n")] = '\0';
        fprintf(f, "[%s]\nkey = %s\n%s", sections[2 * i], out, sections[2 * i + 1]);
    }
    fclose(f);
    s_secure(d, s->srv, s->users, s->keyfile, sizeof s->keyfile);
}

/* Users (--users): known by CURVE keys, a password user's key derived by
 * libferry; each may do what the users file says on which topics, and
 * EFORBIDDEN names the rest; unknown keys and wrong passwords are refused
 * at the handshake (EAUTH); SIGHUP reads the file again. */
static void
test_users(void **state)
{
    fy_ferryd_t *d = *state;
    char dir[256], cmd[1400], out[1024], srv[300], srvpub[310], bob[300], users[300];
    assert_int_equal(fy_tmpdir(dir, sizeof dir), 0);
    snprintf(srv, sizeof srv, "%s/server", dir);
    snprintf(srvpub, sizeof srvpub, "@%s.pub", srv);
    snprintf(bob, sizeof bob, "%s/bob", dir);
    snprintf(users, sizeof users, "%s/users.ini", dir);
    snprintf(cmd, sizeof cmd, "'%s' keygen '%s' >/dev/null && '%s' keygen '%s' >/dev/null",
             getenv("FERRY_CLI"), srv, getenv("FERRY_CLI"), bob);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    /* ferry passwd: the password from the environment, never argv; the same
     * key each time, and no trace of the password in what it prints. */
    snprintf(cmd, sizeof cmd, "FERRY_PASSWORD=s3cret-pw '%s' --server-key '%s' passwd alice",
             getenv("FERRY_CLI"), srvpub);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    char alice_entry[1024];
    snprintf(alice_entry, sizeof alice_entry, "%s", out);
    assert_non_null(strstr(alice_entry, "[alice]\nkey = "));
    assert_null(strstr(alice_entry, "s3cret"));
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_string_equal(out, alice_entry);
    snprintf(cmd, sizeof cmd, "echo s3cret-pw | '%s' --server-key '%s' passwd alice",
             getenv("FERRY_CLI"), srvpub); /* or one line of stdin */
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_string_equal(out, alice_entry);
    char bobpub[64] = "", text[2048];
    FILE *f = fopen(strcat(strcpy(text, bob), ".pub"), "r");
    assert_non_null(f);
    assert_non_null(fgets(bobpub, sizeof bobpub, f));
    fclose(f);
    bobpub[strcspn(bobpub, "\n")] = '\0';
    snprintf(text, sizeof text,
             "%spublish = orders.>\nadmin = orders.>\n\n[bob]\nkey = %s\nconsume = orders.>\n",
             alice_entry, bobpub);
    s_write(users, text);

    /* Users need CURVE; a bad file stops the start with its line. */
    snprintf(cmd, sizeof cmd, "'%s' --data '%s/x' --users '%s' 2>&1", getenv("FERRYD"), dir, users);
    assert_int_equal(fy_run(cmd, out, sizeof out), 2);
    assert_non_null(strstr(out, "--users needs --curve-secret"));
    char bad[320];
    snprintf(bad, sizeof bad, "%s/bad.ini", dir);
    s_write(bad, "[eve]\nkey = nope\n");
    snprintf(cmd, sizeof cmd, "'%s' --data '%s/x' --curve-secret '%s.key' --users '%s' 2>&1",
             getenv("FERRYD"), dir, srv, bad);
    assert_int_equal(fy_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "bad.ini:2: [eve] key: not a CURVE public key"));

    char keyfile[320];
    s_secure(d, srv, users, keyfile, sizeof keyfile);
    char tokfile[320];
    snprintf(tokfile, sizeof tokfile, "%s/metrics.token", dir);
    s_write(tokfile, "tok-0123456789abcdef\n");
    assert_int_equal(chmod(tokfile, 0600), 0);
    d->extra[4] = "--metrics";
    d->extra[5] = "127.0.0.1:0";
    d->extra[6] = "--metrics-token";
    d->extra[7] = tokfile;
    assert_int_equal(fy_ferryd_start(d), 0);
    assert_int_equal(fy_ferryd_log_count(d, "msg=\"users\" file="), 1);

    /* alice publishes and administers orders.>, nothing else. */
    ferry_status_t st;
    ferry_client_t *alice = s_login(d->endpoint, srvpub, "alice", "s3cret-pw", NULL, &st);
    assert_int_equal(st, FERRY_OK);
    assert_int_equal(ferry_client_declare(alice, FERRY_KIND_TOPIC, "orders.eu", NULL, NULL, NULL),
                     FERRY_OK);
    ferry_message_t m = {.data = "o1", .len = 2};
    assert_int_equal(ferry_client_publish(alice, "orders.eu", &m, NULL), FERRY_OK);
    assert_int_equal(ferry_client_publish(alice, "billing", &m, NULL), FERRY_EFORBIDDEN);
    assert_non_null(strstr(ferry_client_last_error(alice), "user alice may not publish billing"));
    assert_int_equal(ferry_client_declare(alice, FERRY_KIND_TOPIC, "billing", NULL, NULL, NULL),
                     FERRY_EFORBIDDEN);
    const ferry_stored_message_t *msgs;
    size_t n;
    assert_int_equal(ferry_client_fetch(alice, "orders.eu", "s", 10, 0, &msgs, &n),
                     FERRY_EFORBIDDEN);
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(alice, "orders.eu", &info), FERRY_OK);
    assert_int_equal(ferry_client_ping(alice), FERRY_OK); /* the connection goes on */

    /* bob (his own key pair) consumes orders.>, nothing else. */
    ferry_client_t *bobc = s_login(d->endpoint, srvpub, NULL, NULL, bob, &st);
    assert_int_equal(st, FERRY_OK);
    assert_int_equal(ferry_client_sub_declare(bobc, "orders.eu", "s", NULL, NULL), FERRY_OK);
    assert_int_equal(ferry_client_publish(alice, "orders.eu", &m, NULL), FERRY_OK);
    assert_int_equal(ferry_client_fetch(bobc, "orders.eu", "s", 10, 1000, &msgs, &n), FERRY_OK);
    assert_int_equal(n, 2); /* a new subscription starts at the first message */
    uint64_t seqs[2] = {msgs[0].seq, msgs[1].seq};
    assert_int_equal(ferry_client_ack(bobc, "orders.eu", "s", seqs, 2), FERRY_OK);
    assert_int_equal(ferry_client_publish(bobc, "orders.eu", &m, NULL), FERRY_EFORBIDDEN);
    assert_int_equal(ferry_client_delete(bobc, "orders.eu"), FERRY_EFORBIDDEN);

    /* A wrong password, an unknown key, no credentials over clear text:
     * refused at the handshake; said in the log with the peer, never the
     * secret. */
    assert_null(s_login(d->endpoint, srvpub, "alice", "Wr0ng-pw-77", NULL, &st));
    assert_int_equal(st, FERRY_EAUTH);
    assert_null(s_login(d->endpoint, srvpub, NULL, NULL, NULL, &st));
    assert_int_equal(st, FERRY_EAUTH);
    assert_null(s_client(d->endpoint, NULL, &st));
    assert_true(st == FERRY_ECONNECT || st == FERRY_ETIMEOUT);
    assert_true(fy_ferryd_log_count(d, "msg=\"login refused\" peer=127.0.0.1 mechanism=CURVE") >=
                1);
    assert_int_equal(fy_ferryd_log_count(d, "s3cret"), 0);
    assert_int_equal(fy_ferryd_log_count(d, "Wr0ng-pw"), 0);
    assert_true(fy_ferryd_log_count(d, "msg=\"forbidden\"") >= 1);
    int mport = 0;
    snprintf(cmd, sizeof cmd, "grep -o 'url=http://127.0.0.1:[0-9]*' '%s' | tail -1 | cut -d: -f3",
             d->log_path);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    mport = atoi(out);
    /* /metrics wants the bearer token; /health stays open. */
    static char body[65536];
    assert_int_equal(fy_http(mport, "GET", "/metrics", body, sizeof body), 0);
    assert_non_null(strstr(body, " 401 "));
    assert_null(strstr(body, "ferry_"));
    assert_int_equal(fy_http_with(mport, "GET", "/metrics", "Authorization: Bearer nope-0123456789",
                                  body, sizeof body),
                     0);
    assert_non_null(strstr(body, " 401 "));
    assert_int_equal(fy_http(mport, "GET", "/health", body, sizeof body), 0);
    assert_non_null(strstr(body, " 200 "));
    assert_int_equal(fy_http_with(mport, "GET", "/metrics",
                                  "Authorization: Bearer tok-0123456789abcdef", body, sizeof body),
                     0);
    assert_non_null(strstr(body, " 200 "));
    assert_non_null(strstr(body, "\nferry_logins_total{result=\"refused\"} "));
    assert_non_null(strstr(body, "\nferry_forbidden_total "));

    /* SIGHUP: bob is gone from the file; his next request is refused while
     * alice goes on. A file with an error is not taken: the old one stays. */
    s_write(users, alice_entry);
    f = fopen(users, "a");
    fputs("publish = orders.>\n", f);
    fclose(f);
    kill(d->pid, SIGHUP);
    s_wait_log(d, "msg=\"users reloaded\"", 1);
    assert_int_equal(ferry_client_fetch(bobc, "orders.eu", "s", 10, 0, &msgs, &n),
                     FERRY_EFORBIDDEN);
    assert_non_null(strstr(ferry_client_last_error(bobc), "user bob is not in the users file"));
    assert_int_equal(ferry_client_publish(alice, "orders.eu", &m, NULL), FERRY_OK);
    s_write(users, "[alice]\nbogus = 1\n");
    kill(d->pid, SIGHUP);
    s_wait_log(d, "msg=\"users file not reloaded\"", 1);
    assert_int_equal(ferry_client_publish(alice, "orders.eu", &m, NULL), FERRY_OK);
    ferry_client_destroy(&alice);
    ferry_client_destroy(&bobc);
    fy_ferryd_signal(d, SIGTERM);
    /* A token others may read is refused at start. */
    assert_int_equal(chmod(tokfile, 0644), 0);
    snprintf(cmd, sizeof cmd, "'%s' --data '%s/y' --metrics 127.0.0.1:0 --metrics-token '%s' 2>&1",
             getenv("FERRYD"), dir, tokfile);
    assert_int_equal(fy_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "chmod 600"));
    fy_rmtree(dir);
}

/* ferry-relay as a user of the users file: with its own key pair
 * (--client-key), or as a password user (--user, --password-file); every
 * row once; a wrong password is said as a refused key. */
static void
test_relay_as_a_user(void **state)
{
    fy_ferryd_t *d = *state;
    char dir[256], cmd[1600], out[1024], srv[300], srvpub[310], rk[300], ck[300], users[300];
    assert_int_equal(fy_tmpdir(dir, sizeof dir), 0);
    snprintf(srv, sizeof srv, "%s/server", dir);
    snprintf(srvpub, sizeof srvpub, "@%s.pub", srv);
    snprintf(rk, sizeof rk, "%s/relay", dir);
    snprintf(ck, sizeof ck, "%s/checker", dir);
    snprintf(users, sizeof users, "%s/users.ini", dir);
    snprintf(cmd, sizeof cmd,
             "cd '%s' && '%s' keygen server >/dev/null && '%s' keygen relay >/dev/null && "
             "'%s' keygen checker >/dev/null && "
             "{ printf '[relay]\\nkey = %%s\\n' \"$(cat relay.pub)\"; "
             "printf '[checker]\\nkey = %%s\\nconsume = >\\n' \"$(cat checker.pub)\"; "
             "FERRY_PASSWORD=pw-relayer-9 '%s' --server-key @server.pub passwd relayer; "
             "} > users.ini && printf 's3cret-never\\n' > wrong.pw && "
             "printf 'pw-relayer-9\\n' > relayer.pw && chmod 600 relayer.pw wrong.pw",
             dir, getenv("FERRY_CLI"), getenv("FERRY_CLI"), getenv("FERRY_CLI"),
             getenv("FERRY_CLI"));
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    /* The relay users declare and publish their topics and the DLQ. */
    snprintf(cmd, sizeof cmd,
             "cd '%s' && sed -i -e '/^\\[relay\\]/a publish = orders, orders.>, ferry-relay.dlq\\n"
             "admin = orders, orders.>, ferry-relay.dlq' -e '/^\\[relayer\\]/a publish = orders.>, "
             "ferry-relay.dlq\\nadmin = orders.>, ferry-relay.dlq' users.ini",
             dir);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    char keyfile[320];
    s_secure(d, srv, users, keyfile, sizeof keyfile);
    assert_int_equal(fy_ferryd_start(d), 0);

    char out1[320], out2[320], src1[330], src2[330], log1[330], log2[330], log3[330];
    char rkey[320], pw[320], wrong[320];
    snprintf(out1, sizeof out1, "%s/out1", dir);
    snprintf(out2, sizeof out2, "%s/out2", dir);
    snprintf(src1, sizeof src1, "lmdb:%s", out1);
    snprintf(src2, sizeof src2, "lmdb:%s", out2);
    snprintf(log1, sizeof log1, "%s/r1.log", dir);
    snprintf(log2, sizeof log2, "%s/r2.log", dir);
    snprintf(log3, sizeof log3, "%s/r3.log", dir);
    snprintf(rkey, sizeof rkey, "@%s.key", rk);
    snprintf(pw, sizeof pw, "%s/relayer.pw", dir);
    snprintf(wrong, sizeof wrong, "%s/wrong.pw", dir);
    assert_int_equal(mkdir(out1, 0700), 0);
    assert_int_equal(mkdir(out2, 0700), 0);
    assert_int_equal(fy_outbox_lmdb_rows(out1, 1, 100, 64u << 20), 0);
    assert_int_equal(fy_outbox_lmdb_rows(out2, 1, 50, 64u << 20), 0);
    const char *x1[] = {"--name", "r1", "--server-key", srvpub, "--client-key", rkey, NULL};
    /* r2 and r3 take the server's key from the environment, as every
     * libferry program can. */
    setenv("FERRY_SERVER_KEY", srvpub, 1);
    const char *x2[] = {"--name",
                        "r2",
                        "--user",
                        "relayer",
                        "--password-file",
                        pw,
                        "--topic-template",
                        "{aggregate_type}.b",
                        NULL};
    int p1 = fy_relay_spawn_with(src1, d->endpoint, log1, x1);
    int p2 = fy_relay_spawn_with(src2, d->endpoint, log2, x2);
    assert_true(p1 > 0 && p2 > 0);
    assert_int_equal(fy_relay_wait_started(log1, p1), 0);
    assert_int_equal(fy_relay_wait_started(log2, p2), 0);
    ferry_status_t st;
    ferry_client_t *c = s_login(d->endpoint, srvpub, NULL, NULL, ck, &st);
    assert_int_equal(st, FERRY_OK);
    char why[200] = "";
    long long until = fy_now_ms() + 20000;
    while ((fy_relay_rows_once(c, "orders", "r1", 100, why, sizeof why) != 0 ||
            fy_relay_rows_once(c, "orders.b", "r2", 50, why, sizeof why) != 0) &&
           fy_now_ms() < until)
        fy_sleep_ms(50);
    assert_int_equal(fy_relay_rows_once(c, "orders", "r1", 100, why, sizeof why), 0);
    assert_int_equal(fy_relay_rows_once(c, "orders.b", "r2", 50, why, sizeof why), 0);
    /* A wrong password: refused, said, and no password in any log. */
    const char *x3[] = {"--name", "r3", "--user", "relayer", "--password-file", wrong, NULL};
    int p3 = fy_relay_spawn_with(src2, d->endpoint, log3, x3);
    unsetenv("FERRY_SERVER_KEY");
    assert_true(p3 > 0);
    snprintf(cmd, sizeof cmd, "grep -c \"broker refused this relay's key\" '%s'", log3);
    until = fy_now_ms() + 10000;
    while (fy_run(cmd, out, sizeof out) != 0 && fy_now_ms() < until)
        fy_sleep_ms(50);
    assert_true(atoi(out) >= 1);
    kill(p1, SIGTERM);
    kill(p2, SIGTERM);
    kill(p3, SIGTERM);
    snprintf(cmd, sizeof cmd, "cat '%s' '%s' '%s' '%s' | grep -c -e pw-relayer -e s3cret-never",
             log1, log2, log3, d->log_path);
    fy_run(cmd, out, sizeof out);
    assert_int_equal(atoi(out), 0);
    ferry_client_destroy(&c);
    fy_ferryd_signal(d, SIGTERM);
    fy_rmtree(dir);
}

static ferry_msg_action_t
s_ignore(ferry_client_t *c, const ferry_stored_message_t *m, void *user)
{
    (void)c, (void)m, (void)user;
    return FERRY_MSG_ACK;
}

/* Limits per user (users file): max-publish-rate refuses a publish over it
 * with ERATE while another user publishes on; max-consumers refuses one
 * more push consumer with ETOO_MANY while another user subscribes. */
static void
test_limits_per_user(void **state)
{
    fy_ferryd_t *d = *state;
    s_site_t site;
    s_site(d, &site,
           (const char *const[]){"fast",
                                 "publish = >\nconsume = >\nadmin = >\nmax-publish-rate = 16K\n"
                                 "max-consumers = 2\n",
                                 "other", "publish = >\nconsume = >\nadmin = >\n", NULL});
    const char *srvpub = site.srvpub, *fast = site.keys[0], *other = site.keys[1];
    assert_int_equal(fy_ferryd_start(d), 0);
    ferry_status_t st;
    ferry_client_t *f = s_login(d->endpoint, srvpub, NULL, NULL, fast, &st);
    assert_int_equal(st, FERRY_OK);
    ferry_client_t *o = s_login(d->endpoint, srvpub, NULL, NULL, other, &st);
    assert_int_equal(st, FERRY_OK);
    assert_int_equal(ferry_client_declare(f, FERRY_KIND_TOPIC, "t", NULL, NULL, NULL), FERRY_OK);
    static char kib[1024];
    memset(kib, 'k', sizeof kib);
    ferry_message_t m = {.data = kib, .len = sizeof kib};
    /* 16 KiB a second, a second's worth at once: about 15 of 1 KiB. */
    int ok = 0;
    st = FERRY_OK;
    while (ok < 200 && (st = ferry_client_publish(f, "t", &m, NULL)) == FERRY_OK)
        ok++;
    assert_int_equal(st, FERRY_ERATE);
    assert_true(ok >= 10 && ok <= 40);
    assert_non_null(strstr(ferry_client_last_error(f), "over its max-publish-rate"));
    for (int i = 0; i < 100; i++) /* the other user is not slowed */
        assert_int_equal(ferry_client_publish(o, "t", &m, NULL), FERRY_OK);
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(o, "t", &info), FERRY_OK);
    assert_int_equal(info.messages, (uint64_t)ok + 100); /* nothing of the refused stored */
    fy_sleep_ms(1100);                                   /* the budget refills: a second's worth */
    assert_int_equal(ferry_client_publish(f, "t", &m, NULL), FERRY_OK);
    /* Two push consumers, not three; the other user's are its own. */
    assert_int_equal(ferry_client_subscribe(f, "t", NULL, 10, s_ignore, NULL, NULL), FERRY_OK);
    assert_int_equal(ferry_client_subscribe(f, "t", NULL, 10, s_ignore, NULL, NULL), FERRY_OK);
    assert_int_equal(ferry_client_subscribe(f, "t", NULL, 10, s_ignore, NULL, NULL),
                     FERRY_ETOO_MANY);
    assert_non_null(strstr(ferry_client_last_error(f), "max-consumers"));
    assert_int_equal(ferry_client_subscribe(o, "t", NULL, 10, s_ignore, NULL, NULL), FERRY_OK);
    assert_true(fy_ferryd_log_count(d, "msg=\"over its rate\"") >= 1);
    ferry_client_destroy(&f);
    ferry_client_destroy(&o);
    fy_ferryd_signal(d, SIGTERM);
    fy_rmtree(site.dir);
}

/* Subscriptions belong to the user who declared them: another user who may
 * consume the topic still cannot fetch, ack, push or redeclare them (a user
 * with admin on the topic may); a queue's subscription is the queue's.
 * max-connections: a user's connections beyond it are refused ETOO_MANY
 * until one of the others closes; other users are not counted. */
static void
test_subscriptions_and_connections_per_user(void **state)
{
    fy_ferryd_t *d = *state;
    char cmd[400], out[64];
    s_site_t site;
    s_site(d, &site,
           (const char *const[]){"own", "publish = orders.>\nconsume = orders.>\n", "peer",
                                 "consume = orders.>\nmax-connections = 2\n", "boss",
                                 "consume = orders.>\nadmin = orders.>\n", "ops", "admin = >\n",
                                 NULL});
    const char *srvpub = site.srvpub, *own = site.keys[0], *peer = site.keys[1],
               *boss = site.keys[2], *ops = site.keys[3];
    d->extra[4] = "--metrics";
    d->extra[5] = "127.0.0.1:0";
    assert_int_equal(fy_ferryd_start(d), 0);
    ferry_status_t st;
    ferry_client_t *o = s_login(d->endpoint, srvpub, NULL, NULL, own, &st);
    assert_int_equal(st, FERRY_OK);
    ferry_client_t *o2 = s_login(d->endpoint, srvpub, NULL, NULL, own, &st);
    assert_int_equal(st, FERRY_OK);
    ferry_client_t *p = s_login(d->endpoint, srvpub, NULL, NULL, peer, &st);
    assert_int_equal(st, FERRY_OK);
    ferry_client_t *b = s_login(d->endpoint, srvpub, NULL, NULL, boss, &st);
    assert_int_equal(st, FERRY_OK);
    assert_int_equal(ferry_client_declare(b, FERRY_KIND_TOPIC, "orders.eu", NULL, NULL, NULL),
                     FERRY_OK);
    assert_int_equal(ferry_client_declare(b, FERRY_KIND_QUEUE, "orders.q", NULL, NULL, NULL),
                     FERRY_OK);
    /* A listing shows each user what it may publish, consume or administer:
     * own sees the orders, not billing; ops (admin on >) sees all three. */
    ferry_client_t *x = s_login(d->endpoint, srvpub, NULL, NULL, ops, &st);
    assert_int_equal(st, FERRY_OK);
    assert_int_equal(ferry_client_declare(x, FERRY_KIND_TOPIC, "billing", NULL, NULL, NULL),
                     FERRY_OK);
    ferry_topic_info_t list[8];
    size_t nt;
    bool more;
    assert_int_equal(ferry_client_topics(o, NULL, list, 8, &nt, &more), FERRY_OK);
    assert_int_equal(nt, 2);
    assert_false(more);
    assert_string_equal(list[0].name, "orders.eu");
    assert_string_equal(list[1].name, "orders.q");
    assert_int_equal(ferry_client_topics(o, NULL, list, 1, &nt, &more), FERRY_OK);
    assert_int_equal(nt, 1);
    assert_true(more); /* a page of one that sees more */
    assert_int_equal(ferry_client_topics(x, NULL, list, 8, &nt, &more), FERRY_OK);
    assert_int_equal(nt, 3);
    assert_string_equal(list[0].name, "billing");
    ferry_client_destroy(&x);
    assert_int_equal(ferry_client_sub_declare(o, "orders.eu", "mine", NULL, NULL), FERRY_OK);
    ferry_message_t m = {.data = "o1", .len = 2};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ferry_client_publish(o, "orders.eu", &m, NULL), FERRY_OK);
        assert_int_equal(ferry_client_publish(o, "orders.q", &m, NULL), FERRY_OK);
    }

    /* peer may consume orders.>, but "mine" is own's. */
    const ferry_stored_message_t *msgs;
    size_t n;
    assert_int_equal(ferry_client_fetch(p, "orders.eu", "mine", 10, 0, &msgs, &n),
                     FERRY_EFORBIDDEN);
    assert_non_null(strstr(ferry_client_last_error(p),
                           "user peer may not fetch subscription mine of orders.eu: it belongs "
                           "to user own"));
    uint64_t one = 1;
    assert_int_equal(ferry_client_ack(p, "orders.eu", "mine", &one, 1), FERRY_EFORBIDDEN);
    assert_int_equal(ferry_client_nack(p, "orders.eu", "mine", 1, 0), FERRY_EFORBIDDEN);
    assert_int_equal(ferry_client_sub_declare(p, "orders.eu", "mine", NULL, NULL),
                     FERRY_EFORBIDDEN);
    ferry_sub_info_t si;
    assert_int_equal(ferry_client_sub_info(p, "orders.eu", "mine", &si), FERRY_EFORBIDDEN);
    assert_int_equal(ferry_client_subscribe(p, "orders.eu", "mine", 10, s_ignore, NULL, NULL),
                     FERRY_EFORBIDDEN);
    /* Nothing of that moved the subscription: its owner gets all three, on
     * any of its connections. */
    assert_int_equal(ferry_client_sub_info(o2, "orders.eu", "mine", &si), FERRY_OK);
    assert_int_equal(si.cursor, 1);
    assert_int_equal(ferry_client_fetch(o2, "orders.eu", "mine", 10, 1000, &msgs, &n), FERRY_OK);
    assert_int_equal(n, 3);
    uint64_t seqs[3] = {msgs[0].seq, msgs[1].seq, msgs[2].seq};
    assert_int_equal(ferry_client_ack(o, "orders.eu", "mine", seqs, 3), FERRY_OK);
    /* admin on the topic may use any of its subscriptions. */
    assert_int_equal(ferry_client_sub_info(b, "orders.eu", "mine", &si), FERRY_OK);
    assert_int_equal(si.ack_floor, 3);
    /* Deleting one: not another user's (peer), its owner's or an admin's. */
    assert_int_equal(ferry_client_sub_declare(o, "orders.eu", "spare", NULL, NULL), FERRY_OK);
    assert_int_equal(ferry_client_sub_delete(p, "orders.eu", "spare"), FERRY_EFORBIDDEN);
    assert_non_null(strstr(ferry_client_last_error(p), "it belongs to user own"));
    assert_int_equal(ferry_client_sub_delete(b, "orders.eu", "spare"), FERRY_OK);
    assert_int_equal(ferry_client_sub_declare(o, "orders.eu", "spare", NULL, NULL), FERRY_OK);
    assert_int_equal(ferry_client_sub_delete(o, "orders.eu", "spare"), FERRY_OK);
    /* peer's own subscription, and the queue's, which is the queue's. */
    assert_int_equal(ferry_client_sub_declare(p, "orders.eu", "theirs", NULL, NULL), FERRY_OK);
    assert_int_equal(ferry_client_fetch(p, "orders.eu", "theirs", 10, 1000, &msgs, &n), FERRY_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ferry_client_fetch(o, "orders.eu", "theirs", 10, 0, &msgs, &n),
                     FERRY_EFORBIDDEN);
    assert_int_equal(ferry_client_fetch(p, "orders.q", "", 10, 1000, &msgs, &n), FERRY_OK);
    assert_int_equal(n, 3);

    /* max-connections = 2 for peer: p is one; a second is served, a third
     * refused on every request, own's three connections are not counted. */
    ferry_client_t *p2 = s_login(d->endpoint, srvpub, NULL, NULL, peer, &st);
    assert_int_equal(st, FERRY_OK);
    assert_int_equal(ferry_client_ping(p2), FERRY_OK);
    ferry_client_t *p3 = s_login(d->endpoint, srvpub, NULL, NULL, peer, &st);
    if (p3) /* the client's hello may be refused already */
        assert_int_equal(ferry_client_ping(p3), FERRY_ETOO_MANY);
    else
        assert_int_equal(st, FERRY_ETOO_MANY);
    assert_int_equal(ferry_client_ping(p), FERRY_OK);
    assert_int_equal(ferry_client_ping(o2), FERRY_OK);
    assert_true(fy_ferryd_log_count(d, "msg=\"over its connections\"") >= 1);
    /* One closes: the third is served (the broker hears of the close
     * asynchronously, so its requests are tried until then). */
    ferry_client_destroy(&p2);
    if (!p3) {
        p3 = s_login(d->endpoint, srvpub, NULL, NULL, peer, &st);
        assert_non_null(p3);
    }
    long long until = fy_now_ms() + 5000;
    while ((st = ferry_client_ping(p3)) == FERRY_ETOO_MANY && fy_now_ms() < until)
        fy_sleep_ms(20);
    assert_int_equal(st, FERRY_OK);
    assert_int_equal(ferry_client_ping(p), FERRY_OK);
    /* Both refusals are counted (the endpoint's snapshot is at most 500 ms old). */
    static char body[65536];
    snprintf(cmd, sizeof cmd, "grep -o 'url=http://127.0.0.1:[0-9]*' '%s' | tail -1 | cut -d: -f3",
             d->log_path);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    const char *oc = NULL;
    until = fy_now_ms() + 5000;
    do {
        fy_sleep_ms(100);
        assert_int_equal(ferry_client_ping(p), FERRY_OK); /* a turn of the broker's loop */
        assert_int_equal(fy_http(atoi(out), "GET", "/metrics", body, sizeof body), 0);
        oc = strstr(body, "\nferry_over_connections_total ");
        assert_non_null(oc);
    } while (atoi(oc + strlen("\nferry_over_connections_total ")) < 1 && fy_now_ms() < until);
    assert_true(atoi(oc + strlen("\nferry_over_connections_total ")) >= 1);
    const char *fb = strstr(body, "\nferry_forbidden_total ");
    assert_non_null(fb);
    assert_true(atoi(fb + strlen("\nferry_forbidden_total ")) >= 7);
    ferry_client_destroy(&p3);
    ferry_client_destroy(&p);
    ferry_client_destroy(&o);
    ferry_client_destroy(&o2);
    ferry_client_destroy(&b);
    fy_ferryd_signal(d, SIGTERM);
    fy_rmtree(site.dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_curve, fy_ferryd_state_new, fy_ferryd_state_free),
        cmocka_unit_test_setup_teardown(test_users, fy_ferryd_state_new, fy_ferryd_state_free),
        cmocka_unit_test_setup_teardown(test_relay_as_a_user, fy_ferryd_state_new,
                                        fy_ferryd_state_free),
        cmocka_unit_test_setup_teardown(test_limits_per_user, fy_ferryd_state_new,
                                        fy_ferryd_state_free),
        cmocka_unit_test_setup_teardown(test_subscriptions_and_connections_per_user,
                                        fy_ferryd_state_new, fy_ferryd_state_free),
    };
    if (getenv("FERRY_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("security", tests, NULL, NULL);
}
