/* SPDX-License-Identifier: MIT */
/*
 * passkey.c - a password user's CURVE key pair, derived on the client
 * (ferry_options_set_credentials, ferry_password_key): Argon2id (libsodium's
 * crypto_pwhash, interactive limits) turns the password into a 32-byte
 * seed, salted with a keyed BLAKE2b of the user name under the server's
 * public key (the same user on two brokers gets two keys); the seed makes a
 * Curve25519 pair (crypto_box_seed_keypair), which is what CURVE uses. The
 * broker's users file holds only the public half: it never sees the
 * password, and a stolen users file gives an attacker what a stolen
 * Argon2id hash would.
 */
#include "client_int.h"

#include "curvekey.h"

#include <sodium.h>
#include <string.h>
#include <zmq.h>

ferry_status_t
fy_cli_password_keypair(const char *user, const char *password, const char *server_z85,
                        char public_key[41], char secret_key[41])
{
    uint8_t server[32];
    if (!user || !*user || !password || !*password || !fy_curvekey_valid(server_z85) ||
        !zmq_z85_decode(server, server_z85) || sodium_init() < 0)
        return FERRY_EINVAL;
    uint8_t salt[crypto_pwhash_SALTBYTES];
    static const char ctx[] = "ferry password key v1:";
    crypto_generichash_state h;
    crypto_generichash_init(&h, server, sizeof server, sizeof salt);
    crypto_generichash_update(&h, (const uint8_t *)ctx, sizeof ctx - 1);
    crypto_generichash_update(&h, (const uint8_t *)user, strlen(user));
    crypto_generichash_final(&h, salt, sizeof salt);
    uint8_t seed[32], pk[crypto_box_PUBLICKEYBYTES], sk[crypto_box_SECRETKEYBYTES];
    if (crypto_pwhash(seed, sizeof seed, password, strlen(password), salt,
                      crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE,
                      crypto_pwhash_ALG_ARGON2ID13) != 0)
        return FERRY_ENOMEM; /* it could not get its memory */
    crypto_box_seed_keypair(pk, sk, seed);
    bool ok =
        zmq_z85_encode(public_key, pk, sizeof pk) && zmq_z85_encode(secret_key, sk, sizeof sk);
    sodium_memzero(seed, sizeof seed);
    sodium_memzero(sk, sizeof sk);
    return ok ? FERRY_OK : FERRY_EINVAL;
}

ferry_status_t
ferry_password_key(const char *user, const char *password, const char *server_key,
                   char public_key[41])
{
    if (!server_key || !public_key)
        return FERRY_EINVAL;
    char server[FY_CURVE_KEY_LEN + 1], secret[FY_CURVE_KEY_LEN + 1];
    fy_err_t err;
    ferry_status_t st = fy_curvekey_read(server_key, false, server, &err);
    if (st == FERRY_OK)
        st = fy_cli_password_keypair(user, password, server, public_key, secret);
    sodium_memzero(secret, sizeof secret);
    return st;
}
