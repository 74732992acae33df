# SPDX-License-Identifier: MIT
"""Exceptions: one class per status a caller handles differently.

Every failure raises a FerryError (or a subclass) carrying the status's
number (`code`), its short name (`name`, as in docs/protocol.md) and the
broker's or libferry's sentence. Codes without a class of their own raise
FerryError itself.
"""
from . import _native


class FerryError(Exception):
    """A call failed: `code` (int), `name` ("ENOTFOUND"), and the reason."""

    def __init__(self, code, detail=""):
        self.code = code
        self.name = _native.errname(code).decode()
        self.detail = detail or _native.strerror(code).decode()
        super().__init__(f"{self.name}: {self.detail}")


class NotFoundError(FerryError):
    """No such topic, queue or subscription (ENOTFOUND)."""


class ExistsError(FerryError):
    """Exists already with a different kind, or a backup directory exists (EEXISTS)."""


class InvalidNameError(FerryError):
    """A topic or queue name breaks the rules (EINVALID_NAME)."""


class TooLargeError(FerryError):
    """The message exceeds the broker's maximum size (ETOO_LARGE)."""


class StorageFullError(FerryError):
    """The broker's storage or disk is full: nothing stored (ESTORAGE_FULL)."""


class LimitError(FerryError):
    """A topic at its limit with discard_new refused the publish (ELIMIT)."""


class ConflictError(FerryError):
    """An expectation failed (ECONFLICT): `current_seq` is the topic's last
    sequence and `current_version` the key's version as the broker has them."""

    def __init__(self, code, detail="", current_seq=0, current_version=0):
        super().__init__(code, detail)
        self.current_seq = current_seq
        self.current_version = current_version


class FerryTimeoutError(FerryError, TimeoutError):
    """The broker did not answer within the client's timeout (ETIMEOUT)."""


class NoReplyError(FerryError, TimeoutError):
    """A request got no reply within its timeout (ENOREPLY)."""


class ConnectError(FerryError, ConnectionError):
    """The broker cannot be reached (ECONNECT, ECLOSED, EDISCONNECTED)."""


class ForbiddenError(FerryError, PermissionError):
    """The user may not do this on this topic (EFORBIDDEN)."""


class AuthError(FerryError, PermissionError):
    """The broker refused this client's key or password (EAUTH)."""


class SeqError(FerryError):
    """An ack or nack of a sequence never delivered to the subscription (ESEQ)."""


class IdReusedError(FerryError):
    """The id is held by a different message within the dedupe window: two
    producers use one id for different messages (EIDREUSED); nothing stored."""


class InvalidError(FerryError, ValueError):
    """An argument libferry refuses (EINVAL, EFIELD)."""


_BY_NAME = {
    "ENOTFOUND": NotFoundError, "EEXISTS": ExistsError, "EINVALID_NAME": InvalidNameError,
    "ETOO_LARGE": TooLargeError, "ESTORAGE_FULL": StorageFullError, "ELIMIT": LimitError,
    "ECONFLICT": ConflictError, "ETIMEOUT": FerryTimeoutError, "ENOREPLY": NoReplyError,
    "ECONNECT": ConnectError, "ECLOSED": ConnectError, "EDISCONNECTED": ConnectError,
    "EFORBIDDEN": ForbiddenError, "EAUTH": AuthError, "ESEQ": SeqError, "EINVAL": InvalidError,
    "EFIELD": InvalidError, "EIDREUSED": IdReusedError,
}


def error_for(code, detail="", **extra):
    """The exception for status `code` (not raised)."""
    cls = _BY_NAME.get(_native.errname(code).decode(), FerryError)
    if cls is ConflictError:
        return cls(code, detail, **extra)
    return cls(code, detail)
