"""ENVELOPE fast: a message's top header block read and cut into the ten fields ENVELOPE needs
without Python's ``email`` parser, and the ENVELOPE rendered in IMAP's wire form once, to be
kept in the index.

Why: the first ``FETCH 1:* ENVELOPE`` of a big folder indexed lazily parses every message's
header block; through ``email.parser`` and the general RFC 5322 address tokenizer that was
~0.7 ms a message (5,000 messages: 3.6 s, Dovecot ~0.3 s). Here the common case — a header
block of printable ASCII whose addresses are plain ``local@host``, ``Name <local@host>`` or
``"Quoted Name" <local@host>`` lists — is read with a few regular expressions; anything else
(8-bit bytes, control characters, a lone CR, a Unix ``From `` line, groups, comments, quoted
pairs, routes, domain literals, an odd Date) falls back to the general path of ``mime``, so
the result is the same value that ``mime.parse_envelope`` gives, byte for byte
(``tests/unit/imap/test_envelope_fast.py`` checks both on generated and hand-picked headers).
Header values stay raw: RFC 2047 encoded-words are not decoded (RFC 3501 wants the wire form).
"""

from __future__ import annotations

import calendar
import re
from email.utils import parsedate_tz
from typing import Any, BinaryIO

from gk.mail.mailbox import mime

FIRST_READ = 16 * 1024  # a header block must end within this many bytes for the fast path

# the bytes a header block of the fast path is made of (printable ASCII, TAB, CR, LF); what is
# left after deleting them makes the fast path step aside, and so do a CR that does not end a
# line (the email package splits lines on it) and a Unix "From " line
_PLAIN_BYTES = bytes([9, 10, 13, *range(0x20, 0x7F)])
# a line that is not a header field as the email package's feedparser sees it (its
# ``headerRE``, less the continuation and "From " cases excluded above): the headers end there
_NOT_FIELD = re.compile(r"\n(?![\x21-\x39\x3b-\x7e]*:)[^\n]")
# a field ENVELOPE reads, its value as compat32 keeps it (leading blanks and the line end cut)
_WANTED_FIELD = re.compile(
    r"\n(date|subject|from|sender|reply-to|to|cc|bcc|in-reply-to|message-id):[ \t]*([^\r\n]*)", re.I
)
# RFC 5322 atext (a dot-atom's pieces); a phrase word of the fast path is one of these runs
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATEXT}(?:\.{_ATEXT})*"
# one mailbox: ``local@host``, ``Phrase <local@host>``, ``"quoted" <local@host>`` (no quoted pair)
_MAILBOX = re.compile(
    rf' ?(?:(?:(?P<q>"[^"\\]*")|(?P<p>{_ATEXT}(?: {_ATEXT})*)) ?<(?P<l>{_DOT_ATOM})@(?P<h>{_DOT_ATOM})>'
    rf"|<(?P<l3>{_DOT_ATOM})@(?P<h3>{_DOT_ATOM})>"
    rf"|(?P<l2>{_DOT_ATOM})@(?P<h2>{_DOT_ATOM})) ?(?:,|$)"
)
_SEPARATOR = re.compile(r" ?,")
_DATE = re.compile(
    r"(?:[A-Za-z]{3}, )?(\d{1,2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{4})"
    r" \d{2}:\d{2}(?::\d{2})? [+-]\d{4}"
)
_MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}


class HeaderFields:
    """The ENVELOPE fields of one header block, with the two calls of ``email.message.Message``
    that ``mime.envelope`` makes (names case-insensitive, values raw and unfolded)."""

    __slots__ = ("fields",)

    def __init__(self, fields: dict[str, list[str]]):
        self.fields = fields

    def get(self, name: str) -> str | None:
        values = self.fields.get(name.lower())
        return values[0] if values else None

    def get_all(self, name: str) -> list[str] | None:
        return self.fields.get(name.lower())


def header_block(f: BinaryIO) -> bytes | None:
    """The top header block as ``mime``'s reader cuts it (its lines, without the empty line that
    ends it), or None when it does not end within ``FIRST_READ`` bytes (then: the general path)."""
    f.seek(0)
    data = f.read(4096)  # most header blocks; the rest of the first read only when needed
    if len(data) == 4096 and b"\n\r\n" not in data and b"\n\n" not in data:
        data += f.read(FIRST_READ - 4096)
    if data[:1] == b"\n" or data[:2] == b"\r\n":
        return b""
    end = data.find(b"\n\r\n")
    bare = data.find(b"\n\n", 0, end if end >= 0 else len(data))
    if bare >= 0:
        end = bare
    if end >= 0:
        return data[: end + 1]
    return data if len(data) < FIRST_READ else None


def plain_fields(raw: bytes) -> HeaderFields | None:
    """The fields of a header block whose bytes take the fast path, else None. Same values as
    ``email.parser.BytesHeaderParser(policy=compat32)`` after ``mime``'s unfolding gives."""
    if (
        raw.translate(None, _PLAIN_BYTES)
        or raw.count(b"\r") != raw.count(b"\r\n")
        or raw.startswith(b"From ")
        or b"\nFrom " in raw
    ):
        return None
    text = "\n" + mime._FOLD.sub(b"", raw).decode("ascii")
    if text[1:2] in (" ", "\t"):
        return None  # a first line that is a continuation: the email package's defect handling
    stop = _NOT_FIELD.search(text)
    if stop is not None:
        text = text[: stop.start()]  # the email package ends the headers at a line that is not a field
    fields: dict[str, list[str]] = {}
    for m in _WANTED_FIELD.finditer(text):
        fields.setdefault(m.group(1).lower(), []).append(m.group(2))
    return HeaderFields(fields)


