/* SPDX-License-Identifier: MIT */
/*
 * relay_metrics.h - ferry-relay's HTTP endpoint (--metrics HOST:PORT,
 * docs/outbox.md): GET /metrics in the Prometheus text format, one set of
 * lines per source (label source), and GET /health. libmicrohttpd serves it
 * in its own thread; the relays' threads hand it their numbers
 * (fr_config_t.report) about once a second.
 */
#ifndef FR_RELAY_METRICS_H
#define FR_RELAY_METRICS_H

#include <stddef.h>

#include "relay.h"
#include "status.h"

typedef struct fr_metrics fr_metrics_t;

/** Serves on @p addr (an IPv4 address and a port; port 0 picks one) for
 *  @p nsources sources. @return FERRY_OK, or FERRY_EINVAL / FERRY_EIO with
 *  a sentence in @p err. */
fy_status_t fr_metrics_start(const char *addr, size_t nsources, fr_metrics_t **out, fy_err_t *err);
/** The port it listens on. */
unsigned fr_metrics_port(const fr_metrics_t *m);
/** The report hook of source @p i: pass fr_metrics_report as
 *  fr_config_t.report and this as its report_user. */
void *fr_metrics_slot(fr_metrics_t *m, size_t i);
void fr_metrics_report(void *slot, const fr_relay_report_t *rep);
/** Stops serving and frees (NULL accepted). */
void fr_metrics_stop(fr_metrics_t **m);

#endif
