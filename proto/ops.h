/* SPDX-License-Identifier: MIT */
/*
 * ops.h - the operations of the wire protocol, listed once. Each row gives
 * the op's enum name, its wire name and what kind of op it is; the codec's
 * names, the broker's "is this a write" and "does it name a subscription",
 * and (later) permission checks all derive from this table. A new op is a
 * new row here, its fields in request.c, its handler in the broker and its
 * section in docs/protocol.md. Tables are static const; no state.
 */
#ifndef FY_OPS_H
#define FY_OPS_H

#include <stdbool.h>

#include "bytes.h"

/** Kinds of op (the third column). */
enum {
    FY_OPF_WRITE = 1u << 0,    /**< changes the store: refused while storage is full */
    FY_OPF_SUB = 1u << 1,      /**< names a subscription of a topic (or a queue's own) */
    FY_OPF_PAYLOADS = 1u << 2, /**< may be followed by payload frames */
    FY_OPF_ADMIN = 1u << 3,    /**< changes what exists: declare, delete */
    FY_OPF_CONSUMER = 1u << 4, /**< acts on a push consumer of the connection */
    FY_OPF_GROWS = 1u << 5,    /**< adds data: refused while the disk is full (acks and
                                    deletes, which free space, go on) */
};

/** X(ENUM, "wire name", flags) */
#define FY_OP_LIST(X)                                                                \
    X(HELLO, "hello", 0)                                                             \
    X(PING, "ping", 0)                                                               \
    X(DECLARE, "declare", FY_OPF_WRITE | FY_OPF_ADMIN | FY_OPF_GROWS)                \
    X(DELETE, "delete", FY_OPF_WRITE | FY_OPF_ADMIN)                                 \
    X(INFO, "info", 0)                                                               \
    X(PUBLISH, "publish", FY_OPF_WRITE | FY_OPF_PAYLOADS | FY_OPF_GROWS)             \
    X(PUBLISH_BATCH, "publish_batch", FY_OPF_WRITE | FY_OPF_PAYLOADS | FY_OPF_GROWS) \
    X(GET, "get", 0)                                                                 \
    X(STATS, "stats", 0)                                                             \
    X(SUB_DECLARE, "sub_declare", FY_OPF_WRITE | FY_OPF_GROWS)                       \
    X(FETCH, "fetch", FY_OPF_WRITE | FY_OPF_SUB)                                     \
    X(ACK, "ack", FY_OPF_WRITE | FY_OPF_SUB)                                         \
    X(NACK, "nack", FY_OPF_WRITE | FY_OPF_SUB)                                       \
    X(TERM, "term", FY_OPF_WRITE | FY_OPF_SUB)                                       \
    X(PROGRESS, "progress", FY_OPF_WRITE | FY_OPF_SUB)                               \
    X(SUB_INFO, "sub_info", FY_OPF_SUB)                                              \
    X(SUBSCRIBE, "subscribe", FY_OPF_CONSUMER)                                       \
    X(CREDIT, "credit", FY_OPF_CONSUMER)                                             \
    X(UNSUBSCRIBE, "unsubscribe", FY_OPF_CONSUMER)                                   \
    X(READ, "read", 0)                                                               \
    X(TOPICS, "topics", 0)                                                           \
    X(SUBS, "subs", 0)                                                               \
    X(SUB_DELETE, "sub_delete", FY_OPF_WRITE | FY_OPF_SUB | FY_OPF_ADMIN)            \
    X(PURGE, "purge", FY_OPF_WRITE | FY_OPF_ADMIN)                                   \
    X(EDIT, "edit", FY_OPF_WRITE | FY_OPF_ADMIN)                                     \
    X(SEEK, "seek", FY_OPF_WRITE | FY_OPF_SUB)                                       \
    X(CLUSTER, "cluster", 0)                                                         \
    X(NODE_ADD, "node_add", FY_OPF_ADMIN)                                            \
    X(NODE_REMOVE, "node_remove", FY_OPF_ADMIN)                                      \
    X(BACKUP, "backup", FY_OPF_ADMIN)

#define FY_OP_ENUM_(e, name, flags) FY_OP_##e,
typedef enum fy_op { FY_OP_LIST(FY_OP_ENUM_) FY_OP_COUNT_ } fy_op_t;
#undef FY_OP_ENUM_

/** Wire name of @p op ("publish"); "?" if out of range. */
const char *fy_op_name(fy_op_t op);
/** FY_OPF_* bits of @p op; 0 if out of range. */
unsigned fy_op_flags(fy_op_t op);
/** True if @p op has every bit of @p flag. */
static inline bool
fy_op_is(fy_op_t op, unsigned flag)
{
    return (fy_op_flags(op) & flag) == flag;
}
/** The op whose wire name is @p name. @return false if there is none. */
bool fy_op_lookup(fy_bytes_t name, fy_op_t *op);

#endif /* FY_OPS_H */
