/* SPDX-License-Identifier: MIT */
/*
 * args.h - the words after `ferry COMMAND`: its flags (checked against the
 * command's help, help.h) and its positional arguments; numbers and times
 * as the CLI takes them.
 */
#ifndef FY_CLI_ARGS_H
#define FY_CLI_ARGS_H

#include <stdbool.h>
#include <stdint.h>

#include "ferry.h"
#include "help.h"

#define S_MAX_HEADERS 64

/* The declare flags given, so that an existing topic is compared on them. */
enum {
    FY_CLI_GIVEN_DEDUPE = 1,
    FY_CLI_GIVEN_MAX_MSGS = 2,
    FY_CLI_GIVEN_MAX_BYTES = 4,
    FY_CLI_GIVEN_MAX_AGE = 8,
    FY_CLI_GIVEN_DISCARD = 16,
    FY_CLI_GIVEN_INTEREST = 32
};

/* Command-local options: parsed after the command word. */
typedef struct {
    const char *key, *id;
    ferry_header_t headers[S_MAX_HEADERS];
    char *header_text[S_MAX_HEADERS];
    size_t nheaders;
    uint64_t dedupe_ms, from, count, ack_wait_ms, max_deliver, delay_ms, wait_ms;
    uint64_t max_msgs, max_bytes, max_age_ms;
    uint64_t keep, seq_below;        /* purge */
    uint64_t seek_seq, seek_time_ms; /* seek --seq N | --time T */
    bool once;                       /* top --once */
    uint64_t interval_ms;            /* top --interval-ms */
    bool discard_new, interest, declare_only;
    unsigned given;        /* FY_CLI_GIVEN_*: the declare flags on the command line */
    const char *from_word; /* --from first|new */
    const char *durable;   /* --durable NAME */
    const char *filter;    /* --filter PATTERN */
    uint64_t from_time_ms; /* --from 2026-11-23T10:00:00Z */
    bool no_ack;
    bool json;               /* --json: one JSON object per line */
    int payload;             /* FY_CLI_PAYLOAD_* (print.h): --raw, --hex; else escaped */
    unsigned expect;         /* FERRY_EXPECT_* given */
    uint64_t expect_version; /* --expect-version */
    uint64_t expect_last;    /* --expect-last-seq */
    uint64_t not_before_ms;  /* --not-before */
    uint64_t timeout_ms;     /* --timeout (request) */
    const char *exec;        /* --exec CMD (reply) */
} fy_cli_opts_t;

/** A decimal number (digits only). */
bool fy_cli_parse_u64(const char *text, uint64_t *out);

/** A time: ms since the Unix epoch, or YYYY-MM-DDTHH:MM:SSZ. */
bool fy_cli_parse_time(const char *v, uint64_t *ms);

/** Splits @p argv into the flags @p h's command takes (into @p o) and up to
 *  @p maxpos positional arguments. @return 0, or -1 (said on stderr). */
int fy_cli_parse_args(const fy_cli_help_t *h, int argc, char **argv, fy_cli_opts_t *o, char **pos,
                      int *npos, int maxpos);

/** True (each difference said on stderr) if existing topic @p in differs
 *  from the declare flags given in @p o. */
bool fy_cli_declare_differs(const fy_cli_opts_t *o, const ferry_topic_info_t *in);

/** Frees what parsing copied (the headers' text). */
void fy_cli_opts_free(fy_cli_opts_t *o);

#endif /* FY_CLI_ARGS_H */
