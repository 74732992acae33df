# SPDX-License-Identifier: MIT
"""Ferry for Python: a client of ferryd over libferry (docs/python.md)."""
from .client import (KEEP, Client, ClusterNode, ClusterStatus, Confirm, Message, ReceivedMessage,
                     Responder, Subscription, TopicInfo)
from .errors import (AuthError, ConflictError, ConnectError, ExistsError, FerryError,
                     FerryTimeoutError, ForbiddenError, IdReusedError, InvalidError, InvalidNameError,
                     LimitError, NoReplyError, NotFoundError, SeqError, StorageFullError,
                     TooLargeError)

__version__ = "0.1.0"
__all__ = [
    "KEEP", "Client", "ClusterNode", "ClusterStatus", "Confirm", "Message", "ReceivedMessage", "Responder", "Subscription", "TopicInfo", "AuthError",
    "ConflictError", "ConnectError", "ExistsError", "FerryError", "FerryTimeoutError",
    "ForbiddenError", "IdReusedError", "InvalidError", "InvalidNameError", "LimitError", "NoReplyError",
    "NotFoundError", "SeqError", "StorageFullError", "TooLargeError",
]
