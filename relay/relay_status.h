/* SPDX-License-Identifier: MIT */
/*
 * relay_status.h - a relay's reports to the broker: every FR_STATUS_MS, where it
 * stands (fr_relay_report_t) is published to the topic `_ferry.relay`
 * (made with an hour's retention), keyed by the source's name, its numbers
 * as headers and as one logfmt line of payload, so that `ferry top` and
 * dashboards see every relay without reaching its metrics endpoint
 * (docs/outbox.md). Its own connection, not ordered: a refused report never
 * fences the relay's rows. Reports are sent without waiting; their answers
 * are taken at the next one. The relay's thread only.
 */
#ifndef FR_RELAY_STATUS_H
#define FR_RELAY_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay.h"

#define FR_STATUS_TOPIC "_ferry.relay"
#define FR_STATUS_MS    5000

typedef struct fr_status fr_status_t;

/** A reporter for the relay of @p cfg named @p name (copied); connects when
 *  it first sends. NULL: out of memory. */
fr_status_t *fr_status_new(const fr_config_t *cfg, const char *name);

/** Sends @p rep (without waiting) and takes the answers of earlier reports.
 *  @return true when reporting went from working to failing or back:
 *  @p note (a logfmt detail) and *failing say which, for the relay's log. */
bool fr_status_send(fr_status_t *self, const fr_relay_report_t *rep, char *note, size_t cap,
                    bool *failing);

/** Reports the broker refused or never answered, since start. */
uint64_t fr_status_failed(const fr_status_t *self);

/** Closes its connection and frees (NULL accepted). */
void fr_status_free(fr_status_t **self);

#endif
