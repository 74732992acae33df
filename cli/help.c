/* SPDX-License-Identifier: MIT */
/*
 * help.c - the commands' help (help.h).
 */
#include "help.h"

#include <string.h>

#include "wire_limits.h"

#define S_RAW                                                                   \
    "--raw\tprint payloads as they are (by default escaped for the terminal)\n" \
    "--hex\tprint payloads as a hex dump (offset, bytes, ASCII)\n"              \
    "--json\tone JSON object per message (data, or data_base64 when not UTF-8)\n"

static const fy_cli_help_t s_cmds[] = {
    {"keygen", "keygen PREFIX",
     "write a CURVE key pair: PREFIX.key (secret, mode 600) and PREFIX.pub", NULL,
     "ferry keygen /etc/ferry/broker"},
    {"passwd", "[--server-key KEY|@FILE] passwd USER",
     "print USER's users-file entry: the key derived from the password ($FERRY_PASSWORD or "
     "stdin) and the server's key",
     NULL, "FERRY_PASSWORD=s3cret ferry --server-key @broker.pub passwd alice"},
    {"declare", "declare topic|queue NAME [FLAGS]", "create a destination, or check it exists",
     "--dedupe-window-ms N\tdrop a message whose id was seen within N ms\n"
     "--max-msgs N\tkeep at most N messages\n"
     "--max-bytes N\tkeep at most N bytes of messages\n"
     "--max-age-ms N\tdrop messages older than N ms\n"
     "--discard old|new\tat a limit, drop the oldest (default) or refuse new ones\n"
     "--interest\tdrop a message once every subscription acked it\n",
     "ferry declare queue jobs --max-msgs 100000 --discard new"},
    {"edit", "edit TOPIC|QUEUE [FLAGS]",
     "change a destination's limits or dedupe window (lower limits drop the oldest when it "
     "discards old)",
     "--max-msgs N\tkeep at most N messages (0: no limit)\n"
     "--max-bytes N\tkeep at most N bytes (0: no limit)\n"
     "--max-age-ms N\tdrop messages older than N ms (0: no limit)\n"
     "--discard old|new\tat a limit, drop the oldest or refuse new ones\n"
     "--dedupe-window-ms N\tthe dedupe window (0: the broker's default)\n"
     "--interest\tnot changeable (an error that says so)\n",
     "ferry edit orders --max-msgs 1000000 --max-age-ms 604800000"},
    {"purge", "purge TOPIC|QUEUE [--keep N | --seq-below S]",
     "remove the oldest messages: all, all but the newest N, or those below sequence S",
     "--keep N\tkeep the newest N\n"
     "--seq-below S\tremove those with a sequence below S\n",
     "ferry purge orders --keep 1000"},
    {"seek", "seek TOPIC SUB --seq N | --time T [--json]",
     "move a subscription: the next message it delivers is sequence N, or the first stored at "
     "or after time T; those before count as acked, those after come again",
     "--seq N\tthe next sequence to deliver\n"
     "--time T\tms since the epoch or YYYY-MM-DDTHH:MM:SSZ\n"
     "--json\twhere it stands, as one JSON object\n",
     "ferry seek orders billing --time 2026-12-05T09:00:00Z"},
    {"delete", "delete NAME", "delete a topic or queue and its messages", NULL,
     "ferry delete jobs"},
    {"info", "info NAME", "show a topic or queue: messages, bytes, sequences, limits", NULL,
     "ferry info orders"},
    {"pub", "pub TOPIC [DATA|-] [FLAGS]",
     "publish one message (DATA, or standard input with - or nothing) and wait for the confirm",
     "--key K\tthe message's key (order and versions per key)\n"
     "--id ID\tits id: a second publish with it is a duplicate, stored once\n"
     "--header NAME=VALUE\ta header (again for more)\n"
     "--expect-version V\tstore it only if the key is at version V (0: new)\n"
     "--expect-last-seq S\tstore it only if the topic's last sequence is S\n"
     "--delay-ms N\tdeliver it N ms after it is stored\n"
     "--not-before TIME\tdeliver it from TIME on\n",
     "ferry pub orders '{\"id\":42}' --key order-42 --id order-42-placed"},
    {"read", "read TOPIC KEY [FLAGS]", "print one key's messages in order",
     "--from VERSION\tstart at this version of the key\n"
     "--count N\tat most N messages\n" S_RAW,
     "ferry read orders order-42"},
    {"request", "request TOPIC [DATA|-] [FLAGS]", "send a request and print the reply",
     "--timeout MS\twait this long for the reply (default 5000)\n"
     "--header NAME=VALUE\ta header (again for more)\n"
     "--raw\tprint the reply as it is (by default escaped for the terminal)\n"
     "--hex\tprint the reply as a hex dump\n",
     "ferry request prices.quote '{\"sku\":\"book\"}' --timeout 2000"},
    {"reply", "reply TOPIC|QUEUE --exec CMD [FLAGS]",
     "answer requests: CMD gets each request on its standard input, its output is the reply",
     "--exec CMD\tthe command (run through /bin/sh)\n"
     "--durable NAME\tserve through this subscription (on a topic)\n"
     "--count N\tstop after N requests\n",
     "ferry reply upper --exec 'tr a-z A-Z'"},
    {"get", "get TOPIC [FLAGS]", "print stored messages (consumes nothing)",
     "--from SEQ\tstart at this sequence (default 1)\n"
     "--count N\tat most N messages (default 10)\n" S_RAW,
     "ferry get orders --from 100 --count 5"},
    {"peek", "peek TOPIC|QUEUE [FLAGS]", "the same as get: look, consume nothing",
     "--from SEQ\tstart at this sequence (default 1)\n"
     "--count N\tat most N messages (default 10)\n" S_RAW,
     "ferry peek jobs"},
    {"sub", "sub TOPIC|QUEUE [FLAGS]", "consume by push and print each message",
     "--durable NAME\tthrough this durable subscription (made if missing)\n"
     "--from first|new|SEQ|TIME\twhere a new subscription starts\n"
     "--ack-wait-ms N\tredeliver what is not acked within N ms\n"
     "--max-deliver N\tdead-letter a message after N deliveries\n"
     "--filter PATTERN\tonly keys matching the pattern\n"
     "--count N\tstop after N messages\n"
     "--wait-ms N\tstop after N ms without a message\n"
     "--no-ack\tprint without acking\n"
     "--declare-only\tmake the subscription and exit\n" S_RAW,
     "ferry sub orders --durable billing --from first --count 10"},
    {"fetch", "fetch TOPIC|QUEUE [NAME] [FLAGS]", "consume by pull: print, then ack",
     "--count N\tat most N messages (default 10)\n"
     "--wait-ms N\twait up to N ms for the first\n"
     "--no-ack\tprint without acking (they come again after the ack wait)\n" S_RAW,
     "ferry fetch jobs --count 100 --wait-ms 1000"},
    {"ack", "ack TOPIC|QUEUE NAME SEQ...", "ack fetched messages (NAME \"\" for a queue)", NULL,
     "ferry ack jobs \"\" 17 18"},
    {"nack", "nack TOPIC|QUEUE NAME SEQ [FLAGS]", "give a fetched message back for redelivery",
     "--delay-ms N\tredeliver it after N ms\n", "ferry nack jobs \"\" 17 --delay-ms 5000"},
    {"sub-delete", "sub-delete TOPIC NAME",
     "delete a topic's subscription with its acks and pending messages (its owner, or admin)", NULL,
     "ferry sub-delete orders old-billing"},
    {"sub-info", "sub-info TOPIC|QUEUE [NAME]",
     "where a subscription stands (also: sub info TOPIC|QUEUE [NAME])", NULL,
     "ferry sub-info orders billing"},
    {"dlq", "dlq list|replay TOPIC [FLAGS]",
     "list TOPIC.dlq with its headers, or publish it back to TOPIC",
     "--from SEQ\tlist from this sequence\n"
     "--count N\tat most N messages\n" S_RAW,
     "ferry dlq list jobs"},
    {"saga",
     "saga list DEF [STATE|any] [OLDER_THAN] | show DEF ID | cancel ORCH ID [REASON] | "
     "retry ORCH ID",
     "sagas through the broker: where each stands (OLDER_THAN: 1h, 10m...), one's "
     "transitions, ask an orchestrator to compensate one now or resume a FAILED one",
     NULL, "ferry saga list order running 1h"},
    {"topics", "topics [--json]",
     "list the topics and queues: kind, messages, bytes, sequences, limits",
     "--json\tone JSON object per line, for scripts\n", "ferry topics --json"},
    {"subs", "subs TOPIC|QUEUE [--json]",
     "list a topic's subscriptions: cursor, ack floor, waiting, push consumers attached",
     "--json\tone JSON object per line, for scripts\n", "ferry subs orders"},
    {"stats", "stats", "the broker's counters", NULL, "ferry stats"},
    {"top", "top [--once] [--interval-ms N]",
     "a live view of the broker: its counters and per topic messages, bytes, publish rate, "
     "subscriptions, the largest backlog, dead letters (s: sort, q: quit)",
     "--once\tprint one frame as text and exit\n"
     "--interval-ms N\trefresh every N ms (default 1000)\n",
     "ferry top"},
    {"cluster", "cluster status [--json] | add ID HOST:PORT | remove ID",
     "where a cluster stands, from its leader: term, indexes, each voter's lag and whether it "
     "is heard from (exit 1 if one is not, or for a single ferryd); add a node started with "
     "ferryd --join HOST:PORT, or remove one",
     "--json\tone JSON object, for scripts\n", "ferry --server 10.0.0.1:5555 cluster status"},
    {"backup", "backup DIR",
     "the broker copies its store into the new directory DIR on its host (a relative DIR is "
     "taken from here): everything confirmed so far, which ferryd --data DIR opens",
     NULL, "ferry backup /var/backups/ferry/2026-12-05"},
    {"ping", "ping", "check the broker answers", NULL, "ferry --server 10.0.0.5:5555 ping"},
};

