/* SPDX-License-Identifier: MIT */
/*
 * config.h - ferry-relay's settings: one set per source, from flags or an
 * INI file ([relay] for what every source shares, [source NAME] per source),
 * read with inih (Debian libinih-dev).
 */
#ifndef FR_CONFIG_H
#define FR_CONFIG_H

#include <stddef.h>

#include "relay.h"

/** A source's settings and the storage its strings point into. */
typedef struct fr_source_cfg {
    fr_config_t cfg;
    char source[1100]; /* KIND:LOCATION as given */
    char table[65], name[201], rename_from[201], broker[1025], tmpl[256], dlq[256], slot[64],
        publication[64], server_key[1100], client_key[1100], user[65], password_file[1100];
    char metrics[64]; /* --metrics HOST:PORT (the process's: the first source's counts) */
} fr_source_cfg_t;

/** Sets defaults (broker from $FERRY_SERVER, table outbox, ...). */
void fr_config_defaults(fr_source_cfg_t *c);
/** Applies one setting (a flag without its "--", or an INI key).
 *  @return FERRY_OK, or FERRY_EINVAL with a sentence in err. */
fy_status_t fr_config_set(fr_source_cfg_t *c, const char *key, const char *value, fy_err_t *err);
/** Checks a source's settings and resolves its kind; fills in the name.
 *  @return FERRY_OK, or FERRY_EINVAL with a sentence in err. */
fy_status_t fr_config_finish(fr_source_cfg_t *c, fy_err_t *err);

/** Reads an INI file: [relay] settings become the defaults of every
 *  [source NAME] section, each one source (at most @p max), into *n.
 *  @return FERRY_OK, or FERRY_EINVAL / FERRY_EIO (unreadable) with a
 *  sentence in err. */
fy_status_t fr_config_load(const char *path, const fr_source_cfg_t *defaults, fr_source_cfg_t **out,
                           size_t max, size_t *n, fy_err_t *err);

#endif
