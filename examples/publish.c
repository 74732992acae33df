/* SPDX-License-Identifier: MIT */
/*
 * publish.c - a complete libferry program: connect, declare a topic, publish
 * one message with a confirm, then 1000 through the async window.
 *
 *   build/examples/publish [ENDPOINT]
 */
#include <stdio.h>
#include <string.h>

#include "ferry.h"

static void
on_confirm(ferry_client_t *client, const ferry_confirm_t *cf, void *user)
{
    (void)client;
    size_t *confirmed = user;
    if (cf->status == FERRY_OK)
        (*confirmed)++;
    else
        fprintf(stderr, "publish refused: %s\n", ferry_strerror(cf->status));
}

int
main(int argc, char **argv)
{
    ferry_options_t *opts = ferry_options_new();
    if (!opts)
        return 1;
    if (argc > 1 && ferry_options_set_server(opts, argv[1]) != FERRY_OK) {
        fprintf(stderr, "bad endpoint\n");
        ferry_options_destroy(&opts);
        return 2;
    }
    ferry_client_t *c = NULL;
    ferry_status_t st = ferry_client_new(opts, &c);
    ferry_options_destroy(&opts);
    if (st != FERRY_OK) {
        fprintf(stderr, "cannot connect: %s\n", ferry_strerror(st));
        return 3;
    }
    st = ferry_client_declare(c, FERRY_KIND_TOPIC, "examples.orders", NULL, NULL, NULL);
    if (st != FERRY_OK) {
        fprintf(stderr, "declare: %s\n", ferry_client_last_error(c));
        ferry_client_destroy(&c);
        return 1;
    }
    ferry_header_t hdrs[] = {{"type", "OrderPlaced"}};
    ferry_message_t m = {.data = "{\"order\":7}",
                         .len = 11,
                         .key = "order-7",
                         .id = "example:order-7:placed",
                         .headers = hdrs,
                         .header_count = 1};
    ferry_confirm_t cf;
    st = ferry_client_publish(c, "examples.orders", &m, &cf);
    if (st == FERRY_OK)
        printf("stored as seq %llu%s\n", (unsigned long long)cf.seq,
               cf.duplicate ? " (seen before)" : "");

    size_t confirmed = 0;
    char body[32];
    for (int i = 0; i < 1000 && st == FERRY_OK; i++) {
        int len = snprintf(body, sizeof body, "event %d", i);
        ferry_message_t e = {.data = body, .len = (size_t)len};
        st = ferry_client_publish_async(c, "examples.orders", &e, on_confirm, &confirmed);
    }
    if (st == FERRY_OK)
        st = ferry_client_flush(c, 10000);
    printf("%zu async publishes confirmed\n", confirmed);
    ferry_client_destroy(&c);
    return st == FERRY_OK ? 0 : 1;
}
