"""Packing IMAP response data: atoms, quoted strings, literals, NIL, numbers and lists.

``pack`` renders nested Python values: ``None`` → NIL, ``int`` → number, ``Atom`` → as is,
``str``/``bytes`` → quoted string when safe, else a literal; ``list`` → parenthesized list;
``mime.Multipart`` → a multipart BODYSTRUCTURE (children without separating spaces).
"""

from __future__ import annotations

import re
import time
from typing import Any

from gk.mail.mailbox import Multipart


class Atom(str):
    """Sent verbatim (flags, keywords, response atoms)."""


# what a quoted string cannot hold (RFC 3501 quoted: 7-bit, no NUL, CR or LF): a literal then
_NOT_QUOTABLE = re.compile(rb"[\x00\n\r\x7f-\xff]")


def string(value: str | bytes | None) -> bytes:
    if value is None:
        return b"NIL"
    data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    if len(data) > 1000 or _NOT_QUOTABLE.search(data) is not None:
        return b"{%d}\r\n" % len(data) + data
    if b"\\" in data or b'"' in data:
        data = data.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    return b'"' + data + b'"'


def pack(value: Any) -> bytes:
    # the exact types an ENVELOPE or BODYSTRUCTURE is made of first: FETCH packs thousands a
    # second on the hub (subclasses — Atom, bool, Multipart — take the general path below)
    kind = type(value)
    if kind is str:
        return string(value)
    if kind is list:
        return (
            b"(" + b" ".join([b"NIL" if v is None else string(v) if type(v) is str else pack(v) for v in value]) + b")"
        )
    if value is None:
        return b"NIL"
    if isinstance(value, Atom):
        return value.encode("ascii", "replace")
    if isinstance(value, bool):
        return b"1" if value else b"0"
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, (str, bytes)):
        return string(value)
    if isinstance(value, Multipart):
        kids = b"".join(pack(c) for c in value[: value.nchildren])
        rest = b" ".join(pack(v) for v in value[value.nchildren :])
        return b"(" + kids + b" " + rest + b")"
    if isinstance(value, (list, tuple)):
        return b"(" + b" ".join(pack(v) for v in value) + b")"
    raise TypeError(f"cannot pack {type(value).__name__}")


def flag_list(flags: Any) -> bytes:
    return b"(" + " ".join(flags).encode("utf-8", "replace") + b")"


_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def internal_date(ts: float, tzoffset: int = 0) -> bytes:
    """INTERNALDATE as stored: the local time in the message's zone (``tzoffset`` minutes east
    of UTC) with that zone, as APPEND gave it (RFC 3501 2.3.3)."""
    t = time.gmtime(ts + 60 * tzoffset)
    sign = b"-" if tzoffset < 0 else b"+"
    hours, minutes = divmod(abs(tzoffset), 60)
    return b'"%02d-%s-%04d %02d:%02d:%02d %s%02d%02d"' % (
        t.tm_mday,
        _MONTHS[t.tm_mon - 1].encode(),
        t.tm_year,
        t.tm_hour,
        t.tm_min,
        t.tm_sec,
        sign,
        hours,
        minutes,
    )
