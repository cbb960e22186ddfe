"""MIME structure of a stored message with byte offsets, for IMAP BODY[section] and the webmail.

Python's ``email`` package parses a whole message into memory and forgets where each part
starts, so byte-exact ``BODY[1.2.MIME]<0.100>`` cannot be served from it. This scanner reads
the file once, line by line (memory: one line plus the header block of the part being read,
header blocks capped at ``MAX_HEADER``), and records for every part the offsets of its header
and body, its Content-* fields and line count. The result is a small tree (``Part``) that is
stored as JSON in the index, so a FETCH later seeks straight to the bytes it needs.

Limits: a hostile message can be made of nothing but parts (a 1 MB message of 100,000 empty
parts took seconds of CPU and ~100 MB for its tree and JSON). The tree keeps at most
``MAX_PARTS`` parts, ``MAX_DEPTH`` levels and ``MAX_TREE_HEADERS`` bytes of header blocks (the
JSON is at most a few MB, whatever the message); beyond any of them the rest is opaque
(``application/octet-stream``): what remains of each open multipart once the budget is spent
is one last child, a message/rfc822 or multipart too deep is one leaf. BODYSTRUCTURE stays
valid (RFC 3501), and every byte is still served raw (``BODY[]``, ``BODY[TEXT]``, the opaque
part's own section). Dovecot caps parts the same way (10,000 parts, 100 levels).

ENVELOPE and BODYSTRUCTURE are built from that tree (RFC 3501 §7.4.2) as nested lists of
str/int/None that ``gk.mail.imap.response`` renders. Header values are kept raw (encoded-words
are not decoded: RFC 3501 wants the wire form); 8-bit bytes survive via ``surrogateescape``.

Speed: the index parses every message, so the common cases skip the email package's slow paths
— ``parse_header_block`` cuts a plain header block into fields itself and ``_fast_params``
reads the plain forms of Content-Type / Content-Disposition (``text/plain; charset=utf-8``,
``attachment; filename="a.pdf"``). The email package (``BytesHeaderParser``, ``Message``'s
``get_content_type`` / ``get_params``) remains the reference: anything else (8-bit bytes,
RFC 2231, comments, backslashes, odd quoting…) goes through it, and the tests check both give
the same tree (``tests/unit/imap/test_mime_fast.py``). A caller that has the top message's
ENVELOPE already skips it with ``parse_with_headers(f, envelope=False)``.
"""

from __future__ import annotations

import email.utils
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.header import Header, decode_header
from email.message import Message
from email.parser import BytesHeaderParser
from typing import Any, BinaryIO

MAX_HEADER = 256 * 1024  # header bytes of one part we parse; the rest are skipped (still served raw)
MAX_DEPTH = 20  # nesting of multiparts / message/rfc822 we descend into
MAX_PARTS = 2000  # parts of one message with a structure of their own; the rest is one opaque part
MAX_TREE_HEADERS = 1024 * 1024  # header bytes of all parts in the tree; past it the rest is opaque
OPAQUE_DESCRIPTION = "not parsed by GK: too many MIME parts, levels or header bytes"

_HEADER_PARSER = BytesHeaderParser()  # compat32, its default (email.policy is not imported: ~0.5 MB)
_FOLD = re.compile(rb"\r?\n(?=[ \t])")
# the bytes of a header block parse_header_block reads itself (printable ASCII, TAB, CR, LF)
_PLAIN_BYTES = bytes([9, 10, 13, *range(0x20, 0x7F)])
# a line that is a field as the email package's feedparser sees it: (name, value) of each
_FIELDS = re.compile(r"^([\x21-\x39\x3b-\x7e]+):[ \t]*([^\r\n]*)", re.MULTILINE)


def _unfold(raw: bytes) -> bytes:
    """``_FOLD.sub(b"", raw)``; most header blocks of parts have no folded line."""
    return _FOLD.sub(b"", raw) if b"\n " in raw or b"\n\t" in raw else raw


