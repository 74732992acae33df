/* SPDX-License-Identifier: MIT */
/*
 * main.c - ferryd: parse the configuration, open the broker, run the loop
 * until SIGTERM or SIGINT, then finish the batch in hand and exit 0.
 */
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <string.h>

#include "broker.h"
#include "log.h"
#include "options.h"

static volatile sig_atomic_t s_stop, s_reload;

static void
s_on_signal(int sig)
{
    if (sig == SIGHUP)
        s_reload = 1;
    else
        s_stop = 1;
}

int
main(int argc, char **argv)
{
    fy_config_t cfg;
    fy_err_t err = {0};
    switch (fy_options_parse(argc, argv, &cfg, &err)) {
    case FY_OPTIONS_HELP:
    case FY_OPTIONS_VERSION:
    case FY_OPTIONS_CHECKED:
        return 0;
    case FY_OPTIONS_ERROR:
        fprintf(stderr, "ferryd: %s\n", err.msg);
        return 2;
    case FY_OPTIONS_RUN:
        break;
    }
    fy_log_t log = {.level = cfg.log_level, .out = stderr};

    /* No SA_RESTART: the signal interrupts zmq_poll so the loop sees s_stop. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL); /* read the users file again */
    signal(SIGPIPE, SIG_IGN);

    /* Every client is a socket: take the hard limit of open files, as
     * servers do (the soft one is often 1,024). */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rlim_t soft = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            fy_log(&log, FY_LOG_INFO, "main", "open files limit raised", "from=%llu to=%llu",
                   (unsigned long long)soft, (unsigned long long)rl.rlim_max);
    }

    fy_broker_t *broker;
    if (fy_broker_new(&cfg, &log, &broker, &err) != FERRY_OK) {
        fy_log(&log, FY_LOG_ERROR, "main", "cannot start", "code=%s detail=\"%s\"",
               fy_status_name(err.code), err.msg);
        return 1;
    }
    fy_status_t st = fy_broker_run(broker, &s_stop, &s_reload);
    fy_broker_destroy(&broker);
    fy_log(&log, FY_LOG_INFO, "main", "stopped", "code=%s", fy_status_name(st));
    return st == FERRY_OK ? 0 : 1;
}
