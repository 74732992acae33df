/*
 * saga_cmd.c - `ferry saga show|cancel|retry` (saga_cmd.h).
 */
#include "saga_cmd.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define S_EXIT_REFUSED 1
#define S_EXIT_USAGE   2

/* One transition per line: when, what happened, where the saga went. */
static int
s_show(ferry_client_t *c, const char *def, const char *id)
{
    char topic[FERRY_NAME_MAX + 1];
    if ((size_t)snprintf(topic, sizeof topic, "_saga.%s", def) >= sizeof topic)
        return S_EXIT_USAGE;
    ferry_key_iter_t *it = NULL;
    ferry_status_t st = ferry_client_read_key(c, topic, id, 0, 0, &it);
    const ferry_stored_message_t *m;
    int n = 0;
    while (st == FERRY_OK && (st = ferry_key_iter_next(it, &m)) == FERRY_OK && m) {
        if (n++ == 0)
            printf("%-24s  %-11s  %-12s  %-16s  %-7s  %s\n", "TIME", "EVENT", "STATE", "STEP",
                   "ATTEMPT", "REASON");
        time_t secs = (time_t)(m->timestamp_ms / 1000);
        struct tm tm;
        char when[32] = "";
        if (gmtime_r(&secs, &tm))
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
        const char *reason = ferry_msg_header(m, "ferry-saga-reason");
        printf(
            "%s.%03uZ  %-11s  %-12s  %-16s  %-7s  %s\n", when, (unsigned)(m->timestamp_ms % 1000),
            ferry_msg_header(m, "event_type") ? ferry_msg_header(m, "event_type") : "?",
            ferry_msg_header(m, "ferry-saga-state") ? ferry_msg_header(m, "ferry-saga-state") : "?",
            ferry_msg_header(m, "ferry-saga-step") ? ferry_msg_header(m, "ferry-saga-step") : "?",
            ferry_msg_header(m, "ferry-saga-attempt") ? ferry_msg_header(m, "ferry-saga-attempt")
                                                      : "?",
            reason ? reason : "");
    }
    ferry_key_iter_destroy(&it);
    if (st != FERRY_OK) {
        fprintf(stderr, "ferry: %s: %s\n", ferry_errname(st),
                st == FERRY_ENOTFOUND ? "no saga of that definition was published"
                                      : ferry_client_last_error(c));
        return S_EXIT_REFUSED;
    }
    if (n == 0) {
        fprintf(stderr, "ferry: no transition of saga %s in %s\n", id, topic);
        return S_EXIT_REFUSED;
    }
    return 0;
}

/* Publishes a person's control message to orchestrator @p orch. */
static int
s_control(ferry_client_t *c, const char *what, const char *orch, const char *id, const char *reason)
{
    char topic[FERRY_NAME_MAX + 1];
    if ((size_t)snprintf(topic, sizeof topic, "saga.%s.replies", orch) >= sizeof topic)
        return S_EXIT_USAGE;
    ferry_header_t h[] = {{"ferry-saga-control", what}, {"ferry-saga-id", id}};
    ferry_message_t m = {
        .data = reason, .len = reason ? strlen(reason) : 0, .headers = h, .header_count = 2};
    ferry_status_t st = ferry_client_publish(c, topic, &m, NULL);
    if (st != FERRY_OK) {
        fprintf(stderr, "ferry: %s: %s\n", ferry_errname(st),
                st == FERRY_ENOTFOUND ? "no such orchestrator (its reply topic is missing)"
                                      : ferry_client_last_error(c));
        return S_EXIT_REFUSED;
    }
    printf("asked orchestrator %s to %s saga %s (ferry saga show DEF %s follows it)\n", orch, what,
           id, id);
    return 0;
}

int
fy_cli_saga(ferry_client_t *c, int npos, char **pos)
{
    if (npos >= 3 && strcmp(pos[0], "show") == 0 && npos == 3)
        return s_show(c, pos[1], pos[2]);
    if (npos >= 3 && strcmp(pos[0], "cancel") == 0 && npos <= 4)
        return s_control(c, "cancel", pos[1], pos[2], npos == 4 ? pos[3] : NULL);
    if (npos == 3 && strcmp(pos[0], "retry") == 0)
        return s_control(c, "resume", pos[1], pos[2], NULL);
    fprintf(stderr, "ferry: usage: ferry saga show DEF ID | cancel ORCH ID [REASON] | "
                    "retry ORCH ID\n");
    return S_EXIT_USAGE;
}
