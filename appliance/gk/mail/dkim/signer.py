"""DKIM signing with dkimpy (RFC 6376, Ed25519 per RFC 8463), done once at enqueue time.

Memory: dkimpy has no streaming interface, so the message is read into memory once to
sign it (about 3× its size while canonicalizing; messages are bounded by
``smtp.max_message_size``). The queue calls this in gevent's threadpool so a large
message never stalls the hub; the spool file itself is written in chunks.
"""

from __future__ import annotations

import logging

import dkim

from gk.mail.dkim.keys import DKIMKey

log = logging.getLogger("gk.mail.dkim")

# Headers signed (From twice: oversigning stops a second From being added in transit).
SIGNED_HEADERS = [
    b"from",
    b"from",
    b"to",
    b"cc",
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"in-reply-to",
    b"references",
    b"mime-version",
    b"content-type",
    b"content-transfer-encoding",
]


def sign_headers(message: bytes, keys: list[DKIMKey]) -> bytes:
    """``DKIM-Signature:`` header lines (CRLF-terminated) to prepend to ``message``; b"" if unsignable."""
    out = b""
    for key in keys:
        algorithm = b"rsa-sha256" if key.algorithm == "rsa" else b"ed25519-sha256"
        try:
            sig = dkim.sign(
                message,
                key.selector.encode("ascii"),
                key.domain.encode("ascii"),
                key.signing_key(),
                canonicalize=(b"relaxed", b"relaxed"),
                signature_algorithm=algorithm,
                include_headers=SIGNED_HEADERS,
                linesep=b"\r\n",
            )
        except (dkim.DKIMException, ValueError, OSError) as exc:
            log.warning("DKIM signing for %s (%s) failed: %s; sending unsigned", key.domain, key.selector, exc)
            continue
        out = sig + out  # the later signature goes on top, as it would be added in transit
    return out
