"""BODYSTRUCTURE wire bytes straight from a message's bytes, for the common shapes of messages.

Why: a FETCH BODYSTRUCTURE of a message the background indexer has not parsed yet (a phone's
first sync of an older folder) went through ``mime.parse_structure`` (a line reader, ``Part``
objects, the email package's header machinery on its slow paths) and ``bodywire.wire``: ~170 us
a message of the bench's corpus, 100 of them 5.2-5.6x Dovecot's whole answer (issue 11). Most
mail is a plain header block over text, text+html or text+attachment; for those the structure
is a handful of ``bytes.find`` / ``count`` calls and one regex a header block, and the wire
form can be written directly. ``quick_wire`` does that and nothing else.

The oracle: for every message it accepts, ``quick_wire(data)`` is byte for byte
``bodywire.wire(mime.parse_structure(io.BytesIO(data), envelope=False))``; for any other it
returns None and the caller takes that path (``tests/unit/imap/test_quick_wire.py`` holds the
two together: the bench's corpus, the mutants and corpora of the MIME tests, generated messages).

What it accepts: every header block (the top one and each part's) in the form
``mime.parse_header_block`` cuts itself — printable ASCII and TAB, CRLF or LF line ends, every
(unfolded, as ``mime._unfold``) line a ``name: value`` field, no ``From `` line — and at most
``_MAX_BLOCK`` bytes; Content-Type and Content-Disposition in the plain forms ``mime._fast_params``
reads (its own reading is used, so they read as ``mime._fill`` reads them); Content-Type absent,
any leaf type but message/rfc822 and message/global (an encapsulated message needs its
ENVELOPE), multiparts but multipart/digest (its parts default to message/rfc822) with a
non-empty boundary and at least one part, up to ``_MAX_DEPTH`` levels and ``_MAX_PARTS`` parts;
preambles, epilogues, truncated multiparts, outer boundaries closing inner multiparts, and the
CRLF-before-a-boundary rule are followed as ``mime._parse_part`` follows them. It gives up on a
line longer than ``_MAX_LINE`` where ``mime``'s 64 KiB ``readline`` would cut it (header blocks,
preambles and epilogues inside a multipart, boundary lines), and on anything near the parse's
limits (``mime.MAX_PARTS``, ``MAX_DEPTH``, ``MAX_HEADER``, ``MAX_TREE_HEADERS``), where it cuts
the tree.
"""

from __future__ import annotations

import re

from gk.mail.mailbox.envelope import imap_string
from gk.mail.mailbox.mime import _fast_params, _unfold

_MAX_DEPTH = 8  # multipart levels (mime: 20)
_MAX_PARTS = 200  # parts of a message (mime: 2,000)
_MAX_BLOCK = 60_000  # bytes of one header block (mime: 256 KiB, read in lines of at most 64 KiB)
_MAX_HEADERS = 256 * 1024  # header bytes of all blocks (mime: 1 MiB)
_MAX_LINE = 65_000  # a longer line where mime's readline(65536) would cut it: given up on

# a header block parse_header_block cuts itself: printable ASCII and TAB, CR only before LF,
# each line a field (a name of _FIELDS, a colon)
_BLOCK = re.compile(rb"(?:[\x21-\x39\x3b-\x7e]+:[\t\x20-\x7e]*\r?\n)*(?:[\x21-\x39\x3b-\x7e]+:[\t\x20-\x7e]*)?")
_EMPTY_LINE = re.compile(rb"\n\r?\n")  # the line end before an empty line, and that line
_QUOTED: dict[str, bytes] = {}  # imap_string of the usual strings ("TEXT", "PLAIN", "utf-8"…)


class _GiveUp(Exception):
    """The message is not of a shape ``quick_wire`` reads: the caller takes the reference path."""


def _q(value: str | None) -> bytes:
    """``imap_string(value)``, remembered for the few hundred strings most messages repeat."""
    if value is None:
        return b"NIL"
    out = _QUOTED.get(value)
    if out is None:
        out = imap_string(value)
        if len(_QUOTED) < 4096 and len(value) <= 64:
            _QUOTED[value] = out
    return out


def _plist(params: list[tuple[str, str]]) -> bytes:
    if not params:
        return b"NIL"
    return b"(" + b" ".join([_q(k) + b" " + _q(v) for k, v in params]) + b")"


