/* SPDX-License-Identifier: MIT */
/*
 * keys.h - the `ferry` commands that make keys, without a broker:
 * `ferry keygen PREFIX` (a CURVE key pair in files) and `ferry passwd USER`
 * (a password user's public key, for ferryd's users file). Each returns the
 * process exit code.
 */
#ifndef FY_CLI_KEYS_H
#define FY_CLI_KEYS_H

/** Writes PREFIX.key (the secret, 0600, never overwritten) and PREFIX.pub,
 *  and prints the public key. */
int fy_cli_keygen(const char *prefix);

/** Prints the users-file section of @p user: `[user]` and `key = ...`, the
 *  public key libferry derives from the password and the server's key
 *  (@p server_key: z85, @FILE, or NULL for $FERRY_SERVER_KEY). The password
 *  comes from $FERRY_PASSWORD or one line of standard input (not echoed on
 *  a terminal), never from the command line (where `ps` shows it). */
int fy_cli_passwd(const char *user, const char *server_key);

#endif
