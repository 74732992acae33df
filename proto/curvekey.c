/* SPDX-License-Identifier: MIT */
/*
 * curvekey.c - see curvekey.h.
 */
#include "curvekey.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

bool
fy_curvekey_valid(const char *z85)
{
    static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   ".-:+=^!/*?&<>()[]{}@%$#";
    if (!z85 || strlen(z85) != FY_CURVE_KEY_LEN)
        return false;
    for (size_t i = 0; i < FY_CURVE_KEY_LEN; i++)
        if (!strchr(alphabet, z85[i]))
            return false;
    return true;
}

fy_status_t
fy_curvekey_read(const char *spec, bool secret, char out[FY_CURVE_KEY_LEN + 1], fy_err_t *err)
{
    out[0] = '\0';
    if (!spec || !*spec)
        return fy_err_set(err, FERRY_EINVAL, "no key given");
    /* 40 z85 characters are the key itself, even one that begins with '@'
     * (z85 has it: one public key in 85 does). */
    if (fy_curvekey_valid(spec) && !secret) {
        memcpy(out, spec, FY_CURVE_KEY_LEN + 1);
        return FERRY_OK;
    }
    const char *path = spec[0] == '@' ? spec + 1 : spec;
    if (!secret && spec[0] != '@')
        return fy_err_set(err, FERRY_EINVAL,
                          "not a key: 40 z85 characters, or @FILE naming a key file");
    FILE *f = fopen(path, "r");
    if (!f)
        return fy_err_set(err, FERRY_EIO, "cannot read key file %s: %s", path, strerror(errno));
    struct stat sb;
    if (secret && fstat(fileno(f), &sb) == 0 && (sb.st_mode & 0077)) {
        fclose(f);
        return fy_err_set(err, FERRY_EINVAL,
                          "secret key file %s may be read by others (mode %04o): chmod 600 it",
                          path, (unsigned)(sb.st_mode & 07777));
    }
    char line[128] = "";
    bool got = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    if (!got || !fy_curvekey_valid(line))
        return fy_err_set(err, FERRY_EINVAL, "key file %s does not hold a z85 key (40 characters)",
                          path);
    memcpy(out, line, FY_CURVE_KEY_LEN + 1);
    return FERRY_OK;
}