def parse_header_block(raw: bytes) -> Message:
    """``BytesHeaderParser(policy=compat32)`` of an unfolded header block (``_FOLD`` applied).

    Its common case — printable ASCII, lines ending in CRLF or LF, every line a ``name: value``
    field, no Unix ``From `` line — is cut here into the same fields in a fraction of the
    feedparser's time (the index parses every part's header block of every message); anything
    else goes through the email package."""
    if raw.translate(None, _PLAIN_BYTES) or raw.count(b"\r") != raw.count(b"\r\n") or raw.startswith(b"From "):
        return _HEADER_PARSER.parsebytes(raw)
    text = raw.decode("ascii")
    fields = _FIELDS.findall(text)  # at most one a line, each from the line's start
    if len(fields) != (text.count("\n") + (not text.endswith("\n")) if text else 0):
        return _HEADER_PARSER.parsebytes(raw)  # a line that is no field (or a continuation)
    msg = Message()  # compat32
    for name, value in fields:
        msg.set_raw(name, value)  # as the feedparser stores a field: blanks after the colon cut
    return msg


@dataclass(slots=True)
class Part:
    header_start: int
    body_start: int
    end: int
    maintype: str = "text"
    subtype: str = "plain"
    params: list[tuple[str, str]] = field(default_factory=list)
    cid: str | None = None
    description: str | None = None
    encoding: str = "7BIT"
    md5: str | None = None
    disposition: tuple[str, list[tuple[str, str]]] | None = None
    language: str | None = None
    location: str | None = None
    lines: int = 0
    children: list[Part] = field(default_factory=list)
    message: Part | None = None  # the encapsulated message of a message/rfc822 part
    envelope: list[Any] | None = None  # ENVELOPE of an encapsulated message (or of the top message)

    @property
    def size(self) -> int:
        return self.end - self.body_start

    @property
    def is_multipart(self) -> bool:
        return self.maintype == "multipart"

    @property
    def is_message_type(self) -> bool:
        """Declared message/rfc822 (or message/global), whether or not it was opened."""
        return self.maintype == "message" and self.subtype in ("rfc822", "global")

    @property
    def is_message(self) -> bool:
        return self.is_message_type and self.message is not None

    def param(self, name: str) -> str | None:
        for k, v in self.params:
            if k.lower() in (name, name + "*"):  # "NAME*": an RFC 2231 value, still encoded
                return v
        return None

    # -- JSON form (compact lists) ------------------------------------------------------
    def to_json(self) -> list[Any]:
        return [
            self.header_start,
            self.body_start,
            self.end,
            self.maintype,
            self.subtype,
            self.params,
            self.cid,
            self.description,
            self.encoding,
            self.md5,
            list(self.disposition) if self.disposition else None,
            self.language,
            self.location,
            self.lines,
            [c.to_json() for c in self.children],
            self.message.to_json() if self.message else None,
            self.envelope,
        ]

    @classmethod
    def from_json(cls, d: list[Any]) -> Part:
        p = cls(d[0], d[1], d[2], d[3], d[4], [tuple(x) for x in d[5]], d[6], d[7], d[8], d[9])  # type: ignore[misc]
        p.disposition = (d[10][0], [tuple(x) for x in d[10][1]]) if d[10] else None  # type: ignore[misc]
        p.language, p.location, p.lines = d[11], d[12], d[13]
        p.children = [cls.from_json(c) for c in d[14]]
        p.message = cls.from_json(d[15]) if d[15] else None
        p.envelope = d[16]
        return p


_LEAF_READ = 256 * 1024  # bytes read at a time when skipping a leaf body
_LONG_LINE = 65536  # a longer line is counted, not kept


