/* SPDX-License-Identifier: MIT */
/*
 * saga_int.h - what the orchestrator's core (saga.c) and its LMDB store
 * (saga_lmdb.c) share: the limits of names and ids, and the dedupe window
 * of the topics they declare.
 */
#ifndef FY_SAGA_INT_H
#define FY_SAGA_INT_H

#define FY_SAGA_ID_MAX    200         /* saga ids: 1-200 printable bytes */
#define FY_SAGA_NAME_MAX  63          /* definition, step and orchestrator names */
#define FY_SAGA_DEDUPE_MS 86400000ULL /* command queues, reply topic: a day of restarts */

#endif /* FY_SAGA_INT_H */