def _decode(raw: str | None) -> str | None:
    return None if raw is None else " ".join(raw.split())


def _long_line(data: bytes, start: int, end: int) -> bool:
    """Has ``data[start:end]`` a line of ``_MAX_LINE`` bytes or more (one mime's readline cuts)?"""
    if end - start < _MAX_LINE:
        return False
    i = start
    while i < end:
        k = data.find(b"\n", i, end)
        if k < 0:
            k = end
        if k - i >= _MAX_LINE:
            return True
        i = k + 1
    return False


# The boundaries of the open multiparts as mime._boundary_hit reads a line: the line without its
# trailing blanks, "--b" or "--b--", mapped to b — built outermost first, so the innermost of two
# boundaries a line delimits wins, as _boundary_hit tries them innermost first — and the
# b"\n--" + b that start such lines
_Hits = tuple[dict[bytes, bytes], tuple[bytes, ...]]
_Line = tuple[int, bytes | None, int, bytes]  # (start, boundary it delimits, end, its stripped form)
_NO_HITS: _Hits = ({}, ())


def _hit(data: bytes, j: int, hits: dict[bytes, bytes]) -> _Line | None:
    """The line at ``j`` if it is a boundary line of ``hits``."""
    e = data.find(b"\n", j)
    e = len(data) if e < 0 else e + 1
    s = data[j:e].rstrip(b" \t\r\n")
    b = hits.get(s)
    if b is None:
        return None
    if e - j >= _MAX_LINE:
        raise _GiveUp  # mime reads it in 64 KiB pieces
    return j, b, e, s


def _next_hit(data: bytes, pos: int, hits: _Hits, limit: int = -1) -> _Line:
    """The first line at or after ``pos`` (a line's start), and starting before ``limit`` if
    given, that is a boundary line of ``hits``: (its start, its boundary, its end, itself
    without trailing blanks); (len, None, len, b"") if none is."""
    n = len(data)
    none = (n, None, n, b"")
    table, needles = hits
    if not needles or pos == limit:
        return none
    if data.startswith(b"--", pos):
        found = _hit(data, pos, table)
        if found is not None:
            return found
    if limit >= 0:  # a header block's few lines: each that starts with "--"
        j = data.find(b"\n--", pos, limit + 1)
        while j >= 0:
            found = _hit(data, j + 1, table)
            if found is not None:
                return found
            j = data.find(b"\n--", j + 1, limit + 1)
        return none
    # a body: first by its "-"s (a memchr: a base64 attachment of 150 KB has none before its
    # boundary line, and bytes.find of b"\n--" took 100+ us through it) ...
    for _ in range(16):
        k = data.find(b"-", pos)
        if k < 0:
            return none
        if k == pos or data[k - 1] == 10:  # a line that starts with "-"
            found = _hit(data, k, table)
            if found is not None:
                return found
        pos = data.find(b"\n", k)  # the line end before the next line to look at
        if pos < 0:
            return none
    # ... and, in a text with many, the lines that start with "--" and a boundary
    while True:
        j = -1
        for needle in needles:
            k = data.find(needle, pos)
            if k >= 0 and (j < 0 or k < j):
                j = k
        if j < 0:
            return none
        found = _hit(data, j + 1, table)
        if found is not None:
            return found
        pos = j + 1