def address_list(value: str) -> list[list[Any]]:
    """``mime.parse_address_list`` of a whitespace-normalized value, fast for plain mailboxes."""
    out: list[list[Any]] = []
    pos, n = 0, len(value)
    while pos < n:
        m = _MAILBOX.match(value, pos)
        if m is None:
            sep = _SEPARATOR.match(value, pos)  # an empty item ("a@b, , c@d"): skipped
            if sep is None and value[pos:].strip():
                return mime.parse_address_list(value)
            pos = sep.end() if sep is not None else n
            continue
        local = m.group("l") or m.group("l2") or m.group("l3")
        host = m.group("h") or m.group("h2") or m.group("h3")
        q = m.group("q")
        name = (q[1:-1] or None) if q is not None else m.group("p")
        out.append([name, None, local, host])
        pos = m.end()
    return out


def _addresses(fields: HeaderFields, name: str) -> list[list[Any]] | None:
    values = fields.get_all(name)
    if not values:
        return None
    out: list[list[Any]] = []
    for v in values:
        out += address_list(" ".join(v.split()))
    return out or None


def fast_envelope(fields: HeaderFields) -> list[Any]:
    """``mime.envelope`` of the fields (the same value), with the fast address lists."""
    frm = _addresses(fields, "from")
    return [
        mime._decode(fields.get("date")),
        mime._decode(fields.get("subject")),
        frm,
        _addresses(fields, "sender") or frm,
        _addresses(fields, "reply-to") or frm,
        _addresses(fields, "to"),
        _addresses(fields, "cc"),
        _addresses(fields, "bcc"),
        mime._decode(fields.get("in-reply-to")),
        mime._decode(fields.get("message-id")),
    ]


def read_envelope(f: BinaryIO) -> tuple[list[Any], str | None]:
    """(ENVELOPE, raw Date header) of a message file: ``mime.parse_envelope``'s value, fast."""
    raw = header_block(f)
    fields = plain_fields(raw) if raw is not None else None
    if fields is None:
        return mime.parse_envelope(f)
    return fast_envelope(fields), fields.get("date")


def sent_day(value: str | None) -> int | None:
    """The Date header's calendar day as UTC midnight (for SENTBEFORE/SENTON/SENTSINCE), as
    ``email.utils.parsedate_tz`` reads it; the usual RFC 5322 form without calling it."""
    if not value:
        return None
    m = _DATE.fullmatch(value)
    if m is not None:
        year, month, day = int(m.group(3)), _MONTHS[m.group(2)], int(m.group(1))
    else:
        t = parsedate_tz(value)
        if not t:
            return None
        year, month, day = t[0], t[1], t[2]
    try:
        return calendar.timegm((year, month, day, 0, 0, 0, 0, 1, 0))
    except (ValueError, OverflowError):
        return None


# -- the wire form ---------------------------------------------------------------------------
_NOT_QUOTABLE = re.compile(rb"[\x00\n\r\x7f-\xff]")
# characters of strs that go out as quoted strings with nothing escaped (no NUL, CR, LF, DEL,
# 8-bit, quote or backslash)
_PLAIN_CHARS = re.compile(r"[\x01-\x09\x0b\x0c\x0e-\x21\x23-\x5b\x5d-\x7e]*")


def _string(value: str | None) -> bytes:
    """An IMAP string as ``gk.mail.imap.response.string`` renders it: NIL, quoted, or a literal."""
    if value is None:
        return b"NIL"
    data = value.encode("utf-8", "surrogateescape")
    if len(data) > 1000 or _NOT_QUOTABLE.search(data) is not None:
        return b"{%d}\r\n" % len(data) + data
    if b"\\" in data or b'"' in data:
        data = data.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    return b'"' + data + b'"'


def _address_list(value: list[list[Any]] | None) -> bytes:
    if not value:
        return b"NIL"
    return b"(" + b" ".join([b"(" + b" ".join([_string(x) for x in a]) + b")" for a in value]) + b")"


def _strings(env: list[Any]) -> list[str | None]:
    out: list[str | None] = [env[0], env[1]]
    for a in env[2:8]:
        if a:
            for x in a:
                out += x
    out += (env[8], env[9])
    return out


def _quoted(value: str | None) -> str:
    return "NIL" if value is None else '"' + value + '"'


def _quoted_addresses(value: list[list[Any]] | None) -> str:
    if not value:
        return "NIL"
    return "(" + " ".join(["(" + " ".join([_quoted(x) for x in a]) + ")" for a in value]) + ")"


def wire(env: list[Any]) -> bytes:
    """The ENVELOPE as sent after ``ENVELOPE `` in a FETCH response (RFC 3501 7.4.2), the same
    bytes as ``gk.mail.imap.response.pack`` of it."""
    strings = [x for x in _strings(env) if x is not None]
    if _PLAIN_CHARS.fullmatch("".join(strings)) is not None and max(map(len, strings), default=0) <= 1000:
        # the usual case: every string quoted as it is, built as one str
        return (
            "("
            + " ".join(
                [
                    _quoted(env[0]),
                    _quoted(env[1]),
                    *[_quoted_addresses(a) for a in env[2:8]],
                    _quoted(env[8]),
                    _quoted(env[9]),
                ]
            )
            + ")"
        ).encode("ascii")
    return b"(%s %s %s %s %s %s %s %s %s %s)" % (
        _string(env[0]),
        _string(env[1]),
        *[_address_list(a) for a in env[2:8]],
        _string(env[8]),
        _string(env[9]),
    )
