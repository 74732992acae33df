/* SPDX-License-Identifier: MIT */
/*
 * ferry_status.h - the status codes of libferry and of the wire protocol,
 * listed once. Installed, and included by ferry.h; the broker and the codec
 * include it too (through proto/status.h), since the numbers travel on the
 * wire as the `code` of an error reply. Standard headers only.
 */
#ifndef FERRY_STATUS_H
#define FERRY_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define FERRY_EXPORT __attribute__((visibility("default")))
#else
#define FERRY_EXPORT
#endif

/**
 * The status list: X(name, number, short name, message).
 * Numbers are stable and travel on the wire as the `code` of an error reply.
 */
#define FERRY_STATUS_LIST(X)                                                                 \
    X(FERRY_OK, 0, "OK", "success")                                                          \
    X(FERRY_EPROTO, 1, "EPROTO", "malformed request: not a valid msgpack envelope")          \
    X(FERRY_EVERSION, 2, "EVERSION", "unsupported protocol version")                         \
    X(FERRY_EUNKNOWN_OP, 3, "EUNKNOWN_OP", "unknown operation")                              \
    X(FERRY_EFIELD, 4, "EFIELD", "missing or invalid field")                                 \
    X(FERRY_EFRAMES, 5, "EFRAMES", "wrong number of frames for this operation")              \
    X(FERRY_ENOTFOUND, 6, "ENOTFOUND", "no such topic or queue")                             \
    X(FERRY_EEXISTS, 7, "EEXISTS", "exists already with a different kind")                   \
    X(FERRY_EINVALID_NAME, 8, "EINVALID_NAME", "invalid name")                               \
    X(FERRY_ETOO_LARGE, 9, "ETOO_LARGE", "message exceeds the maximum size")                 \
    X(FERRY_ESTORAGE_FULL, 10, "ESTORAGE_FULL", "storage is full")                           \
    X(FERRY_EINTERNAL, 11, "EINTERNAL", "internal error")                                    \
    X(FERRY_ENOMEM, 12, "ENOMEM", "out of memory")                                           \
    X(FERRY_ETIMEOUT, 13, "ETIMEOUT", "timed out")                                           \
    X(FERRY_ECONNECT, 14, "ECONNECT", "cannot reach the broker")                             \
    X(FERRY_EWOULD_BLOCK, 15, "EWOULD_BLOCK", "operation would block")                       \
    X(FERRY_EINVAL, 16, "EINVAL", "invalid argument")                                        \
    X(FERRY_EIO, 17, "EIO", "storage i/o error")                                             \
    X(FERRY_ECLOSED, 18, "ECLOSED", "connection closed")                                     \
    X(FERRY_EFORMAT, 19, "EFORMAT", "unsupported data format version")                       \
    X(FERRY_ESHUTDOWN, 20, "ESHUTDOWN", "broker is shutting down: nothing applied, resend")  \
    X(FERRY_ETOO_MANY, 21, "ETOO_MANY", "too many items in one request")                     \
    X(FERRY_ESEQ, 22, "ESEQ", "sequence was not delivered to this subscription")             \
    X(FERRY_ELIMIT, 23, "ELIMIT", "topic limit reached: publish refused")                    \
    X(FERRY_ECONFLICT, 24, "ECONFLICT", "expected sequence or key version did not match")    \
    X(FERRY_ENOREPLY, 25, "ENOREPLY", "no reply within the timeout")                         \
    X(FERRY_EDISCONNECTED, 26, "EDISCONNECTED", "not connected and the buffer is full")      \
    X(FERRY_ECANCELLED, 27, "ECANCELLED", "the handler refused: nothing was recorded")       \
    X(FERRY_EIDREUSED, 28, "EIDREUSED",                                                      \
      "message id already used for a different message: nothing stored")                     \
    X(FERRY_EFENCED, 29, "EFENCED",                                                          \
      "an earlier publish of this connection was refused: send this one again after it")     \
    X(FERRY_EFORBIDDEN, 30, "EFORBIDDEN", "the user may not do this on this topic")          \
    X(FERRY_EAUTH, 31, "EAUTH",                                                              \
      "the broker refused this client's key at the handshake (unknown key, wrong password)") \
    X(FERRY_ERATE, 32, "ERATE",                                                              \
      "the user is over its publish rate: nothing stored; send again a little later")        \
    X(FERRY_ENOTLEADER, 33, "ENOTLEADER",                                                    \
      "this node does not lead the cluster: nothing applied; send it to the leader")         \
    X(FERRY_ELEADER_LOST, 34, "ELEADER_LOST",                                                \
      "the leader lost its lead before a quorum had this: it may be stored or not; send it " \
      "again (with its id) to the new leader")

#define FERRY_STATUS_ENUM_(name, num, sname, text) name = num,
/** Status of every fallible call; also the error codes of the wire protocol. */
typedef enum ferry_status { FERRY_STATUS_LIST(FERRY_STATUS_ENUM_) } ferry_status_t;
#undef FERRY_STATUS_ENUM_

/** @brief One sentence describing @p status; never NULL. */
FERRY_EXPORT const char *ferry_strerror(int status);
/** @brief The short name of @p status ("ENOTFOUND"); "EUNKNOWN" for unknown numbers. */
FERRY_EXPORT const char *ferry_errname(int status);

#ifdef __cplusplus
}
#endif
#endif /* FERRY_STATUS_H */
