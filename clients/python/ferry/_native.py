# SPDX-License-Identifier: MIT
"""libferry through ctypes: the library, its structs and its functions.

Every guarantee (resend with ids, reconnects, heartbeats, CURVE, leader
redirects) lives in libferry; this module only describes its C API
(include/ferry.h) to Python. The library is $FERRY_LIBRARY if set (a build
tree's, for tests), else the installed libferry.so.0.
"""
import ctypes
import os
from ctypes import (CFUNCTYPE, POINTER, Structure, c_bool, c_char, c_char_p, c_int,
                    c_size_t, c_uint, c_uint32, c_uint64, c_void_p)

NAME_MAX = 255


def _load():
    path = os.environ.get("FERRY_LIBRARY") or "libferry.so.0"
    try:
        return ctypes.CDLL(path)
    except OSError as e:
        raise ImportError(
            f"ferry: cannot load {path} ({e}); install libferry (make install) or set "
            "FERRY_LIBRARY to a build's libferry.so.0") from e


lib = _load()


class Header(Structure):
    _fields_ = [("name", c_char_p), ("value", c_char_p)]


class Message(Structure):
    _fields_ = [("data", c_void_p), ("len", c_size_t), ("key", c_char_p), ("id", c_char_p),
                ("headers", POINTER(Header)), ("header_count", c_size_t), ("expect", c_uint),
                ("expect_last_seq", c_uint64), ("expect_key_version", c_uint64),
                ("not_before_ms", c_uint64), ("delay_ms", c_uint64)]


class Confirm(Structure):
    _fields_ = [("status", c_int), ("seq", c_uint64), ("duplicate", c_bool),
                ("key_version", c_uint64)]


class TopicConfig(Structure):
    _fields_ = [("dedupe_window_ms", c_uint64), ("max_msgs", c_uint64), ("max_bytes", c_uint64),
                ("max_age_ms", c_uint64), ("discard_new", c_bool), ("interest", c_bool)]


class TopicInfo(Structure):
    _fields_ = [("name", c_char * (NAME_MAX + 1)), ("kind", c_int), ("first_seq", c_uint64),
                ("last_seq", c_uint64), ("messages", c_uint64), ("bytes", c_uint64),
                ("dedupe_window_ms", c_uint64), ("created_ms", c_uint64), ("max_msgs", c_uint64),
                ("max_bytes", c_uint64), ("max_age_ms", c_uint64), ("discard_new", c_bool),
                ("interest", c_bool)]


class Stats(Structure):
    _fields_ = [(n, c_uint64) for n in ("topics", "messages", "bytes", "publishes", "duplicates",
                                        "commits", "requests", "errors", "uptime_ms", "map_size",
                                        "map_used")]


class StoredMessage(Structure):
    _fields_ = [("topic", c_char_p), ("seq", c_uint64), ("timestamp_ms", c_uint64),
                ("delivery_count", c_uint32), ("key_version", c_uint64), ("key", c_char_p),
                ("id", c_char_p), ("headers", POINTER(Header)), ("header_count", c_size_t),
                ("data", c_void_p), ("len", c_size_t)]


class TopicEdit(Structure):
    _fields_ = [("set", c_uint), ("dedupe_window_ms", c_uint64), ("max_msgs", c_uint64),
                ("max_bytes", c_uint64), ("max_age_ms", c_uint64), ("discard_new", c_bool)]


EDIT_DEDUPE_WINDOW, EDIT_MAX_MSGS, EDIT_MAX_BYTES, EDIT_MAX_AGE, EDIT_DISCARD = 1, 2, 4, 8, 16


class SubListing(Structure):
    _fields_ = [("name", c_char * (NAME_MAX + 1)), ("filter", c_char * (NAME_MAX + 1)),
                ("owner", c_char * (NAME_MAX + 1)), ("cursor", c_uint64), ("ack_floor", c_uint64),
                ("last_seq", c_uint64), ("ack_wait_ms", c_uint64), ("created_ms", c_uint64),
                ("max_deliver", c_uint32), ("consumers", c_uint32)]


