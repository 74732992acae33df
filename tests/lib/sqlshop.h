/* SPDX-License-Identifier: MIT */
/*
 * sqlshop.h - examples/order_saga_sql as a running shop, for its tests and
 * `make demo`: a PostgreSQL server (pgserver.h) with databases orders,
 * inventory and payment, shipping on SQLite (and the orders too, if asked),
 * the three participants and the order service as processes, and one
 * ferry-relay per outbox, against a ferryd at a given endpoint.
 */
#ifndef FY_SQLSHOP_H
#define FY_SQLSHOP_H

#include <stdbool.h>

#include "pgserver.h"

/* The processes, by index. */
enum { FY_SHOP_INVENTORY, FY_SHOP_PAYMENT, FY_SHOP_SHIPPING, FY_SHOP_ORDERS, FY_SHOP_PROCS };

typedef struct fy_sqlshop {
    fy_pg_t pg;
    char endpoint[256];
    char db[FY_SHOP_PROCS][400]; /* each service's database: pg:... or sqlite:... */
    char bin[400], orders_n[16];
    char log[FY_SHOP_PROCS][400];
    int pid[FY_SHOP_PROCS];
    int relay[FY_SHOP_PROCS]; /* the relay of each service's outbox */
} fy_sqlshop_t;

/** Starts everything for @p orders orders (the order service on PostgreSQL
 *  when @p orders_on_pg, else on SQLite). @return 0, or -1 with a message. */
int fy_sqlshop_start(fy_sqlshop_t *s, const char *endpoint, bool orders_on_pg, int orders);
/** kill -9s process @p which (FY_SHOP_*) and starts it again. @return its wait
 *  status: not killed by the signal if it had ended first (not restarted then). */
int fy_sqlshop_kill_restart(fy_sqlshop_t *s, int which);
/** The same for the relay of @p which's outbox. */
void fy_sqlshop_kill_relay(fy_sqlshop_t *s, int which);
/** A count from @p which's database (-1 if the query fails). */
long fy_sqlshop_count(const fy_sqlshop_t *s, int which, const char *sql);
/** Stops the participants and relays (SIGTERM) and the database server. */
void fy_sqlshop_stop(fy_sqlshop_t *s);

#endif
