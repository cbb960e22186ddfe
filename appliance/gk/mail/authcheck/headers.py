"""Reading the header section of a spooled message (bounded: never the body)."""

from __future__ import annotations

import email.parser
import email.policy
import email.utils
from email.message import Message
from pathlib import Path

MAX_HEADER_BYTES = 1024 * 1024


def read_header_block(path: Path | bytes, limit: int = MAX_HEADER_BYTES) -> bytes:
    """The header section (up to and including the blank line), at most ``limit`` bytes."""
    if isinstance(path, bytes):
        for sep in (b"\r\n\r\n", b"\n\n"):
            end = path.find(sep, 0, limit)
            if end >= 0:
                return path[: end + len(sep)]
        return path[:limit]
    out = bytearray()
    with open(path, "rb") as f:
        while len(out) < limit:
            line = f.readline(65536)
            if not line:
                break
            out += line
            if line in (b"\r\n", b"\n"):
                break
    return bytes(out)


def parse_headers(block: bytes) -> Message:
    return email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(block)


def from_domains(headers: Message) -> list[str]:
    """Distinct domains of the RFC5322.From addresses (lower-case)."""
    values = headers.get_all("From") or []
    domains = []
    for _, addr in email.utils.getaddresses([str(v) for v in values]):
        domain = addr.rpartition("@")[2].strip().lower().rstrip(".")
        if domain and domain not in domains:
            domains.append(domain)
    return domains