const fy_cli_help_t *
fy_cli_help_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof s_cmds / sizeof s_cmds[0]; i++)
        if (strcmp(s_cmds[i].name, name) == 0)
            return &s_cmds[i];
    return NULL;
}

/* The flags' lines, "FLAG ARG\ttext", aligned. */
static void
s_flags(FILE *out, const char *flags)
{
    for (const char *p = flags; p && *p;) {
        const char *tab = strchr(p, '\t'), *nl = strchr(p, '\n');
        if (!tab || !nl || tab > nl)
            break;
        fprintf(out, "  %-28.*s %.*s\n", (int)(tab - p), p, (int)(nl - tab - 1), tab + 1);
        p = nl + 1;
    }
}

void
fy_cli_help_print(FILE *out, const fy_cli_help_t *h)
{
    fprintf(out, "usage: ferry %s\n\n%s.\n", h->synopsis, h->summary);
    if (h->flags) {
        fprintf(out, "\nFlags:\n");
        s_flags(out, h->flags);
    }
    fprintf(out, "\nExample:\n  %s\n\nGlobal flags (before the command): ferry --help\n",
            h->example);
}

void
fy_cli_usage(FILE *out)
{
    fprintf(out, "usage: ferry [--server EP] [--server-key KEY|@FILE] [--timeout MS] COMMAND "
                 "[ARGS]\n\nCommands (ferry help COMMAND, or ferry COMMAND --help, for its "
                 "flags and an example):\n");
    for (size_t i = 0; i < sizeof s_cmds / sizeof s_cmds[0]; i++)
        fprintf(out, "  %-10s %s\n", s_cmds[i].name, s_cmds[i].summary);
    fprintf(out,
            "\nGlobal flags:\n"
            "  --server EP                  the broker: HOST:PORT or tcp://HOST:PORT (default\n"
            "                               $FERRY_SERVER or " FY_DEFAULT_ENDPOINT ")\n"
            "  --server-key KEY|@FILE       the broker's CURVE key ($FERRY_SERVER_KEY)\n"
            "  --timeout MS                 each call's limit (default 5000)\n"
            "  --version                    the version\n"
            "\nOn a broker with users: $FERRY_USER and $FERRY_PASSWORD log in (with the server's\n"
            "key); a password is never taken from the command line.\n"
            "TIME is ms since the Unix epoch or YYYY-MM-DDTHH:MM:SSZ.\n"
            "What get, peek, read, fetch, sub, request and dlq list print is escaped for the\n"
            "terminal: control characters and bytes that are not UTF-8 become \\xNN (a\n"
            "payload keeps its newlines and tabs); --raw prints payloads as they are, --hex\n"
            "as a hex dump.\n"
            "Exit codes: 0 ok, 1 refused by the broker (ECONFLICT: an expectation failed),\n"
            "2 usage, 3 broker unreachable or no reply in time.\n");
}

bool
fy_cli_help_accepts(const fy_cli_help_t *h, const char *flag)
{
    size_t n = strlen(flag);
    for (const char *p = h->flags; p && *p;) {
        const char *nl = strchr(p, '\n');
        if (!nl)
            break;
        if (strncmp(p, flag, n) == 0 && (p[n] == ' ' || p[n] == '\t'))
            return true;
        p = nl + 1;
    }
    return false;
}
