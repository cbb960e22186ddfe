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
import json
import os
import re
from email.utils import parsedate_tz
from typing import Any, BinaryIO

from gk.mail.mailbox import mime
from gk.store.files import close_fd

FIRST_READ = 16 * 1024  # a header block must end within this many bytes for the fast path

# the bytes a header block of the fast path is made of (printable ASCII, TAB, CR, LF); what is
# left after deleting them makes the fast path step aside, and so do a CR that does not end a
# line (the email package splits lines on it) and a Unix "From " line
_PLAIN_BYTES = bytes([9, 10, 13, *range(0x20, 0x7F)])
# one pass over an (unfolded) header block's lines: a field ENVELOPE reads, its name and its value
# as compat32 keeps it (leading blanks and the line end cut), or a line that is not a header field
# as the email package's feedparser sees it (its ``headerRE``, less the continuation and "From "
# cases excluded before): the headers end there
_FIELDS = re.compile(
    r"\n(?:(date|subject|from|sender|reply-to|to|cc|bcc|in-reply-to|message-id):[ \t]*([^\r\n]*)"
    r"|(?![\x21-\x39\x3b-\x7e]*:)([^\n]))",
    re.I,
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
# (ENVELOPE JSON, Date as sentdate, ENVELOPE wire form) of one message
Parsed = tuple[str, int | None, bytes]
_MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}


def header_block(f: BinaryIO) -> bytes | None:
    """The top header block as ``mime``'s reader cuts it (its lines, without the empty line that
    ends it), or None when it does not end within ``FIRST_READ`` bytes (then: the general path)."""
    f.seek(0)
    data = f.read(4096)  # most header blocks; the rest of the first read only when needed
    if len(data) == 4096 and b"\n\r\n" not in data and b"\n\n" not in data:
        data += f.read(FIRST_READ - 4096)
    return _cut(data)


def _cut(data: bytes) -> bytes | None:
    """``header_block`` of the first bytes of a file (up to ``FIRST_READ``, all if fewer)."""
    if data[:1] == b"\n" or data[:2] == b"\r\n":
        return b""
    end = data.find(b"\n\r\n")
    bare = data.find(b"\n\n", 0, end + 1 if end >= 0 else len(data))  # "\n\n\r\n": the "\n" line first
    if bare >= 0:
        end = bare
    if end >= 0:
        return data[: end + 1]
    return data if len(data) < FIRST_READ else None


def _head(fd: int) -> bytes | None:
    """``header_block`` of an open file descriptor: one 4 KB ``read`` for most messages (no
    buffered file object: its making was a sixth of a message's time here)."""
    data = os.read(fd, 4096)
    if b"\n\r\n" not in data and b"\n\n" not in data:
        # the rest of the first read, up to its end or the file's (a short read is no end of file)
        while len(data) < FIRST_READ and (more := os.read(fd, FIRST_READ - len(data))):
            data += more
    return _cut(data)


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


# An ENVELOPE is kept twice, as JSON (``json.dumps``) and in IMAP's wire form (``wire``); both
# are a bracketed list of the ten fields' own forms joined by a separator (", " / " "), so each
# field's two forms are made once and both lists joined from them. A string of the fast path is
# printable ASCII: with no quote or backslash and at most 1,000 characters, its JSON and its wire
# form are the same quoted string.
Pieces = tuple[str, str]  # (JSON, wire form) of one field
_NIL: Pieces = ("null", "NIL")


def _string_pieces(value: str | None) -> Pieces:
    """The two forms of a string field (its raw value whitespace-normalized, as ``mime._decode``)."""
    if value is None:
        return _NIL
    value = " ".join(value.split())
    if '"' in value or "\\" in value or len(value) > 1000:
        return json.dumps(value), imap_string(value).decode("utf-8", "surrogateescape")
    quoted = '"' + value + '"'
    return quoted, quoted


def _address_pieces(values: list[str], seen: dict[str, Pieces | None]) -> Pieces | None:
    """The two forms of an address field's list (all its values' addresses, as ``mime._addresses``),
    None for no address. ``seen``: the forms of the values already met (a folder's senders and
    recipients repeat: its messages' pieces are made once)."""
    key = values[0] if len(values) == 1 else "\n".join(values)  # no value holds a line end
    try:
        return seen[key]
    except KeyError:
        pass
    out: list[list[Any]] = []
    for v in values:
        out += address_list(" ".join(v.split()))
    made = (json.dumps(out), _address_list(out).decode("utf-8", "surrogateescape")) if out else None
    seen[key] = made
    return made