class _Reader:
    __slots__ = ("data", "parts", "header_bytes")

    def __init__(self, data: bytes):
        self.data = data
        self.parts = 0
        self.header_bytes = 0

    def header_block(self, pos: int, hits: _Hits) -> tuple[dict[str, str], int]:
        """The first value of each Content-* field (names lower-cased) of the header block at
        ``pos``, and where its body starts: as mime's ``_read_headers``, ``_unfold``,
        ``parse_header_block`` (its own cut only) and ``_fill``'s gathering of the fields."""
        data = self.data
        n = len(data)
        window = min(n, pos + _MAX_BLOCK + 3)
        # the first empty line: the one at pos, or after a "\n"
        if data.startswith(b"\n", pos):
            blank, after = pos, pos + 1
        elif data.startswith(b"\r\n", pos):
            blank, after = pos, pos + 2
        else:
            m = _EMPTY_LINE.search(data, pos, window)
            if m is not None:
                blank, after = m.start() + 1, m.end()
            elif window == n:
                blank, after = n, n  # the block runs to the end of the file
            else:
                raise _GiveUp  # a header block longer than we read
        if hits[1]:  # a boundary line before the empty line ends the block (it is not read)
            j, b, _, _ = _next_hit(data, pos, hits, blank)
            if b is not None:
                blank = after = j
        if blank - pos > _MAX_BLOCK:
            raise _GiveUp
        self.header_bytes += blank - pos
        if self.header_bytes > _MAX_HEADERS:
            raise _GiveUp
        raw = data[pos:blank]
        if _BLOCK.fullmatch(raw) is None:
            # parse_header_block's own cut takes an unfolded block (_unfold) of printable ASCII
            # and TAB, CR only before LF, every line a field; unfolding changes none of that
            unfolded = _unfold(raw)
            if unfolded == raw or _BLOCK.fullmatch(unfolded) is None:
                raise _GiveUp  # 8-bit, controls, a line that is no field: the email package's
            raw = unfolded
        # the fields as _FIELDS cuts them (name, ":", blanks, value up to the line's end),
        # first of each Content-* name: those mime._fill reads
        get: dict[str, str] = {}
        low = b"\n" + raw.lower()  # low[i] is the line end before raw[i]
        i = low.find(b"\ncontent-")
        while i >= 0:
            colon = raw.index(b":", i)
            e = raw.find(b"\n", colon)
            if e < 0:
                e = len(raw)
            key = low[i + 1 : colon + 1].decode("ascii")
            if key not in get:
                get[key] = raw[colon + 1 : e].lstrip(b" \t").rstrip(b"\r").decode("ascii")
            i = low.find(b"\ncontent-", e + 1)
        return get, after

    def part(self, pos: int, hits: _Hits, depth: int) -> tuple[bytes, _Line]:
        """The wire form of the part whose header block starts at ``pos`` inside the multiparts
        whose boundary lines are ``hits``, and the line mime's reader stops at after it (a
        boundary line of ``hits``, or the end)."""
        self.parts += 1
        if self.parts > _MAX_PARTS:
            raise _GiveUp
        data = self.data
        get, body = self.header_block(pos, hits)
        value = get.get("content-type")
        kind = _TYPES.get(value) if value else _TEXT_PLAIN
        if kind is None:
            kind = _content_type(value)  # type: ignore[arg-type]
        head, text, boundary = kind
        if len(get) == (value is not None):  # no Content-* field but the type: mime's defaults
            tail = b"NIL NIL NIL)"
            fields = b' NIL NIL "7BIT" '
            md5 = b" NIL "
        else:
            raw_disp = get.get("content-disposition")
            disp = _disposition(raw_disp) if raw_disp else b"NIL"
            lang, loc = get.get("content-language"), get.get("content-location")
            tail = disp + b" " + _q(_decode(lang)) + b" " + _q(_decode(loc)) + b")"
            cte = get.get("content-transfer-encoding")
            cid, description = get.get("content-id"), get.get("content-description")
            fields = b" " + _q(_decode(cid)) + b" " + _q(_decode(description)) + b" "
            fields += _q((_decode(cte) or "7BIT").upper()) + b" "
            md5 = b" " + _q(_decode(get.get("content-md5"))) + b" "
        if boundary is not None:
            return self.multipart(body, hits, depth, head, boundary, tail)

        # a leaf: up to the first boundary line of any open multipart (mime's skip_leaf)
        stop = _next_hit(data, body, hits)
        end = stop[0]
        n = len(data)
        eol = 0
        if body < end < n:  # the CRLF before a boundary belongs to the boundary
            eol = 2 if end - body >= 2 and data[end - 2] == 13 else 1
        if not text:
            return head + fields + b"%d" % (end - eol - body) + md5 + tail, stop
        # a text part carries its line count
        lines = data.count(b"\n", body, end)
        if end == n:
            if end > body and data[n - 1] != 10:
                lines += 1  # a last line with no line end
        elif eol and (end - eol == body or data[end - eol - 1] == 10):
            lines -= 1  # ... so a blank last line is no line of the part's text
        return head + fields + b"%d %d" % (end - eol - body, lines) + md5 + tail, stop

    def multipart(self, body: int, hits: _Hits, depth: int, head: bytes, b: bytes, tail: bytes) -> tuple[bytes, _Line]:
        if depth >= _MAX_DEPTH:
            raise _GiveUp
        data = self.data
        table = dict(hits[0])
        table[b"--" + b] = b
        table[b"--" + b + b"--"] = b
        needle = b"\n--" + b
        # a needle that starts with another finds its lines too
        needles = tuple(x for x in hits[1] if not x.startswith(needle)) + (needle,)
        inner_hits = (table, needles)
        close = b"--" + b + b"--"
        # the preamble: up to our first boundary line
        j, hit, e, s = _next_hit(data, body, inner_hits)
        if hit != b or s == close or _long_line(data, body, j):
            raise _GiveUp  # no part (mime makes a childless multipart a text/plain leaf)
        pos = e
        kids: list[bytes] = []
        while True:
            wire, stop = self.part(pos, inner_hits, depth + 1)
            kids.append(wire)
            if stop[1] != b:
                break  # the end of the file, or an outer boundary's line ends us (and our epilogue)
            pos = stop[2]
            if stop[3] == close:  # the epilogue: up to an outer boundary's line, or the end
                stop = _next_hit(data, pos, hits)
                if hits[1] and _long_line(data, pos, stop[0]):
                    raise _GiveUp
                break
        # (a multipart's size is not in its BODYSTRUCTURE: where it ends does not matter)
        return b"(" + b"".join(kids) + b" " + head + b" " + tail, stop