class SubInfo(Structure):
    _fields_ = [("cursor", c_uint64), ("ack_floor", c_uint64), ("last_seq", c_uint64),
                ("ack_wait_ms", c_uint64), ("max_deliver", c_uint32)]


class SubConfig(Structure):
    _fields_ = [("start", c_char_p), ("start_seq", c_uint64), ("start_time_ms", c_uint64),
                ("ack_wait_ms", c_uint64), ("max_deliver", c_uint32), ("filter", c_char_p)]


class ClusterNode(Structure):
    _fields_ = [("id", c_uint64), ("address", c_char * 64), ("match_index", c_uint64),
                ("lag", c_uint64), ("up", c_bool), ("voter", c_bool)]


class Cluster(Structure):
    _fields_ = [("leader_id", c_uint64), ("term", c_uint64), ("commit_index", c_uint64),
                ("applied_index", c_uint64), ("last_index", c_uint64), ("elections", c_uint64),
                ("snapshots", c_uint64), ("nnodes", c_size_t), ("nodes", ClusterNode * 9)]


BATCH_MAX = 1000  # FERRY_BATCH_MAX

CONFIRM_FN = CFUNCTYPE(None, c_void_p, POINTER(Confirm), c_void_p)
MSG_FN = CFUNCTYPE(c_int, c_void_p, POINTER(StoredMessage), c_void_p)
SERVE_FN = CFUNCTYPE(c_int, c_void_p, POINTER(StoredMessage), POINTER(Message), c_void_p)
REPLY_FN = CFUNCTYPE(None, c_void_p, c_int, POINTER(StoredMessage), c_void_p)
MSG_ACK, MSG_NACK, MSG_KEEP, MSG_NACK_LATER = 0, 1, 2, 3

KIND_TOPIC = 1
KIND_QUEUE = 2
EXPECT_LAST_SEQ = 0x1
EXPECT_KEY_VERSION = 0x2