def _fast(raw: bytes, seen: dict[str, Pieces | None], days: dict[tuple[str, ...], int | None]) -> Parsed | None:
    """(ENVELOPE JSON, sent day, wire form) of a header block whose bytes take the fast path, else
    None (the general path). The same values as ``mime.parse_envelope``, ``sent_day`` of its Date
    and ``wire`` give: the fields ``email.parser.BytesHeaderParser(policy=compat32)`` finds after
    ``mime``'s unfolding, read in one pass of ``_FIELDS``."""
    if (
        raw.translate(None, _PLAIN_BYTES)
        or raw.count(b"\r") != raw.count(b"\r\n")
        or raw.startswith(b"From ")
        or b"\nFrom " in raw
    ):
        return None
    if b"\n " in raw or b"\n\t" in raw:
        # mime._FOLD (``\r?\n`` before a blank), cut by plain replaces: every CR here ends a line
        # and no line is empty (the block ends there), so no replace makes a fold of its own
        raw = raw.replace(b"\r\n", b"\n").replace(b"\n ", b" ").replace(b"\n\t", b"\t")
    text = "\n" + raw.decode("ascii")
    if text[1:2] in (" ", "\t"):
        return None  # a first line that is a continuation: the email package's defect handling
    fields: dict[str, list[str]] = {}
    for name, value, stop in _FIELDS.findall(text):
        if stop:
            break  # the email package ends the headers at a line that is not a field
        key = name.lower()
        if key in fields:
            fields[key].append(value)
        else:
            fields[key] = [value]
    get = fields.get
    v = get("date")
    date = v[0] if v else None
    d = _string_pieces(date)
    v = get("subject")
    s = _string_pieces(v[0] if v else None)
    v = get("in-reply-to")
    irt = _string_pieces(v[0] if v else None)
    v = get("message-id")
    mid = _string_pieces(v[0] if v else None)
    v = get("from")
    frm = (v and _address_pieces(v, seen)) or _NIL
    v = get("sender")
    sender = (v and _address_pieces(v, seen)) or frm
    v = get("reply-to")
    reply = (v and _address_pieces(v, seen)) or frm
    v = get("to")
    to = (v and _address_pieces(v, seen)) or _NIL
    v = get("cc")
    cc = (v and _address_pieces(v, seen)) or _NIL
    v = get("bcc")
    bcc = (v and _address_pieces(v, seen)) or _NIL
    day: int | None = None
    if date:
        m = _DATE.fullmatch(date)
        if m is None:
            day = sent_day(date)
        else:
            when = m.group(1, 2, 3)
            try:
                day = days[when]
            except KeyError:
                day = days[when] = sent_day(date)
    return (
        f"[{d[0]}, {s[0]}, {frm[0]}, {sender[0]}, {reply[0]}, {to[0]}, {cc[0]}, {bcc[0]}, {irt[0]}, {mid[0]}]",
        day,
        f"({d[1]} {s[1]} {frm[1]} {sender[1]} {reply[1]} {to[1]} {cc[1]} {bcc[1]} {irt[1]} {mid[1]})".encode(
            "utf-8", "surrogateescape"
        ),
    )


def read_envelopes(items: list[tuple[str, str | None]]) -> list[Parsed | None]:
    """(ENVELOPE JSON, Date as sentdate, ENVELOPE wire form) of each (path, stored ENVELOPE JSON
    or None); None if the file is gone. A stored ENVELOPE is only rendered; otherwise only the
    top header block of the file is read: the same values as ``mime.parse_envelope`` of the file,
    ``sent_day`` of its Date and ``wire`` of the ENVELOPE, fast for the usual header block."""
    out: list[Parsed | None] = []
    seen: dict[str, Pieces | None] = {}
    days: dict[tuple[str, ...], int | None] = {}
    for path, stored in items:
        if stored is not None:
            out.append((stored, None, wire(json.loads(stored))))
            continue
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            out.append(None)
            continue
        try:
            raw = _head(fd)
            got = _fast(raw, seen, days) if raw is not None else None
            if got is None:  # the general path, on the same file (renamed meanwhile, it is still there)
                with open(fd, "rb", closefd=False) as f:
                    env, date = mime.parse_envelope(f)
                got = (json.dumps(env), sent_day(date), wire(env))
        finally:
            close_fd(fd)
        out.append(got)
    return out


def sent_day(value: object) -> int | None:
    """The Date header's calendar day as UTC midnight (for SENTBEFORE/SENTON/SENTSINCE), as
    ``email.utils.parsedate_tz`` reads it; the usual RFC 5322 form without calling it. ``value``:
    a str, or the ``Header`` the email package gives for a field with 8-bit bytes (such a Date
    once made a whole INBOX fail to open); None, or a date that does not read, gives None."""
    if not value:
        return None
    if not isinstance(value, str):
        value = str(value)
    m = _DATE.fullmatch(value)
    if m is not None:
        year, month, day = int(m.group(3)), _MONTHS[m.group(2)], int(m.group(1))
    else:
        try:
            t = parsedate_tz(value)
        except (ValueError, IndexError, TypeError):
            return None
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


def imap_string(value: str | None) -> bytes:
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
    return b"(" + b" ".join([b"(" + b" ".join([imap_string(x) for x in a]) + b")" for a in value]) + b")"


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
        imap_string(env[0]),
        imap_string(env[1]),
        *[_address_list(a) for a in env[2:8]],
        imap_string(env[8]),
        imap_string(env[9]),
    )
