/* SPDX-License-Identifier: MIT */
/*
 * args.c - a command's flags and arguments (args.h).
 */
#define _GNU_SOURCE /* strptime, timegm */
#include "args.h"
#include "print.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

bool
fy_cli_parse_u64(const char *text, uint64_t *out)
{
    if (!text || !*text || strspn(text, "0123456789") != strlen(text))
        return false;
    errno = 0;
    unsigned long long v = strtoull(text, NULL, 10);
    if (errno)
        return false;
    *out = v;
    return true;
}

/* A time: ms since the Unix epoch, or YYYY-MM-DDTHH:MM:SSZ. */
bool
fy_cli_parse_time(const char *v, uint64_t *ms)
{
    if (fy_cli_parse_u64(v, ms))
        return true;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(v, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end || (*end && strcmp(end, "Z") != 0))
        return false;
    *ms = (uint64_t)timegm(&tm) * 1000;
    return true;
}

/* Splits the words after the command into options and positional arguments.
 * Options may come anywhere; "-" is a positional argument (standard input). */
int
fy_cli_parse_args(const fy_cli_help_t *h, int argc, char **argv, fy_cli_opts_t *o, char **pos,
                  int *npos, int maxpos)
{
    for (int k = 0; k < argc; k++) {
        const char *a = argv[k];
        if (strncmp(a, "--", 2) != 0) {
            if (*npos == maxpos) {
                fprintf(stderr, "ferry: %s: too many arguments (ferry %s --help)\n", h->name,
                        h->name);
                return -1;
            }
            pos[(*npos)++] = argv[k];
            continue;
        }
        if (!fy_cli_help_accepts(h, a)) {
            fprintf(stderr, "ferry: %s: unknown option %s (ferry %s --help lists its flags)\n",
                    h->name, a, h->name);
            return -1;
        }
        if (strcmp(a, "--raw") == 0 || strcmp(a, "--hex") == 0) {
            o->payload = a[2] == 'r' ? FY_CLI_PAYLOAD_RAW : FY_CLI_PAYLOAD_HEX;
            continue;
        }
        if (strcmp(a, "--json") == 0) {
            o->json = true;
            continue;
        }
        if (strcmp(a, "--once") == 0) {
            o->once = true;
            continue;
        }
        if (strcmp(a, "--no-ack") == 0 || strcmp(a, "--interest") == 0 ||
            strcmp(a, "--declare-only") == 0) {
            if (a[2] == 'n')
                o->no_ack = true;
            else if (a[2] == 'i')
                o->interest = true, o->given |= FY_CLI_GIVEN_INTEREST;
            else
                o->declare_only = true;
            continue;
        }
        if (k + 1 >= argc) {
            fprintf(stderr, "ferry: %s wants a value\n", a);
            return -1;
        }
        const char *v = argv[++k];
        if (strcmp(a, "--key") == 0) {
            o->key = v;
        } else if (strcmp(a, "--id") == 0) {
            o->id = v;
        } else if (strcmp(a, "--header") == 0) {
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || o->nheaders == S_MAX_HEADERS) {
                fprintf(stderr, "ferry: --header wants name=value (at most %d)\n", S_MAX_HEADERS);
                return -1;
            }
            char *copy = strdup(v);
            if (!copy)
                return -1;
            copy[eq - v] = '\0';
            o->header_text[o->nheaders] = copy;
            o->headers[o->nheaders].name = copy;
            o->headers[o->nheaders].value = copy + (eq - v) + 1;
            o->nheaders++;
        } else if (strcmp(a, "--durable") == 0) {
            o->durable = v;
        } else if (strcmp(a, "--filter") == 0) {
            o->filter = v;
        } else if (strcmp(a, "--discard") == 0) {
            if (strcmp(v, "old") != 0 && strcmp(v, "new") != 0) {
                fprintf(stderr, "ferry: --discard wants old or new\n");
                return -1;
            }
            o->discard_new = v[0] == 'n';
            o->given |= FY_CLI_GIVEN_DISCARD;
        } else if (strcmp(a, "--max-msgs") == 0 || strcmp(a, "--max-bytes") == 0 ||
                   strcmp(a, "--max-age-ms") == 0) {
            uint64_t *dst = a[6] == 'm'   ? &o->max_msgs
                            : a[6] == 'b' ? &o->max_bytes
                                          : &o->max_age_ms;
            o->given |= a[6] == 'm'   ? FY_CLI_GIVEN_MAX_MSGS
                        : a[6] == 'b' ? FY_CLI_GIVEN_MAX_BYTES
                                      : FY_CLI_GIVEN_MAX_AGE;
            if (!fy_cli_parse_u64(v, dst)) {
                fprintf(stderr, "ferry: %s wants a number\n", a);
                return -1;
            }
        } else if (strcmp(a, "--from") == 0 && (!strcmp(v, "first") || !strcmp(v, "new"))) {
            o->from_word = v;
        } else if (strcmp(a, "--from") == 0 && strchr(v, 'T')) {
            /* An ISO 8601 UTC time: 2026-11-23T10:00:00Z (seconds). */
            if (!fy_cli_parse_time(v, &o->from_time_ms)) {
                fprintf(stderr, "ferry: --from wants first, new, a sequence or "
                                "YYYY-MM-DDTHH:MM:SSZ\n");
                return -1;
            }
        } else if (strcmp(a, "--not-before") == 0) {
            if (!fy_cli_parse_time(v, &o->not_before_ms)) {
                fprintf(stderr, "ferry: --not-before wants ms since the epoch or "
                                "YYYY-MM-DDTHH:MM:SSZ\n");
                return -1;
            }
        } else if (strcmp(a, "--exec") == 0) {
            o->exec = v;
        } else if (strcmp(a, "--expect-version") == 0 || strcmp(a, "--expect-last-seq") == 0 ||
                   strcmp(a, "--timeout") == 0) {
            bool ver = a[9] == 'v', last = a[9] == 'l';
            uint64_t *dst = ver ? &o->expect_version : last ? &o->expect_last : &o->timeout_ms;
            if (!fy_cli_parse_u64(v, dst) || (!ver && !last && (*dst == 0 || *dst > 3600000))) {
                fprintf(stderr, "ferry: %s wants a number\n", a);
                return -1;
            }
            o->expect |= ver ? FERRY_EXPECT_KEY_VERSION : last ? FERRY_EXPECT_LAST_SEQ : 0;
        } else if (strcmp(a, "--seq") == 0 || strcmp(a, "--time") == 0) {
            bool seq = a[2] == 's';
            if (seq ? !fy_cli_parse_u64(v, &o->seek_seq) || !o->seek_seq
                    : !fy_cli_parse_time(v, &o->seek_time_ms) || !o->seek_time_ms) {
                fprintf(stderr, "ferry: %s wants %s\n", a,
                        seq ? "a sequence above 0" : "ms since the epoch or YYYY-MM-DDTHH:MM:SSZ");
                return -1;
            }
        } else if (strcmp(a, "--keep") == 0 || strcmp(a, "--seq-below") == 0) {
            if (!fy_cli_parse_u64(v, a[2] == 'k' ? &o->keep : &o->seq_below) ||
                (a[2] == 's' && o->seq_below == 0)) {
                fprintf(stderr, "ferry: %s wants a number%s\n", a, a[2] == 's' ? " above 0" : "");
                return -1;
            }
        } else if (strcmp(a, "--dedupe-window-ms") == 0 || strcmp(a, "--from") == 0 ||
                   strcmp(a, "--count") == 0 || strcmp(a, "--ack-wait-ms") == 0 ||
                   strcmp(a, "--max-deliver") == 0 || strcmp(a, "--delay-ms") == 0 ||
                   strcmp(a, "--wait-ms") == 0 || strcmp(a, "--interval-ms") == 0) {
            o->given |= !strcmp(a, "--dedupe-window-ms") ? FY_CLI_GIVEN_DEDUPE : 0;
            uint64_t *dst = !strcmp(a, "--dedupe-window-ms") ? &o->dedupe_ms
                            : !strcmp(a, "--from")           ? &o->from
                            : !strcmp(a, "--count")          ? &o->count
                            : !strcmp(a, "--ack-wait-ms")    ? &o->ack_wait_ms
                            : !strcmp(a, "--max-deliver")    ? &o->max_deliver
                            : !strcmp(a, "--wait-ms")        ? &o->wait_ms
                            : !strcmp(a, "--interval-ms")    ? &o->interval_ms
                                                             : &o->delay_ms;
            if (!fy_cli_parse_u64(v, dst)) {
                fprintf(stderr, "ferry: %s wants a number\n", a);
                return -1;
            }
        } else { /* listed in help.c but not parsed here: a bug of ours */
            fprintf(stderr, "ferry: %s: option %s is not handled\n", h->name, a);
            return -1;
        }
    }
    return 0;
}