class _Lines:
    """A peekable line reader over a binary file that knows each line's offset, and the parse's
    part budget (how many parts and header bytes the tree has so far)."""

    def __init__(self, f: BinaryIO, start: int = 0):
        self.f = f
        self.pos = start
        self._peeked: bytes | None = None
        self.top_headers: Message | None = None
        self.top_envelope = True  # build the top message's ENVELOPE (an encapsulated one's always)
        self.parts = 0
        self.header_bytes = 0

    @property
    def budget_left(self) -> bool:
        """May the tree take one more part (``MAX_PARTS``, ``MAX_TREE_HEADERS``)?"""
        return self.parts < MAX_PARTS and self.header_bytes < MAX_TREE_HEADERS

    def peek(self) -> bytes:
        if self._peeked is None:
            self._peeked = self.f.readline(65536)
        return self._peeked

    def next(self) -> bytes:
        line = self.peek()
        self._peeked = None
        self.pos += len(line)
        return line

    def skip_leaf(self, boundaries: list[bytes]) -> tuple[int, bytes]:
        """Consume the lines of a leaf body: up to (not including) the first line that is a
        boundary of ``boundaries``, or the end of the file. Returns (lines consumed, the last
        line consumed — only its last 3 bytes for a line longer than ``_LONG_LINE``).

        Why not ``next()`` in a loop: a 200 KB base64 attachment is ~2,700 lines, and the
        per-line Python calls were most of the cost of indexing a Maildir (5,000 messages:
        ~60 % of the first open). Here the scan is ``bytes.find``/``count`` over 256 KiB
        reads; only lines that start with ``--`` are looked at in Python. A line longer than
        ``_LONG_LINE`` counts as one line (``readline(65536)`` counted its 64 KiB pieces) and
        is never held whole in memory."""
        f = self.f
        f.seek(self.pos)
        self._peeked = None
        count = 0
        last = b""
        base = self.pos  # file offset of buf[0]
        buf = b""
        partial = False  # buf starts inside a long line already counted
        while True:
            chunk = f.read(_LEAF_READ)
            buf = buf + chunk if buf else chunk
            if not chunk:
                if buf:
                    if partial:
                        last = (last + buf)[-3:]
                    elif boundaries and _boundary_hit(buf, boundaries):
                        break
                    else:
                        count += 1
                        last = buf if len(buf) <= _LONG_LINE else buf[-3:]
                    base += len(buf)
                break
            limit = buf.rfind(b"\n") + 1  # complete lines end here
            if limit == 0:
                if len(buf) > _LONG_LINE:  # a long line: count it once, keep none of it
                    if not partial:
                        count += 1
                    partial = True
                    last = buf[-3:]
                    base += len(buf)
                    buf = b""
                continue
            start = 0
            if partial:  # the rest of the long line, up to its newline
                start = buf.find(b"\n") + 1
                last = (last + buf[:start])[-3:]
                partial = False
            stop = -1
            if boundaries:
                j = start if buf.startswith(b"--", start) else buf.find(b"\n--", start, limit) + 1 or -1
                while 0 <= j < limit:
                    e = buf.find(b"\n", j, limit) + 1
                    if _boundary_hit(buf[j:e], boundaries):
                        stop = j
                        break
                    j = buf.find(b"\n--", e - 1, limit) + 1 or -1
            end = stop if stop >= 0 else limit
            n = buf.count(b"\n", start, end)
            if n:
                count += n
                ls = max(start, buf.rfind(b"\n", start, end - 1) + 1)
                last = buf[ls:end] if end - ls <= _LONG_LINE else buf[end - 3 : end]
            base += end
            if stop >= 0:
                break
            buf = buf[limit:]
        self.pos = base
        f.seek(base)
        return count, last


def _eol_len(line: bytes) -> int:
    if line.endswith(b"\r\n"):
        return 2
    if line.endswith(b"\n"):
        return 1
    return 0


def _boundary_hit(line: bytes, boundaries: list[bytes]) -> bytes | None:
    """The boundary ``line`` delimits (innermost first), or None."""
    if not line.startswith(b"--") or not boundaries:
        return None
    s = line.rstrip(b" \t\r\n")
    for b in reversed(boundaries):
        if s == b"--" + b or s == b"--" + b + b"--":
            return b
    return None


def _decode(raw: Any) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, Header):
        # compat32 wraps a value with 8-bit bytes in a Header of charset unknown-8bit, whose str()
        # turns each byte into U+FFFD: its chunks, as decode_header gives them, keep the bytes
        raw = "".join(
            b.decode("ascii", "surrogateescape") if isinstance(b, bytes) else b for b, _ in decode_header(raw)
        )
    return " ".join(str(raw).split())


# One ``; name=value`` of the plain forms _fast_params reads: an RFC 2045 token as name (no "*":
# no RFC 2231), a token or a quoted string without backslash or quote as value, blanks around;
# or a name alone, or nothing (``;;``, a trailing ``;``)
_TOKEN = r"[!#$%&'+\-.0-9A-Z^_`a-z{|}~]+"
_FAST_PARAM = re.compile(rf'[ \t]*;[ \t]*(?:({_TOKEN})(?:[ \t]*=[ \t]*(?:({_TOKEN})|"([^"\\]*)"))?)?[ \t]*')


