/* SPDX-License-Identifier: MIT */
/*
 * keys.c - ferry keygen and ferry passwd (keys.h).
 */
#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "ferry.h"

int
fy_cli_keygen(const char *prefix)
{
    char pub[41], sec[41], path[4096];
    if (ferry_curve_keypair(pub, sec) != FERRY_OK) {
        fprintf(stderr, "ferry: this libzmq has no CURVE (built without libsodium)\n");
        return 1;
    }
    snprintf(path, sizeof path, "%s.key", prefix);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f || fprintf(f, "%s\n", sec) < 0 || fclose(f) != 0) {
        fprintf(stderr, "ferry: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    memset(sec, 0, sizeof sec);
    snprintf(path, sizeof path, "%s.pub", prefix);
    f = fopen(path, "w");
    if (!f || fprintf(f, "%s\n", pub) < 0 || fclose(f) != 0) {
        fprintf(stderr, "ferry: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    printf("%s\n", pub);
    return 0;
}

/* One line of standard input, without echo on a terminal. */
static int
s_read_password(char *out, size_t cap)
{
    struct termios old, quiet;
    bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
    if (tty) {
        fprintf(stderr, "password: ");
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    bool got = fgets(out, (int)cap, stdin) != NULL;
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fprintf(stderr, "\n");
    }
    if (!got)
        return -1;
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

int
fy_cli_passwd(const char *user, const char *server_key)
{
    if (!server_key)
        server_key = getenv("FERRY_SERVER_KEY");
    if (!server_key || !*server_key) {
        fprintf(stderr, "ferry: passwd needs the server's key (--server-key KEY|@FILE or "
                        "FERRY_SERVER_KEY): the user's key is derived from it\n");
        return 2;
    }
    char password[1025];
    const char *env = getenv("FERRY_PASSWORD");
    if (env && *env)
        snprintf(password, sizeof password, "%s", env);
    else if (s_read_password(password, sizeof password) != 0)
        password[0] = '\0';
    if (!password[0]) {
        fprintf(stderr, "ferry: passwd: no password (FERRY_PASSWORD, or a line on stdin)\n");
        return 2;
    }
    char pub[41];
    ferry_status_t st = ferry_password_key(user, password, server_key, pub);
    memset(password, 0, sizeof password);
    if (st != FERRY_OK) {
        fprintf(stderr,
                "ferry: passwd: %s (a user name, and the server's key: 40 z85 "
                "characters or @FILE)\n",
                ferry_strerror(st));
        return st == FERRY_EINVAL ? 2 : 1;
    }
    printf("[%s]\nkey = %s\n", user, pub);
    return 0;
}
