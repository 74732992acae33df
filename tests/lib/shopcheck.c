/* SPDX-License-Identifier: MIT */
/*
 * shopcheck.c - the checker of order_saga's participants (see shopcheck.h).
 */
#include "shopcheck.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <lmdb.h>

#include "harness.h"

long
fy_shop_amount(long i)
{
    return i * 37 % 200 + 1;
}

/* The shop's counter "<what>:<id>" (0 when absent). */
static int64_t
s_shop(MDB_txn *txn, MDB_dbi dbi, const char *what, const char *id)
{
    char key[300];
    snprintf(key, sizeof key, "%s:%s", what, id);
    MDB_val k = {strlen(key), key}, v;
    int64_t n = 0;
    if (mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size == sizeof n)
        memcpy(&n, v.mv_data, sizeof n);
    return n;
}

static long
s_order(MDB_txn *txn, MDB_dbi dbi, long i, bool shipping, char *why, size_t cap)
{
    char id[32];
    snprintf(id, sizeof id, "order-%ld", i);
    static const char *const once[] = {"runs:u:reserve-stock", "runs:d:charge-payment",
                                       "runs:u:charge-payment", "runs:d:ship"};
    if (s_shop(txn, dbi, "runs:d:reserve-stock", id) != 1)
        return fy_why(why, cap, "%s: reserve-stock ran %lld times", id,
                      (long long)s_shop(txn, dbi, "runs:d:reserve-stock", id));
    for (size_t k = 0; k < sizeof once / sizeof once[0]; k++)
        if (s_shop(txn, dbi, once[k], id) > 1)
            return fy_why(why, cap, "%s: %s ran %lld times", id, once[k],
                          (long long)s_shop(txn, dbi, once[k], id));
    int64_t reserved = s_shop(txn, dbi, "reserved", id), charged = s_shop(txn, dbi, "charged", id);
    if (s_shop(txn, dbi, "shipped", id)) {
        if (!shipping || reserved != 1 || charged != fy_shop_amount(i) || fy_shop_amount(i) > 150)
            return fy_why(why, cap, "%s: shipped, reserved %lld, charged %lld of %ld", id,
                          (long long)reserved, (long long)charged, fy_shop_amount(i));
        return 1;
    }
    if (reserved != 0 || charged != 0 || s_shop(txn, dbi, "runs:u:reserve-stock", id) != 1)
        return fy_why(why, cap, "%s: not shipped, but reserved %lld, charged %lld", id,
                      (long long)reserved, (long long)charged);
    return 0;
}

long
fy_shop_check(const char *dir, long orders, bool shipping, char *why, size_t cap)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    if (mdb_env_create(&env) != 0)
        return fy_why(why, cap, "mdb_env_create");
    mdb_env_set_maxdbs(env, 8);
    if (mdb_env_open(env, dir, MDB_RDONLY, 0644) != 0 ||
        mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0) {
        mdb_env_close(env);
        return fy_why(why, cap, "cannot open the shop at %s", dir);
    }
    long done = 0;
    if (mdb_dbi_open(txn, "shop", 0, &dbi) != 0)
        done = fy_why(why, cap, "no shop database in %s", dir);
    for (long i = 0; i < orders && done >= 0; i++) {
        long r = s_order(txn, dbi, i, shipping, why, cap);
        done = r < 0 ? -1 : done + r;
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return done;
}