/* An existing topic declared again with a setting it does not have: each
 * difference said (the broker keeps the topic as it was). */
bool
fy_cli_declare_differs(const fy_cli_opts_t *o, const ferry_topic_info_t *in)
{
    static const struct {
        unsigned bit;
        const char *what;
    } keys[] = {{FY_CLI_GIVEN_DEDUPE, "dedupe-window-ms"}, {FY_CLI_GIVEN_MAX_MSGS, "max-msgs"},
                {FY_CLI_GIVEN_MAX_BYTES, "max-bytes"},     {FY_CLI_GIVEN_MAX_AGE, "max-age-ms"},
                {FY_CLI_GIVEN_DISCARD, "discard"},         {FY_CLI_GIVEN_INTEREST, "interest"}};
    uint64_t want[] = {o->dedupe_ms,  o->max_msgs,    o->max_bytes,
                       o->max_age_ms, o->discard_new, o->interest};
    uint64_t have[] = {in->dedupe_window_ms, in->max_msgs,    in->max_bytes,
                       in->max_age_ms,       in->discard_new, in->interest};
    bool differs = false;
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        if (!(o->given & keys[k].bit) || want[k] == have[k])
            continue;
        if (!differs)
            fprintf(stderr, "ferry: EEXISTS: %s exists with other settings (unchanged):\n",
                    in->name);
        differs = true;
        if (keys[k].bit == FY_CLI_GIVEN_DISCARD)
            fprintf(stderr, "  --discard: it has %s, not %s\n", have[k] ? "new" : "old",
                    want[k] ? "new" : "old");
        else if (keys[k].bit == FY_CLI_GIVEN_INTEREST)
            fprintf(stderr, "  --interest: it has no interest retention\n");
        else
            fprintf(stderr, "  --%s: it has %llu, not %llu\n", keys[k].what,
                    (unsigned long long)have[k], (unsigned long long)want[k]);
    }
    return differs;
}

void
fy_cli_opts_free(fy_cli_opts_t *o)
{
    for (size_t k = 0; k < o->nheaders; k++)
        free(o->header_text[k]);
    o->nheaders = 0;
}
