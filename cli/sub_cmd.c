/* SPDX-License-Identifier: MIT */
/*
 * sub_cmd.c - `ferry seek` (sub_cmd.h).
 */
#include "sub_cmd.h"

#include <stdio.h>

int
fy_cli_seek(ferry_client_t *c, const char *topic, const char *sub, const fy_cli_opts_t *o)
{
    if (!o->seek_seq == !o->seek_time_ms) {
        fprintf(stderr, "ferry: seek wants --seq N or --time T, one of them (ferry seek --help)\n");
        return 2;
    }
    ferry_sub_info_t info;
    ferry_status_t st = ferry_client_sub_seek(c, topic, sub, o->seek_seq, o->seek_time_ms, &info);
    if (st) {
        fprintf(stderr, "ferry: %s: %s\n", ferry_errname(st), ferry_client_last_error(c));
        return st == FERRY_ENOTFOUND || st == FERRY_EFIELD || st == FERRY_EFORBIDDEN ? 1 : 3;
    }
    if (o->json)
        printf("{\"topic\":\"%s\",\"sub\":\"%s\",\"next\":%llu,\"ack_floor\":%llu,\"last\":%llu}\n",
               topic, sub, (unsigned long long)info.cursor, (unsigned long long)info.ack_floor,
               (unsigned long long)info.last_seq);
    else
        printf("next: %llu (acked up to %llu; the topic's last: %llu)\n",
               (unsigned long long)info.cursor, (unsigned long long)info.ack_floor,
               (unsigned long long)info.last_seq);
    return 0;
}
