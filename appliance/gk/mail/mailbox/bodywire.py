"""A message's BODYSTRUCTURE in IMAP's wire form, made once and kept in the index (``bswire``).

A phone's sync asks for the BODYSTRUCTURE of every new message (K-9, iOS Mail, FairEmail).
Built from the stored MIME tree at each FETCH (JSON decoded, ``mime.body_structure``, then
packed) it cost ~120 us a message on the hub, about 3x Dovecot's whole answer from its cache.
The wire form depends on the file's bytes alone, and a message never changes under its UID
(RFC 3501 2.3.1.1): it is made in the CPU pool when the message is parsed (or, for a message
indexed lazily, parsed for its structure alone) and a FETCH sends the stored bytes.

The bytes are those ``gk.mail.imap.response.pack(body_structure(top, True))`` gives (the
mailbox may not import the IMAP layer; ``test_bodystructure_wire`` holds the two together).
"""

from __future__ import annotations

from typing import Any

from gk.mail.mailbox.envelope import imap_string
from gk.mail.mailbox.mime import Multipart, Part, body_structure


def _pack(value: Any) -> bytes:
    # the types body_structure makes: str, int, None, list, and Multipart (children unspaced)
    kind = type(value)
    if kind is str:
        return imap_string(value)
    if value is None:
        return b"NIL"
    if kind is int:
        return b"%d" % value
    if kind is list:
        return b"(" + b" ".join([_pack(v) for v in value]) + b")"
    if kind is Multipart:
        kids = b"".join([_pack(c) for c in value[: value.nchildren]])
        return b"(" + kids + b" " + b" ".join([_pack(v) for v in value[value.nchildren :]]) + b")"
    raise TypeError(f"not part of a BODYSTRUCTURE: {kind.__name__}")


def wire(top: Part) -> bytes:
    """The extensible BODYSTRUCTURE (RFC 3501 7.4.2) of a message's tree, as sent after
    ``BODYSTRUCTURE `` in a FETCH response."""
    return _pack(body_structure(top, True))