# What a Content-Type value makes of a part, as mime._fill reads it: (the wire form's start —
# '("TEXT" "PLAIN" ("CHARSET" "US-ASCII")' for a leaf, '"MIXED" ("BOUNDARY" "b")' for a
# multipart —, is it text/*, the boundary of a multipart or None). Remembered: most messages
# repeat a few dozen values.
_Kind = tuple[bytes, bool, bytes | None]
_TYPES: dict[str, _Kind] = {}
_DISPOSITIONS: dict[str, bytes] = {}


def _content_type(value: str) -> _Kind:
    fast = _fast_params(value)
    if fast is None:
        raise _GiveUp  # RFC 2231, comments, odd quoting: the email package's reading
    ctype = fast[0].strip().lower()
    if ctype.count("/") != 1:
        ctype = "text/plain"  # as Message.get_content_type
    params = fast[1]
    maintype, _, subtype = ctype.partition("/")
    if maintype == "text":
        for k, v in params:
            if k.lower() in ("charset", "charset*"):  # Part.param: the first
                if not v:
                    params.insert(0, ("CHARSET", "US-ASCII"))
                break
        else:
            params.insert(0, ("CHARSET", "US-ASCII"))
    elif maintype == "message" and subtype in ("rfc822", "global"):
        raise _GiveUp  # an encapsulated message: its ENVELOPE, its own structure
    kind: _Kind
    if maintype == "multipart":
        boundary = None
        for k, v in params:
            if k.lower() in ("boundary", "boundary*"):
                boundary = v
                break
        if not boundary or subtype == "digest":
            raise _GiveUp  # no boundary: mime makes it a text/plain leaf; digest: message/rfc822 parts
        kind = (_q(subtype.upper()) + b" " + _plist(params), False, boundary.encode("ascii"))
    else:
        upper = maintype.upper()
        kind = (b"(" + _q(upper) + b" " + _q(subtype.upper()) + b" " + _plist(params), upper == "TEXT", None)
    if len(value) <= 256:  # (a hostile message's long values are not kept)
        if len(_TYPES) >= 1024:
            _TYPES.clear()
        _TYPES[value] = kind
    return kind


_TEXT_PLAIN = _content_type("text/plain")  # no Content-Type (multipart/digest's default is not taken)


def _disposition(value: str) -> bytes:
    out = _DISPOSITIONS.get(value)
    if out is None:
        fast = _fast_params(value)
        if fast is None:
            raise _GiveUp
        out = b"(" + _q(fast[0].strip().upper()) + b" " + _plist(fast[1]) + b")"
        if len(value) <= 256:
            if len(_DISPOSITIONS) >= 1024:
                _DISPOSITIONS.clear()
            _DISPOSITIONS[value] = out
    return out


def quick_wire(data: bytes) -> bytes | None:
    """``bodywire.wire(mime.parse_structure(io.BytesIO(data), envelope=False))`` for a message
    of the shapes this module reads, else None (see the module's docstring)."""
    if not data:
        return None
    try:
        return _Reader(data).part(0, _NO_HITS, 0)[0]
    except _GiveUp:
        return None