def _fn(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


P = c_void_p  # opaque pointers: options, client, iterator
status = c_int

options_new = _fn("ferry_options_new", P)
options_destroy = _fn("ferry_options_destroy", None, POINTER(P))
options_set_server = _fn("ferry_options_set_server", status, P, c_char_p)
options_add_server = _fn("ferry_options_add_server", status, P, c_char_p)
options_set_name = _fn("ferry_options_set_name", status, P, c_char_p)
options_set_timeout_ms = _fn("ferry_options_set_timeout_ms", status, P, c_int)
options_set_window = _fn("ferry_options_set_window", status, P, c_size_t)
options_set_server_key = _fn("ferry_options_set_server_key", status, P, c_char_p)
options_set_client_key = _fn("ferry_options_set_client_key", status, P, c_char_p)
options_set_credentials = _fn("ferry_options_set_credentials", status, P, c_char_p, c_char_p)
options_set_retry_connect = _fn("ferry_options_set_retry_connect", status, P, c_bool)
options_set_block_on_full = _fn("ferry_options_set_block_on_full", status, P, c_bool)

client_new = _fn("ferry_client_new", status, P, POINTER(P))
client_destroy = _fn("ferry_client_destroy", None, POINTER(P))
client_last_error = _fn("ferry_client_last_error", c_char_p, P)
client_fd = _fn("ferry_client_fd", status, P, POINTER(c_int))
client_next_timeout_ms = _fn("ferry_client_next_timeout_ms", c_int, P)
client_ping = _fn("ferry_client_ping", status, P)
client_declare = _fn("ferry_client_declare", status, P, c_int, c_char_p, POINTER(TopicConfig),
                     POINTER(TopicInfo), POINTER(c_bool))
client_delete = _fn("ferry_client_delete", status, P, c_char_p)
client_info = _fn("ferry_client_info", status, P, c_char_p, POINTER(TopicInfo))
client_topics = _fn("ferry_client_topics", status, P, c_char_p, POINTER(TopicInfo), c_size_t,
                    POINTER(c_size_t), POINTER(c_bool))
client_subs = _fn("ferry_client_subs", status, P, c_char_p, c_char_p, POINTER(SubListing),
                  c_size_t, POINTER(c_size_t), POINTER(c_bool))
client_edit = _fn("ferry_client_edit", status, P, c_char_p, POINTER(TopicEdit), POINTER(TopicInfo))
client_purge = _fn("ferry_client_purge", status, P, c_char_p, c_uint64, c_uint64,
                   POINTER(c_uint64))
client_sub_info = _fn("ferry_client_sub_info", status, P, c_char_p, c_char_p, POINTER(SubInfo))
client_sub_seek = _fn("ferry_client_sub_seek", status, P, c_char_p, c_char_p, c_uint64, c_uint64,
                      POINTER(SubInfo))
client_sub_delete = _fn("ferry_client_sub_delete", status, P, c_char_p, c_char_p)
client_backup = _fn("ferry_client_backup", status, P, c_char_p)
client_stats = _fn("ferry_client_stats", status, P, POINTER(Stats))
client_publish = _fn("ferry_client_publish", status, P, c_char_p, POINTER(Message),
                     POINTER(Confirm))
client_publish_async = _fn("ferry_client_publish_async", status, P, c_char_p, POINTER(Message),
                           CONFIRM_FN, c_void_p)
client_poll = _fn("ferry_client_poll", status, P, c_int)
client_flush = _fn("ferry_client_flush", status, P, c_int)
client_in_flight = _fn("ferry_client_in_flight", c_size_t, P)
client_get = _fn("ferry_client_get", status, P, c_char_p, c_uint64, c_uint32,
                 POINTER(POINTER(StoredMessage)), POINTER(c_size_t))
client_sub_declare = _fn("ferry_client_sub_declare", status, P, c_char_p, c_char_p,
                         POINTER(SubConfig), POINTER(c_bool))
client_fetch = _fn("ferry_client_fetch", status, P, c_char_p, c_char_p, c_uint32, c_int,
                   POINTER(POINTER(StoredMessage)), POINTER(c_size_t))
client_ack = _fn("ferry_client_ack", status, P, c_char_p, c_char_p, POINTER(c_uint64), c_size_t)
client_nack = _fn("ferry_client_nack", status, P, c_char_p, c_char_p, c_uint64, c_uint64)
client_term = _fn("ferry_client_term", status, P, c_char_p, c_char_p, c_uint64, c_char_p)
client_subscribe = _fn("ferry_client_subscribe", status, P, c_char_p, c_char_p, c_uint32, MSG_FN,
                       c_void_p, POINTER(c_uint64))
client_serve = _fn("ferry_client_serve", status, P, c_char_p, c_char_p, c_uint32, SERVE_FN,
                   c_void_p, POINTER(c_uint64))
client_unsubscribe = _fn("ferry_client_unsubscribe", status, P, c_uint64)
client_read_key = _fn("ferry_client_read_key", status, P, c_char_p, c_char_p, c_uint64, c_uint32,
                      POINTER(P))
key_iter_next = _fn("ferry_key_iter_next", status, P, POINTER(POINTER(StoredMessage)))
key_iter_destroy = _fn("ferry_key_iter_destroy", None, POINTER(P))
client_request = _fn("ferry_client_request", status, P, c_char_p, POINTER(Message), c_int,
                     POINTER(POINTER(StoredMessage)))
client_request_async = _fn("ferry_client_request_async", status, P, c_char_p, POINTER(Message),
                           c_int, REPLY_FN, c_void_p)
client_publish_batch = _fn("ferry_client_publish_batch", status, P, c_char_p, POINTER(Message),
                           c_size_t, POINTER(Confirm))
client_cluster = _fn("ferry_client_cluster", status, P, POINTER(Cluster))
client_cluster_add = _fn("ferry_client_cluster_add", status, P, c_uint64, c_char_p)
client_cluster_remove = _fn("ferry_client_cluster_remove", status, P, c_uint64)
errname = _fn("ferry_errname", c_char_p, c_int)
strerror = _fn("ferry_strerror", c_char_p, c_int)