def _fast_params(value: Any) -> tuple[str, list[tuple[str, str]]] | None:
    """(the text before the first ``;``, ``_params`` of the field) of a Content-Type or
    Content-Disposition value in one of its plain forms (``text/plain; charset=utf-8``,
    ``attachment; filename="a b.pdf"``): what the email package makes of it, in a seventh of its
    time (``application/pdf; name="doc.pdf"``: 1.1 µs, against 7.7 µs for ``get_content_type``
    and ``get_params``, which read the field again and run the RFC 2231 machinery). None for
    any other value (8-bit, RFC 2231, comments, backslashes, stray quotes…): the caller then
    asks the email package, the reference (``tests/unit/imap/test_mime_fast.py``)."""
    if type(value) is not str or not value.isascii():
        return None
    semi = value.find(";")
    if semi < 0:
        return value, []  # the type alone: its quotes, if any, do not matter
    head = value[:semi]
    if '"' in head:  # the email package's split of the value would count its quotes
        return None
    params: list[tuple[str, str]] = []
    pos, end = semi, len(value)
    while pos < end:
        m = _FAST_PARAM.match(value, pos)
        if m is None:
            return None
        name, token, quoted = m.groups()
        if name is None:
            params.append(("", ""))
        else:
            params.append((name.upper(), token if token is not None else quoted if quoted is not None else ""))
        pos = m.end()
    return head, params


