"""DKIM signing with dkimpy (RFC 6376, Ed25519 per RFC 8463), done once at enqueue time.

Streaming: dkimpy's ``sign`` wants the whole message in memory (and copies it while
canonicalizing, ~3× its size). GK instead computes the relaxed body hash itself while
reading the spool file line by line (``wire_lines``: the same CRLF lines that go on the wire),
and hands dkimpy only the header block to build and sign the ``DKIM-Signature`` header.
That uses dkimpy's ``DomainSigner.gen_header`` (pinned dkimpy 1.1.8; the unit tests check
the result against dkimpy's own ``sign`` and ``verify``). Memory: the header block (at most
256 KiB) plus one line; CPU: one SHA-256 pass over the body per key. dkimpy is imported on the
first message signed, not at start.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import time
from pathlib import Path

from gk.mail.dkim.keys import DKIMKey
from gk.mail.outbound.wire import wire_lines

log = logging.getLogger("gk.mail.dkim")

HEADER_LIMIT = 256 * 1024

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

_WSP = re.compile(rb"[\t ]+")


def relaxed_body_hash(lines) -> bytes:  # type: ignore[no-untyped-def]
    """SHA-256 of the relaxed-canonical body (RFC 6376 §3.4.4) of CRLF-terminated ``lines``."""
    h = hashlib.sha256()
    empty_run = 0
    for line in lines:
        content = _WSP.sub(b" ", line[:-2]).rstrip(b" ")
        if not content:
            empty_run += 1  # trailing empty lines are ignored; inner ones are kept
            continue
        if empty_run:
            h.update(b"\r\n" * empty_run)
            empty_run = 0
        h.update(content + b"\r\n")
    return base64.b64encode(h.digest())


def _split(path: Path) -> tuple[bytes, bytes]:
    """(header block with CRLF lines, relaxed body hash) of the file at ``path``."""
    headers = bytearray()
    with open(path, "rb") as f:
        lines = wire_lines(f)
        for line in lines:
            if line == b"\r\n":
                break
            headers += line
            if len(headers) > HEADER_LIMIT:
                raise ValueError("header block larger than 256 KiB")
        body_hash = relaxed_body_hash(lines)
    return bytes(headers), body_hash


def _sign_one(header_block: bytes, body_hash: bytes, key: DKIMKey) -> bytes:
    import dkim
    from dkim.canonicalization import CanonicalizationPolicy
    from dkim.crypto import parse_pem_private_key

    algorithm = b"rsa-sha256" if key.algorithm == "rsa" else b"ed25519-sha256"
    d = dkim.DKIM(header_block + b"\r\n", signature_algorithm=algorithm, linesep=b"\r\n")
    if algorithm == b"rsa-sha256":
        pk = parse_pem_private_key(key.signing_key())
    else:
        import nacl.encoding
        import nacl.signing

        pk = nacl.signing.SigningKey(key.signing_key(), encoder=nacl.encoding.Base64Encoder)
    canon = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
    domain = key.domain.encode("ascii")
    include = tuple(SIGNED_HEADERS)
    d.hasher = dkim.HASH_ALGORITHMS[algorithm]
    fields = [
        (b"v", b"1"),
        (b"a", algorithm),
        (b"c", canon.to_c_value()),
        (b"d", domain),
        (b"i", b"@" + domain),
        (b"q", b"dns/txt"),
        (b"s", key.selector.encode("ascii")),
        (b"t", str(int(time.time())).encode("ascii")),
        (b"h", b" : ".join(include)),
        (b"bh", body_hash),
        (b"b", b"0" * 60),  # placeholder: folds b= onto its own line, as dkimpy does
    ]
    return b"DKIM-Signature: " + d.gen_header(fields, include, canon, b"DKIM-Signature", pk)


def sign_file(path: Path, keys: list[DKIMKey]) -> bytes:
    """``DKIM-Signature:`` header lines (CRLF-terminated) to prepend to the message in ``path``."""
    if not keys:
        return b""
    try:
        header_block, body_hash = _split(path)
    except (OSError, ValueError) as exc:
        log.warning("DKIM signing of %s skipped: %s", path.name, exc)
        return b""
    out = b""
    for key in keys:
        try:
            sig = _sign_one(header_block, body_hash, key)
        except Exception as exc:  # dkimpy raises several types; an unsigned message still goes out
            log.warning("DKIM signing for %s (%s) failed: %s; sending unsigned", key.domain, key.selector, exc)
            continue
        out = sig + out  # the later signature goes on top, as it would be added in transit
    return out


def sign_headers(message: bytes, keys: list[DKIMKey]) -> bytes:
    """Like ``sign_file`` for a message already in memory (small messages, tests)."""
    import tempfile

    with tempfile.NamedTemporaryFile() as f:
        f.write(message)
        f.flush()
        return sign_file(Path(f.name), keys)
