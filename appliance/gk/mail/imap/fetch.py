"""FETCH: attribute parsing and the byte-exact section reader.

Sections (RFC 3501 §6.4.5) resolve against the stored MIME tree (``mailbox.mime.Part``, byte
offsets into the Maildir file), so ``BODY[2.1.TEXT]<100.50>`` seeks to those bytes and streams
them in 64 KB chunks; a message is never read whole into memory. ``HEADER.FIELDS`` reads only
the header block of the part concerned.

BINARY (RFC 3516, part of IMAP4rev2): ``BINARY[1.2]<o.n>``, ``BINARY.PEEK[…]`` and
``BINARY.SIZE[…]`` give a part with its Content-Transfer-Encoding undone — base64 and
quoted-printable decoded (``reading.decoded_chunks``, the webmail's download decoder), 7bit,
8bit and binary as they are, and streamed like a BODY section; any other encoding fails the
FETCH with ``NO [UNKNOWN-CTE]``. Decoded data is held in memory (at most the part's size: a
message is bounded by ``smtp.max_message_size``) and sent as a ``~{n}`` literal8 when it holds
a NUL byte. ``BINARY[]`` is the whole message as stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO

from gk import pools
from gk.mail.imap.parser import Parser
from gk.mail.imap.protocol import BadCommand
from gk.mail.mailbox import Part, find_part, header_end, reading

_ATT_CHARS = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.")
_SPECS = {"", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"}
SIMPLE = {"FLAGS", "UID", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODYSTRUCTURE", "BODY", "MODSEQ"}
MACROS = {
    "ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
    "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
    "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"],
}
MAX_HEADER_READ = 1024 * 1024
# Content-Transfer-Encodings BINARY undoes (RFC 2045 6.1); the first three are sent as they are
IDENTITY_ENCODINGS = frozenset({"7BIT", "8BIT", "BINARY"})
BINARY_ENCODINGS = IDENTITY_ENCODINGS | {"BASE64", "QUOTED-PRINTABLE"}
DECODE_ON_HUB = 64 * 1024  # a BINARY part up to this size is decoded on the hub, a bigger one in the CPU pool


class UnknownCTE(Exception):
    """A BINARY section whose Content-Transfer-Encoding GK cannot undo (RFC 3516 4.3)."""


@dataclass
class FetchAtt:
    name: str  # FLAGS, UID, … or "SECTION" for BODY[…] / RFC822 / RFC822.HEADER / RFC822.TEXT
    path: list[int] = field(default_factory=list)
    spec: str = ""
    fields: list[str] = field(default_factory=list)
    partial: tuple[int, int] | None = None
    peek: bool = True
    label: str = ""
    # HEADER.FIELDS: whether to send the field of each header name met, as its line has it (the
    # bytes before the colon): made once per distinct name, not per line of every message
    known: dict[bytes, bool] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_section(self) -> bool:
        return self.name == "SECTION"

    @property
    def is_binary(self) -> bool:
        """BINARY[…] / BINARY.PEEK[…] (``name`` "BINARY") or BINARY.SIZE[…]."""
        return self.name in ("BINARY", "BINARY.SIZE")

    @property
    def is_whole(self) -> bool:
        """BODY[] / RFC822 (partial or not): the whole file, served without its MIME tree."""
        return self.name == "SECTION" and not self.path and self.spec == ""

    @property
    def needs_tree(self) -> bool:
        """Served from the message's MIME tree (``section_data``'s ``top``)? Not a section of the
        top level: the whole file, its header block (``BODY[HEADER]``, ``BODY[HEADER.FIELDS (…)]``:
        what a mail client's message list fetches) or its body (``BODY[TEXT]``) are cut where
        the header block ends (``header_end``), read from the file alone. A lazily indexed
        message's tree is a whole parse of it (~1 ms), a parsed one's a JSON load."""
        return (self.name == "SECTION" or self.is_binary) and bool(self.path)


def _partial(p: Parser) -> tuple[int, int] | None:
    if not p.try_(b"<"):
        return None
    origin = p.number("a partial origin")
    p.expect(b".")
    count = p.number("a partial length", nz=True)
    p.expect(b">")
    return origin, count


def _binary(p: Parser, name: str) -> FetchAtt:
    """``BINARY[section-part]<partial>``, ``BINARY.PEEK[…]`` or ``BINARY.SIZE[section-part]``
    (RFC 3516 section-binary: part numbers only, no HEADER/TEXT/MIME)."""
    p.expect(b"[")
    text = p._take(lambda c: c in b"0123456789.").decode("ascii")
    path: list[int] = []
    for piece in text.split(".") if text else []:
        if not piece.isdigit() or not 0 < int(piece) <= 100_000:
            raise BadCommand("BINARY section part numbers start at 1")
        path.append(int(piece))
    p.expect(b"]", "']' (a BINARY section is part numbers only)")
    size = name == "BINARY.SIZE"
    partial = None if size else _partial(p)
    label = f"{'BINARY.SIZE' if size else 'BINARY'}[{text}]" + (f"<{partial[0]}>" if partial else "")
    return FetchAtt("BINARY.SIZE" if size else "BINARY", path, "", [], partial, name != "BINARY", label)


def _section(p: Parser, peek: bool) -> FetchAtt:
    p.expect(b"[")
    text = p._take(lambda c: c in _ATT_CHARS).decode("ascii").upper()
    pieces = text.split(".") if text else []
    path: list[int] = []
    while pieces and pieces[0].isdigit():
        n = int(pieces.pop(0))
        if n == 0 or n > 100_000:
            raise BadCommand("section part numbers start at 1")
        path.append(n)
    spec = ".".join(pieces)
    if spec not in _SPECS or (spec == "MIME" and not path):
        raise BadCommand(f"unknown section {text!r}")
    fields: list[str] = []
    if spec.startswith("HEADER.FIELDS"):
        p.sp()
        p.open_list()
        while True:
            fields.append(p.astring("a header field name").decode("ascii", "replace"))
            if p.close_list():
                break
            p.sp()
    p.expect(b"]")
    partial = _partial(p)
    section = ".".join([*(str(n) for n in path), spec]).strip(".")
    if fields:
        section += " (" + " ".join(f.upper() for f in fields) + ")"
    label = f"BODY[{section}]" + (f"<{partial[0]}>" if partial else "")
    return FetchAtt("SECTION", path, spec, fields, partial, peek, label)


def parse_att(p: Parser) -> FetchAtt:
    name = p._take(lambda c: c in _ATT_CHARS).decode("ascii").upper()
    if name in ("BODY", "BODY.PEEK") and p.peek() == ord("["):
        return _section(p, name == "BODY.PEEK")
    if name in ("BINARY", "BINARY.PEEK", "BINARY.SIZE") and p.peek() == ord("["):
        return _binary(p, name)
    if name == "RFC822":
        return FetchAtt("SECTION", peek=False, label="RFC822")
    if name == "RFC822.PEEK":  # in no RFC, but what Outlook sends (MS-STANOIMAP 2.2.9): BODY.PEEK[]
        return FetchAtt("SECTION", peek=True, label="RFC822")
    if name == "RFC822.HEADER":
        return FetchAtt("SECTION", spec="HEADER", peek=True, label="RFC822.HEADER")
    if name == "RFC822.TEXT":
        return FetchAtt("SECTION", spec="TEXT", peek=False, label="RFC822.TEXT")
    if name in SIMPLE:
        return FetchAtt(name)
    raise BadCommand(f"unknown FETCH attribute {name!r}" if name else "expected a FETCH attribute")


# The attribute lists a session sends are few and repeated (a client fetches each body with the
# same ``(BODY.PEEK[])``): parsed once, the rest of a command line maps to its attributes and
# the bytes they took. FetchAtt values are never changed after parsing; each call gets its own
# list. Only lines without literals, and short ones, are kept (the cache holds < 64 KB).
_PARSED: dict[bytes, tuple[list[FetchAtt], int]] = {}
_PARSED_MAX = 256
_PARSED_KEY_MAX = 200


def parse_atts(p: Parser) -> list[FetchAtt]:
    """The FETCH attributes (a macro, one attribute or a parenthesized list) at ``p``."""
    if p.i != len(p.parts) - 1:  # a literal follows somewhere: parse it as it comes
        return _parse_atts(p)
    rest = p.line[p.pos :]
    hit = _PARSED.get(rest)
    if hit is not None:
        p.pos += hit[1]
        return list(hit[0])
    start = p.pos
    atts = _parse_atts(p)
    if len(rest) <= _PARSED_KEY_MAX:
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[rest] = (list(atts), p.pos - start)
    return atts


def _parse_atts(p: Parser) -> list[FetchAtt]:
    if p.peek() == ord("("):
        p.open_list()
        atts: list[FetchAtt] = []
        while True:
            save = p.pos
            word = p._take(lambda c: c in _ATT_CHARS).decode("ascii").upper()
            if word in MACROS and p.peek() in (ord(" "), ord(")")):  # lenient: "(FAST)" as clients send it
                atts += [FetchAtt(n) for n in MACROS[word]]
            else:
                p.pos = save
                atts.append(parse_att(p))
            if p.close_list():
                break
            p.sp()
        return atts
    save = p.pos
    word = p._take(lambda c: c in _ATT_CHARS).decode("ascii").upper()
    if word in MACROS:
        return [FetchAtt(n) for n in MACROS[word]]
    p.pos = save
    return [parse_att(p)]


def _header_fields(raw: bytes, names: list[str], negate: bool, known: dict[bytes, bool] | None = None) -> bytes:
    """The lines of the fields named (``negate``: of the others) of a header block, each with its
    continuation lines, and the empty line that ends them. ``known``: the decision of each raw
    name met so far for these ``names`` (a FetchAtt's, kept across messages; at most 1,024)."""
    if known is None:
        known = {}
    wanted: set[str] | None = None
    out: list[bytes] = []
    keep = False
    for line in raw.splitlines(keepends=True):
        if line == b"\r\n" or line == b"\n":
            break
        first = line[:1]
        if first == b" " or first == b"\t":
            if keep:
                out.append(line)
            continue
        head = line.split(b":", 1)[0]
        decided = known.get(head)
        if decided is None:
            if wanted is None:
                wanted = {n.lower() for n in names}
            decided = (head.strip().decode("ascii", "replace").lower() in wanted) != negate
            if len(known) < 1024:
                known[head] = decided
        keep = decided
        if keep:
            out.append(line)
    return b"".join(out) + b"\r\n"


def section_range(top: Part, att: FetchAtt, size: int) -> tuple[int, int] | None:
    """(start, end) byte offsets of a section in the file, or None if it does not exist."""
    if not att.path:
        part: Part | None = top
        msg: Part | None = top
    else:
        part = find_part(top, att.path)
        if part is None:
            return None
        msg = part.message if part.is_message else None
    if att.spec == "":
        return (0, size) if not att.path else (part.body_start, part.end)  # type: ignore[union-attr]
    if att.spec == "MIME":
        return (part.header_start, part.body_start)  # type: ignore[union-attr]
    if msg is None:
        return None
    if att.spec.startswith("HEADER"):
        return (msg.header_start, msg.body_start)
    return (msg.body_start, size if msg is top else msg.end)


def section_data(f: BinaryIO, top: Part | None, att: FetchAtt, size: int) -> tuple[bytes | None, int, int]:
    """What to send for a section: (small bytes, 0, 0) or (None, start, length) to stream.
    ``top`` may be None for a section that needs no tree (``FetchAtt.needs_tree``)."""
    if top is None:
        assert not att.needs_tree
        rng: tuple[int, int] | None = (0, size)
        if not att.is_whole:
            body = header_end(f)
            rng = (body, size) if att.spec == "TEXT" else (0, body)
    else:
        rng = section_range(top, att, size)
    if rng is None:
        return b"", 0, 0
    start, end = rng
    if att.spec.startswith("HEADER.FIELDS"):
        f.seek(start)
        data = _header_fields(
            f.read(min(end - start, MAX_HEADER_READ)), att.fields, att.spec.endswith("NOT"), att.known
        )
        return _sliced(data, att.partial), 0, 0
    return _streamed(start, end, att.partial)


def _sliced(data: bytes, partial: tuple[int, int] | None) -> bytes:
    """``<origin.count>`` of bytes made in memory."""
    return data if partial is None else data[partial[0] : partial[0] + partial[1]]


def _streamed(start: int, end: int, partial: tuple[int, int] | None) -> tuple[None, int, int]:
    """(None, start, length) of the file's ``start:end`` to stream, ``<origin.count>`` of it."""
    if partial is not None:
        o, n = partial
        start = min(start + o, end)
        end = min(start + n, end)
    return None, start, max(0, end - start)


def binary_check(top: Part | None, att: FetchAtt) -> None:
    """Raise ``UnknownCTE`` before anything of the message is written if its BINARY section
    has an encoding BINARY cannot undo."""
    if top is not None and att.path:
        part = find_part(top, att.path)
        if part is not None and part.encoding.upper() not in BINARY_ENCODINGS:
            raise UnknownCTE(part.encoding)


def _decoded(f: BinaryIO, part: Part) -> bytes:
    return b"".join(reading.decoded_chunks(f, part))


def binary_data(f: BinaryIO, top: Part | None, att: FetchAtt, size: int) -> tuple[bytes | None, int, int]:
    """What to send for a BINARY section, as ``section_data``: (decoded bytes, 0, 0), or (None,
    start, length) to stream a part whose encoding is the identity. For BINARY.SIZE the length
    alone matters. A part that does not exist is empty. ``binary_check`` ran first."""
    if not att.path:  # BINARY[]: the message as stored
        start, end = 0, size
    else:
        assert top is not None
        part = find_part(top, att.path)
        if part is None:
            return b"", 0, 0
        if part.encoding.upper() not in IDENTITY_ENCODINGS:
            # a big attachment is decoded in the CPU pool, not on the hub (~5 ms a MB here)
            data = _decoded(f, part) if part.size <= DECODE_ON_HUB else pools.run_cpu(_decoded, f, part)
            return _sliced(data, att.partial), 0, 0
        start, end = part.body_start, part.end
    return _streamed(start, end, att.partial)
