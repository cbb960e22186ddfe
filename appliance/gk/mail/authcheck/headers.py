"""Reading the header section of a spooled message (bounded: never the body)."""

from __future__ import annotations

import email.parser
import email.utils
import re
from email.message import Message
from pathlib import Path
from typing import Any, Protocol

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


class Headers(Protocol):
    """What the checks read of a header section: every value of one field."""

    def get_all(self, name: str, failobj: None = None) -> list[Any] | None: ...


class HeaderFields:
    """A header section as ``(name, value)`` pairs, values as ``email``'s compat32 policy gives
    them (folding kept, leading blanks and the final line break stripped)."""

    __slots__ = ("fields",)

    def __init__(self, fields: list[tuple[str, str]]):
        self.fields = fields

    def get_all(self, name: str, failobj: None = None) -> list[Any] | None:
        name = name.lower()
        values: list[Any] = [v for k, v in self.fields if k.lower() == name]
        return values or failobj


# a field's first line as the email package's feed parser takes it: a name of printable
# characters but ":" (and no blank), then ":"
_FIELD = re.compile(rb"[\x21-\x39\x3b-\x7e]+:")


def _split_simple(block: bytes) -> HeaderFields | None:
    """The fields of a plain ASCII header section of well-formed lines, the way the email
    package's parser splits them; None for anything else (it parses those)."""
    if not block.isascii():
        return None
    lines = block.splitlines(keepends=True)
    if lines and lines[-1] in (b"\r\n", b"\n"):
        lines.pop()
    elif lines and not lines[-1].endswith(b"\n"):
        return None  # cut at the size limit or no blank line: let the parser judge
    fields: list[tuple[str, str]] = []
    name = ""
    parts: list[str] = []
    for raw in lines:
        if raw[:1] in (b" ", b"\t"):
            if not parts:
                return None
            parts.append(raw.decode("ascii"))
            continue
        m = _FIELD.match(raw)
        if m is None or raw.startswith(b"From "):
            return None
        if parts:
            fields.append((name, "".join(parts).rstrip("\r\n")))
        name = raw[: m.end() - 1].decode("ascii")
        parts = [raw[m.end() :].decode("ascii").lstrip(" \t")]
    if parts:
        fields.append((name, "".join(parts).rstrip("\r\n")))
    return HeaderFields(fields)


def parse_headers(block: bytes) -> Headers:
    """The fields of a header section. Plain ASCII sections of well-formed lines (nearly all
    mail) are split here (~10 µs for a 5-field section, against ~90 µs for the email package's
    feed parser, py-spy: ~5 % of the hub's time per message under SMTP load); anything else,
    and the same results for those (tests/unit/test_smtp_headers.py), from the email package."""
    simple = _split_simple(block)
    if simple is not None:
        return simple
    message: Message = email.parser.BytesHeaderParser().parsebytes(block)  # compat32, its default
    return message


# "Name <local@domain>", '"Name, quoted" <local@domain>' or a bare "local@domain": the forms
# whose address email.utils.getaddresses cannot read otherwise (no comment, group, route,
# quoted local part or second address); anything else goes to it
_SIMPLE_FROM = re.compile(
    r'\s*(?:(?:"[^"\\\r\n]*"|[A-Za-z0-9!#$%&\'*+/=?^_`{|}~. \t-]*)\s*<([A-Za-z0-9!#$%&\'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+)>'
    r"|([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+))\s*"
)


def _from_addresses(values: list[str]) -> list[str]:
    simple = [_SIMPLE_FROM.fullmatch(v) for v in values]
    if all(simple):
        return [m.group(1) or m.group(2) for m in simple if m is not None]
    return [addr for _, addr in email.utils.getaddresses(values)]


def from_domains(headers: Headers) -> list[str]:
    """Distinct domains of the RFC5322.From addresses (lower-case)."""
    values = headers.get_all("From") or []
    domains = []
    for addr in _from_addresses([str(v) for v in values]):
        domain = addr.rpartition("@")[2].strip().lower().rstrip(".")
        if domain and domain not in domains:
            domains.append(domain)
    return domains
