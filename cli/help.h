/* SPDX-License-Identifier: MIT */
/*
 * help.h - what `ferry --help`, `ferry help CMD` and `ferry CMD --help` say:
 * one table of the commands, each with its synopsis, its flags and an
 * example; the flags a command accepts are checked against it, so an
 * unknown one is named as unknown.
 */
#ifndef FY_CLI_HELP_H
#define FY_CLI_HELP_H

#include <stdbool.h>
#include <stdio.h>

typedef struct fy_cli_help {
    const char *name;     /**< "pub" */
    const char *synopsis; /**< what follows "ferry " */
    const char *summary;  /**< one line */
    const char *flags;    /**< lines "--flag ARG\ttext"; NULL: none */
    const char *example;  /**< a whole command line */
} fy_cli_help_t;

/** The command @p name, or NULL. */
const fy_cli_help_t *fy_cli_help_find(const char *name);

/** `ferry CMD --help`: synopsis, summary, flags, example. */
void fy_cli_help_print(FILE *out, const fy_cli_help_t *h);

/** `ferry --help`: every command's synopsis and summary, the global flags. */
void fy_cli_usage(FILE *out);

/** True if @p h lists @p flag ("--key"). */
bool fy_cli_help_accepts(const fy_cli_help_t *h, const char *flag);

#endif /* FY_CLI_HELP_H */