def _params(msg: Message, header: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    try:
        raw = msg.get_params(header=header, unquote=True) or []
    except TypeError:
        # RFC 2231 sections of one name both numbered and not (``n*0*=a; n*=b``): the email
        # package's sort of them fails (None < 0), and with it the whole message's parse
        return _wire_params(str(msg.get(header, "")))
    for k, v in raw[1:]:
        if isinstance(v, tuple):  # RFC 2231 (``name*=utf-8''%C3%A9…``): its wire form, as IMAP sends it
            out.append((k.upper() + "*", _rfc2231_wire(v)))
        else:
            out.append((k.upper(), str(v)))
    return out


def _wire_params(value: str) -> list[tuple[str, str]]:
    """The parameters of a field as they stand, for a value the email package cannot read: cut
    at each ``;`` outside quotes, names upper-cased, values unquoted, RFC 2231 sections apart."""
    pieces: list[str] = []
    start, quoted, i = 0, False, 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and quoted:
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            pieces.append(value[start:i])
            start = i + 1
        i += 1
    pieces.append(value[start:])
    out: list[tuple[str, str]] = []
    for piece in pieces[1:]:
        name, _, v = piece.partition("=")
        out.append((name.strip().upper(), email.utils.unquote(v.strip())))
    return out


def _rfc2231_wire(value: tuple[str | None, str | None, str]) -> str:
    """``charset'lang'%XX…`` for a value the email package decoded (its text holds the bytes as
    Latin-1 characters, continuations joined): the bytes percent-encoded once. Encoding the
    package's text again as UTF-8 would double-encode every non-ASCII byte (``é`` as
    ``%C3%83%C2%A9``), which clients show as garbage."""
    charset, language, text = value
    raw = text.encode("latin-1", "replace")
    return f"{charset or 'us-ascii'}'{language or ''}'" + urllib.parse.quote(raw, safe="")


_ADDR_TOKEN = re.compile(r'\s+|"(?:\\.|[^"\\])*"?|\[(?:\\.|[^\]\\])*\]?|[()<>@,;:.\\]|[^\s"()<>@,;:.\\\[\]]+')


def _address_tokens(value: str) -> list[tuple[str, str]]:
    """RFC 5322 tokens of an address list: ("q", quoted text), ("c", comment), ("s", special),
    ("a", atom or domain literal); whitespace dropped, comments (nested) kept apart."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(value):
        if value[i] == "(":
            depth, j, buf = 0, i, []
            while j < len(value):
                ch = value[j]
                if ch == "\\" and j + 1 < len(value):
                    buf.append(value[j + 1])
                    j += 2
                    continue
                if ch == "(":
                    depth += 1
                    if depth > 1:
                        buf.append(ch)
                elif ch == ")":
                    depth -= 1
                    if depth == 0:
                        break
                    buf.append(ch)
                else:
                    buf.append(ch)
                j += 1
            out.append(("c", " ".join("".join(buf).split())))
            i = j + 1
            continue
        m = _ADDR_TOKEN.match(value, i)
        if m is None:  # a stray ")" or "]"
            i += 1
            continue
        tok = m.group(0)
        i = m.end()
        if tok.isspace():
            continue
        if tok.startswith('"'):
            inner = tok[1:-1] if len(tok) > 1 and tok.endswith('"') else tok[1:]
            out.append(("q", re.sub(r"\\(.)", r"\1", inner)))
        elif len(tok) == 1 and tok in "<>@,;:.\\":
            out.append(("s", tok))
        else:
            out.append(("a", tok))
    return out


def _phrase(tokens: list[tuple[str, str]]) -> str | None:
    words: list[str] = []
    for kind, v in tokens:
        if kind == "s" and v == "." and words:
            words[-1] += "."
        elif kind in ("a", "q"):
            words.append(v)
    return " ".join(words) or None


def _mailbox(tokens: list[tuple[str, str]]) -> list[Any] | None:
    """One mailbox as an ENVELOPE address: [name, adl, mailbox, host]."""
    if not any(k != "c" for k, _ in tokens):
        return None
    comments = [v for k, v in tokens if k == "c" and v]
    route: str | None = None
    if ("s", "<") in tokens:
        lt = tokens.index(("s", "<"))
        name = _phrase(tokens[:lt])
        inner = [t for t in tokens[lt + 1 :] if t[0] != "c"]
        if ("s", ">") in inner:
            inner = inner[: inner.index(("s", ">"))]
        if inner and inner[0] == ("s", "@") and ("s", ":") in inner:  # obs-route "@a,@b:"
            colon = inner.index(("s", ":"))
            route = "".join(v for _, v in inner[:colon])
            inner = inner[colon + 1 :]
        spec = inner
    else:
        name = comments[-1] if comments else None
        spec = [t for t in tokens if t[0] != "c"]
    if ("s", "@") in spec:
        at = len(spec) - 1 - spec[::-1].index(("s", "@"))
        local_toks, host_toks = spec[:at], spec[at + 1 :]
    else:
        local_toks, host_toks = spec, []
    local = "".join(
        f'"{v}"' if k == "q" and not re.fullmatch(r"[\w!#$%&'*+/=?^`{|}~.-]+", v) else v for k, v in local_toks
    )
    host = "".join(v for _, v in host_toks)
    if not local and not host:
        return None
    return [name, route, local or None, host or None]


def parse_address_list(value: str) -> list[list[Any]]:
    """ENVELOPE addresses of a header value (RFC 3501 §7.4.2): a group ``g: a, b;`` becomes its
    start marker (NIL NIL "g" NIL), its members and the end marker (NIL NIL NIL NIL)."""
    out: list[list[Any]] = []
    item: list[tuple[str, str]] = []
    in_angle = False
    in_group = False

    def flush() -> None:
        mbox = _mailbox(item)
        if mbox is not None:
            out.append(mbox)
        item.clear()

    for tok in _address_tokens(value):
        if tok == ("s", "<"):
            in_angle = True
        elif tok == ("s", ">"):
            in_angle = False
        elif not in_angle and tok == ("s", ":") and not in_group:
            out.append([None, None, _phrase(item) or "", None])
            item.clear()
            in_group = True
            continue
        elif not in_angle and tok == ("s", ";") and in_group:
            flush()
            out.append([None, None, None, None])
            in_group = False
            continue
        elif not in_angle and tok == ("s", ","):
            flush()
            continue
        item.append(tok)
    flush()
    if in_group:  # an unterminated group still ends
        out.append([None, None, None, None])
    return out


def _addresses(fields: dict[str, list[Any]], name: str) -> list[list[Any]] | None:
    values = fields.get(name)
    if not values:
        return None
    out: list[list[Any]] = []
    for v in values:
        out += parse_address_list(" ".join(str(v).split()))
    return out or None


_ENVELOPE_FIELDS = frozenset(
    ("date", "subject", "from", "sender", "reply-to", "to", "cc", "bcc", "in-reply-to", "message-id")
)


def envelope(msg: Message) -> list[Any]:
    """RFC 3501 ENVELOPE fields from a parsed header block (raw values, unfolded)."""
    fields: dict[str, list[Any]] = {}  # msg.get_all(name) of each, from one pass over the fields
    for k, v in msg.items():
        key = k.lower()
        if key in _ENVELOPE_FIELDS:
            fields.setdefault(key, []).append(v)

    def first(name: str) -> str | None:
        values = fields.get(name)
        return _decode(values[0]) if values else None

    frm = _addresses(fields, "from")
    return [
        first("date"),
        first("subject"),
        frm,
        _addresses(fields, "sender") or frm,
        _addresses(fields, "reply-to") or frm,
        _addresses(fields, "to"),
        _addresses(fields, "cc"),
        _addresses(fields, "bcc"),
        first("in-reply-to"),
        first("message-id"),
    ]


def _read_headers(lines: _Lines, boundaries: list[bytes]) -> tuple[bytes, int]:
    """Read one header block; returns (header bytes (capped), body offset).

    ``lines.peek()`` / ``next()`` inlined: one ``readline`` a line, the boundary test only for a
    line that starts with ``--``."""
    buf: list[bytes] = []
    size = 0
    readline = lines.f.readline
    line = lines.peek()
    pos = lines.pos
    while True:
        if not line or boundaries and line.startswith(b"--") and _boundary_hit(line, boundaries):
            lines._peeked = line  # as peek() left it: the line that ends the block is not read
            lines.pos = pos
            return b"".join(buf), pos
        pos += len(line)
        if line == b"\r\n" or line == b"\n":
            lines._peeked = None
            lines.pos = pos
            return b"".join(buf), pos
        if size < MAX_HEADER:
            buf.append(line)
            size += len(line)
        line = readline(65536)


def _fill(part: Part, msg: Message, default_type: str) -> None:
    """Set a new ``part``'s type and Content-* fields from its parsed header block."""
    # msg.get(name) of the Content-* fields from one pass over the fields (each get is a pass;
    # msg.items() would also run the policy's fetch over every other field)
    get: dict[str, Any] = {}
    fetch = msg.policy.header_fetch_parse
    for k, v in msg.raw_items():
        key = k.lower()
        if key.startswith("content-") and key not in get:
            get[key] = fetch(k, v)
    value = get.get("content-type")
    if value:
        fast = _fast_params(value)
        if fast is None:  # the reference: the email package's reading of the field
            ctype = msg.get_content_type()
            part.params = _params(msg, "content-type")
        else:
            ctype = fast[0].strip().lower()  # as Message.get_content_type
            if ctype.count("/") != 1:
                ctype = "text/plain"  # RFC 2045 §5.2 (a malformed type), as get_content_type
            part.params = fast[1]
        part.maintype, _, part.subtype = ctype.partition("/")
    else:
        part.maintype, _, part.subtype = default_type.partition("/")
        part.params = []
    if part.maintype == "text" and not part.param("charset"):
        part.params.insert(0, ("CHARSET", "US-ASCII"))
    if len(get) == (value is not None):
        return  # no Content-* field but the type: the other fields keep Part's defaults
    part.cid = _decode(get.get("content-id"))
    part.description = _decode(get.get("content-description"))
    part.encoding = (_decode(get.get("content-transfer-encoding")) or "7BIT").upper()
    part.md5 = _decode(get.get("content-md5"))
    disp = get.get("content-disposition")
    if disp:
        fast = _fast_params(disp)
        if fast is None:
            part.disposition = (str(disp).split(";")[0].strip().upper(), _params(msg, "content-disposition"))
        else:
            part.disposition = (fast[0].strip().upper(), fast[1])
    part.language = _decode(get.get("content-language"))
    part.location = _decode(get.get("content-location"))


def _parse_part(lines: _Lines, boundaries: list[bytes], default_type: str, depth: int, top: bool) -> Part:
    lines.parts += 1
    header_start = lines.pos
    raw, body_start = _read_headers(lines, boundaries)
    lines.header_bytes += len(raw)
    # RFC 5322 §2.2.3 unfolding: a CRLF before whitespace is not part of the value (a folded
    # ``boundary="foo<CRLF> bar"`` is the boundary ``foo bar``)
    msg = parse_header_block(_unfold(raw))
    if top and depth == 0:
        lines.top_headers = msg
    part = Part(header_start, body_start, body_start)
    _fill(part, msg, default_type)
    if top and (depth or lines.top_envelope):
        part.envelope = envelope(msg)
    boundary = part.param("boundary") if part.is_multipart else None
    descend = depth < MAX_DEPTH and lines.budget_left
    if not descend and (part.is_multipart and boundary or part.is_message_type):
        _make_opaque(part)  # a container we do not open: a leaf with its body as it is
    if part.is_multipart and boundary and descend:
        b = boundary.encode("utf-8", "surrogateescape")
        inner = [*boundaries, b]
        child_default = "message/rfc822" if part.subtype == "digest" else "text/plain"
        # preamble
        closed = False
        while True:
            line = lines.peek()
            if not line:
                closed = True
                break
            hit = _boundary_hit(line, inner)
            if hit is not None:
                if hit != b:
                    closed = True
                    break
                lines.next()
                if line.rstrip(b" \t\r\n").endswith(b"--") and line.rstrip(b" \t\r\n") != b"--" + b:
                    closed = True
                break
            lines.next()
        while not closed:
            if not lines.budget_left:
                child = _opaque_rest(lines, inner, b)
            else:
                child = _parse_part(lines, inner, child_default, depth + 1, False)
            part.children.append(child)
            line = lines.peek()
            if not line or _boundary_hit(line, inner) != b:
                break  # truncated, or an outer boundary ends us
            lines.next()
            if line.rstrip(b" \t\r\n") == b"--" + b + b"--":
                break
        # epilogue: up to an outer boundary or EOF
        _skip_to_boundary(lines, boundaries)
        part.end = lines.pos
        _trim_end(part, lines, boundaries)
        return part
    if part.is_message_type:
        part.message = _parse_part(lines, boundaries, "text/plain", depth + 1, True)
        part.envelope = part.message.envelope
        part.message.envelope = None
        part.end = part.message.end
        part.lines = _count_lines(lines, part.body_start, part.end)
        return part
    count, last = lines.skip_leaf(boundaries)
    part.end = lines.pos
    part.lines = count
    if lines.peek() and last:  # the CRLF before a boundary belongs to the boundary
        part.end -= _eol_len(last)
        if last in (b"\r\n", b"\n"):
            part.lines -= 1  # ... so a blank last line is no line of the part's text
    return part


def _make_opaque(part: Part) -> None:
    """Turn a container past the limits into a leaf clients can fetch as an attachment (a
    message/rfc822 without its ENVELOPE and body would be an invalid BODYSTRUCTURE)."""
    part.maintype, part.subtype = "application", "octet-stream"
    part.params = [(k, v) for k, v in part.params if k in ("NAME", "NAME*")]
    part.description = part.description or OPAQUE_DESCRIPTION


def _opaque_rest(lines: _Lines, boundaries: list[bytes], b: bytes) -> Part:
    """Once the tree's budget is spent: the rest of the multipart delimited by ``b``, up
    to its close delimiter (or an outer boundary, or the end), as one opaque part. Costs one
    line in memory, whatever the number of parts it hides."""
    lines.parts += 1
    start = lines.pos
    part = Part(start, start, start, "application", "octet-stream", description=OPAQUE_DESCRIPTION)
    close = b"--" + b + b"--"
    last = b""
    while True:
        line = lines.peek()
        if not line:
            break
        hit = _boundary_hit(line, boundaries)
        if hit is not None and (hit != b or line.rstrip(b" \t\r\n") == close):
            break
        lines.next()
        last = line
    part.end = lines.pos
    if lines.peek() and last:  # the CRLF before a boundary belongs to the boundary
        part.end -= _eol_len(last)
    return part


def _skip_to_boundary(lines: _Lines, boundaries: list[bytes]) -> None:
    while True:
        line = lines.peek()
        if not line or _boundary_hit(line, boundaries):
            return
        lines.next()


def _trim_end(part: Part, lines: _Lines, boundaries: list[bytes]) -> None:
    """A multipart followed by an outer boundary gives the CRLF before it to that boundary."""
    if lines.peek() and boundaries and part.end > part.body_start:
        f = lines.f
        save = f.tell()
        f.seek(max(part.end - 2, part.body_start))
        tail = f.read(part.end - max(part.end - 2, part.body_start))
        f.seek(save)
        part.end -= 2 if tail.endswith(b"\r\n") else 1 if tail.endswith(b"\n") else 0


def _count_lines(lines: _Lines, start: int, end: int) -> int:
    f = lines.f
    save = f.tell()
    f.seek(start)
    left = end - start
    n = 0
    while left > 0:
        chunk = f.read(min(65536, left))
        if not chunk:
            break
        n += chunk.count(b"\n")
        left -= len(chunk)
    f.seek(save)
    return n


def parse_structure(f: BinaryIO, envelope: bool = True) -> Part:
    """Scan a whole message file; the returned top Part carries the message's envelope (None
    with ``envelope=False``: see ``parse_with_headers``)."""
    return parse_with_headers(f, envelope)[0]


def header_end(f: BinaryIO) -> int:
    """Where the top-level body starts (``parse_structure(f).body_start``: the header block's
    end as the whole parse finds it), from the header block alone: a FETCH of
    ``BODY[HEADER.FIELDS (…)]`` or ``BODY[HEADER]`` needs no MIME tree."""
    f.seek(0)
    head = f.read(4096)
    if head[:1] == b"\n":
        return 1
    if head[:2] == b"\r\n":
        return 2
    # The usual block ends in the first 4 KB: there, each line before its empty line is shorter
    # than readline's 64 KB and the first "\n\r\n" or "\n\n" is where _read_headers ends it
    crlf = head.find(b"\n\r\n")
    lf = head.find(b"\n\n", 0, crlf + 1 if crlf >= 0 else len(head))  # "\n\n\r\n": the "\n" line first
    if lf >= 0:
        return lf + 2
    if crlf >= 0:
        return crlf + 3
    if len(head) < 4096:
        return len(head)  # the whole file, with no empty line: headers only
    f.seek(0)
    return _read_headers(_Lines(f), [])[1]


def parse_envelope(f: BinaryIO) -> tuple[list[Any], str | None]:
    """(ENVELOPE, Date header) from the top-level header block alone, parsed as
    ``parse_with_headers`` does (same unfolding, same cap), without walking the body."""
    f.seek(0)
    raw, _ = _read_headers(_Lines(f), [])
    msg = parse_header_block(_unfold(raw))
    return envelope(msg), msg.get("Date")


def parse_with_headers(f: BinaryIO, envelope: bool = True) -> tuple[Part, Message]:
    """``parse_structure`` plus the parsed top-level header block (parsed once, used twice).

    ``envelope=False`` skips the top message's ENVELOPE (``top.envelope`` stays None; address
    parsing was about a third of the parse) for a caller that has it already; the ENVELOPE of
    an encapsulated message/rfc822 part is still built, its BODYSTRUCTURE holds it."""
    f.seek(0)
    lines = _Lines(f)
    lines.top_envelope = envelope
    top = _parse_part(lines, [], "text/plain", 0, True)
    assert lines.top_headers is not None
    return top, lines.top_headers


# -- BODY / BODYSTRUCTURE ------------------------------------------------------------------
def _plist(params: list[tuple[str, str]]) -> list[str] | None:
    if not params:
        return None
    out: list[str] = []
    for k, v in params:
        out += [k, v]
    return out


def body_structure(part: Part, extensible: bool = True) -> list[Any]:
    """The BODYSTRUCTURE (or, with ``extensible=False``, BODY) of ``part`` as nested lists."""
    if part.is_multipart and part.children:
        out: list[Any] = [body_structure(c, extensible) for c in part.children]
        out.append(part.subtype.upper())
        if extensible:
            disp = [part.disposition[0], _plist(part.disposition[1])] if part.disposition else None
            out += [_plist([p for p in part.params]), disp, part.language, part.location]
        return Multipart(out, len(part.children))
    maintype = "TEXT" if part.is_multipart else part.maintype.upper()
    subtype = "PLAIN" if part.is_multipart else part.subtype.upper()
    out = [maintype, subtype, _plist(part.params), part.cid, part.description, part.encoding, part.size]
    if part.is_message and part.message is not None:
        out += [part.envelope, body_structure(part.message, extensible), part.lines]
    elif maintype == "TEXT":
        out.append(part.lines)
    if extensible:
        disp = [part.disposition[0], _plist(part.disposition[1])] if part.disposition else None
        out += [part.md5, disp, part.language, part.location]
    return out


class Multipart(list):  # type: ignore[type-arg]
    """A multipart BODYSTRUCTURE: its first ``nchildren`` items render without spaces between."""

    def __init__(self, items: list[Any], nchildren: int):
        super().__init__(items)
        self.nchildren = nchildren


# -- sections ------------------------------------------------------------------------------
def find_part(top: Part, path: list[int]) -> Part | None:
    """Resolve a section part path (``[1, 2]`` for ``1.2``) per RFC 3501 §6.4.5.

    A message's parts are its multipart children, or, when it is not multipart, part 1: its
    own body. A message/rfc822 part's subparts are those of the message it encapsulates, so
    with a message/rfc822 inside a message/rfc822 ``1.1`` is the inner message and ``1.1.1``
    its text.
    """
    cur = top
    is_message = True  # cur stands for a message (numbering its parts), not for a body part
    for n in path:
        if not is_message and cur.is_message and cur.message is not None:
            cur = cur.message
            is_message = True
        if cur.is_multipart and cur.children:
            if not 1 <= n <= len(cur.children):
                return None
            cur = cur.children[n - 1]
            is_message = False
        elif is_message and n == 1:
            is_message = False  # the body of a non-multipart message is its part 1
        else:
            return None
    return cur


def iter_parts(top: Part) -> Iterator[Part]:
    yield top
    for c in top.children:
        yield from iter_parts(c)
    if top.message is not None:
        yield from iter_parts(top.message)
