/* SPDX-License-Identifier: MIT */
/*
 * shopcheck.h - the checker of examples/order_saga.c's participants: reads
 * their LMDB store ("shop") and proves that each order is either done
 * (reserved, charged its amount, shipped - each once) or compensated
 * (reserved then released, never charged, never shipped), and that each
 * command's work and each compensation ran at most once.
 */
#ifndef FY_SHOPCHECK_H
#define FY_SHOPCHECK_H

#include <stdbool.h>
#include <stddef.h>

/** The amount order-@p i is charged (as examples/order_saga.c). */
long fy_shop_amount(long i);

/** Checks orders order-0 .. order-(@p orders - 1) in the store at @p dir;
 *  @p shipping false: no order may be shipped. @return how many are done,
 *  or -1 with the first broken promise in @p why. */
long fy_shop_check(const char *dir, long orders, bool shipping, char *why, size_t cap);

#endif
