"""Reading a stored message as text: the body to show, its text, its attachments.

The mailbox's public reading API (used by the webmail, next by the assistant's tools): plain
typed values, no HTML rendering or web concerns (sanitizing HTML for display is the webmail's
job, ``gk.web.mailrender``). Two levels:

- on a message already at hand (its MIME tree ``Part`` from ``UserMailbox.structure`` and the
  open file from ``UserMailbox.open_message``): ``choose_body``, ``part_text``,
  ``numbered_parts``, ``attachments``, ``stream_part``, ``preview``;
- on a mailbox, by folder and UID (each opens and closes the message file itself):
  ``body_text``, ``body_html``, ``message_attachments``, ``attachment``, ``message_preview``.

Memory: a body's text is read up to ``MAX_BODY`` (2 MB); attachments are streamed and decoded
in 48 KiB chunks, never held whole; a preview reads at most ``PREVIEW_READ`` bytes.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import quopri
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from email.errors import MessageError
from email.header import Header, decode_header, make_header
from typing import TYPE_CHECKING, Any, BinaryIO

from gk.mail.mailbox.mime import Part, find_part, iter_parts

if TYPE_CHECKING:
    from gk.mail.mailbox.store import UserMailbox

MAX_BODY = 2 * 1024 * 1024  # bytes of a body part read for its text
CHUNK = 48 * 1024
QP_EXACT = 1024 * 1024  # quoted-printable attachments up to this size are decoded to count them
PREVIEW_READ = 2048  # bytes of the body read for a preview line
PREVIEW_CHARS = 140


@dataclass(frozen=True)
class Attachment:
    """One attachment: its section path ("1.2", for ``attachment``), decoded file name, MIME
    type and size (decoded when the message file was at hand, else as stored)."""

    path: str
    name: str
    type: str
    size: int


# -- decoding -----------------------------------------------------------------------------------
_ESCAPED = re.compile("[\udc80-\udcff]+")


def _eight_bit(raw: bytes) -> str:
    """Raw 8-bit header bytes: UTF-8 (RFC 6532: SMTPUTF8 mail, and most undeclared 8-bit headers),
    else Windows-1252 (the usual legacy fallback)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", "replace")


def _chunk(data: bytes | str, charset: str | None) -> str:
    if isinstance(data, str):
        return data
    if charset and charset != "unknown-8bit":
        try:
            return data.decode(charset, "replace")
        except LookupError:
            pass
    return _eight_bit(data)


def _unescape(run: re.Match[str]) -> str:
    return _eight_bit(run.group().encode("utf-8", "surrogateescape"))


def decode_words(value: Any) -> str:
    """An RFC 2047 header value as Unicode (bad encodings kept as they are). Raw 8-bit bytes — a
    compat32 ``Header`` of the ``unknown-8bit`` charset, or surrogate escapes in a string — are
    read by ``_eight_bit``: as ``str()`` gave them, they showed as U+FFFD ("Go\ufffd\ufffdter")."""
    if not value:
        return ""
    if isinstance(value, Header):
        value = "".join(_chunk(b, cs) for b, cs in decode_header(value))
    text = " ".join(str(value).split())
    if not text.isascii():
        text = _ESCAPED.sub(_unescape, text)
    if "=?" not in text:  # no encoded word: what the email package would give back (most headers)
        return text
    try:
        return str(make_header(decode_header(text)))
    except (LookupError, ValueError, binascii.Error, MessageError):  # MessageError: a broken base64 word
        return text


def read_range(f: BinaryIO, start: int, end: int, cap: int | None = None) -> bytes:
    f.seek(start)
    n = end - start if cap is None else min(end - start, cap)
    return f.read(max(0, n))


def decode_body(raw: bytes, encoding: str) -> bytes:
    enc = encoding.lower()
    try:
        if enc == "base64":
            return base64.b64decode(re.sub(rb"[^A-Za-z0-9+/=]", b"", raw) + b"==", validate=False)
        if enc == "quoted-printable":
            return quopri.decodestring(raw)
    except (binascii.Error, ValueError):
        return raw
    return raw


def _decode_text(raw: bytes, part: Part) -> str:
    """Bytes of a text part in its charset; UTF-8 when it names none (a superset of RFC 2045's
    US-ASCII default that also reads the undeclared 8-bit text found in the wild) or one Python
    does not know."""
    charset = part.param("charset") or "utf-8"
    try:
        return raw.decode(charset, "replace")
    except (LookupError, ValueError):  # ValueError: a NUL in the name; "idna" refuses "replace"
        return raw.decode("utf-8", "replace")


def part_text(f: BinaryIO, part: Part, cap: int = MAX_BODY) -> str:
    """The decoded text of a leaf part (transfer encoding undone, charset applied), at most
    ``cap`` bytes of it read. HTML stays HTML (see ``html_to_text``)."""
    return _decode_text(decode_body(read_range(f, part.body_start, part.end, cap), part.encoding), part)


def html_to_text(html: str) -> str:
    """Plain text of an HTML body (scripts and styles dropped, tags removed, entities decoded)."""
    import html as htmllib  # html.entities: ~0.5 MB an idle server does not carry

    text = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", html)
    text = re.sub(r"(?i)<br\s*/?>|</p>|</div>", "\n", text)
    text = re.sub(r"<[^>]+>", "", text)
    return htmllib.unescape(text).strip()


# -- structure ----------------------------------------------------------------------------------
def is_attachment(part: Part) -> bool:
    if part.is_multipart:
        return False
    if part.disposition and part.disposition[0].upper() == "ATTACHMENT":
        return True
    if part.maintype == "text" and part.subtype in ("plain", "html"):
        return False
    return part.maintype not in ("multipart",) and not (part.maintype == "message" and part.message is None)


def part_filename(part: Part) -> str:
    """The attachment's name, decoded: RFC 2231 (``filename*=utf-8''…``, continuations joined by
    the parser) through the email package's own ``decode_rfc2231``/``collapse_rfc2231_value``,
    RFC 2047 encoded words (``=?utf-8?…?=``, common in ``name=``) through ``decode_words``."""
    name = ""
    if part.disposition:
        for k, v in part.disposition[1]:
            if k.lower() in ("filename", "filename*"):
                name = v
    name = name or part.param("name") or ""
    name = decode_rfc2231_name(name) if name else ""
    name = decode_words(name) if name else ""
    name = re.sub(r'[\x00-\x1f/\\"]', "_", name).strip() or "attachment"
    return name[:200]


_RFC2231 = re.compile(r"^[A-Za-z0-9_.:-]*'[A-Za-z0-9-]*'")


def decode_rfc2231_name(value: str) -> str:
    """A parameter value the mailbox index keeps in RFC 2231 wire form (``charset'lang'%XX…``).

    The index re-encodes the email package's already-percent-decoded value (Latin-1 characters
    standing for bytes) as UTF-8, so ``é`` arrives doubly encoded (``%C3%83%C2%A9``); decoding
    once more when the result is still such Latin-1 stand-ins gives the name back. Both the
    doubly and the singly encoded forms decode right."""
    if not _RFC2231.match(value):
        return value
    charset, language, quoted = email.utils.decode_rfc2231(value)
    if not charset:
        return value
    raw = urllib.parse.unquote(quoted, encoding="latin-1")
    try:
        text = str(email.utils.collapse_rfc2231_value((charset, language or "", raw)))
    except LookupError:
        return urllib.parse.unquote(quoted, errors="replace")
    try:  # the index's double encoding: Latin-1 stand-ins for the bytes, in UTF-8
        again = text.encode("latin-1").decode(charset)
    except (UnicodeError, LookupError):
        return text
    return again if again != text else text


def numbered_parts(top: Part) -> list[tuple[str, Part]]:
    """(section path like "1.2", part) for every leaf part, in order (RFC 3501 numbering)."""
    out: list[tuple[str, Part]] = []

    def walk(p: Part, prefix: str) -> None:
        if p.is_multipart and p.children:
            for i, c in enumerate(p.children, 1):
                walk(c, f"{prefix}.{i}" if prefix else str(i))
        else:
            out.append((prefix or "1", p))

    walk(top, "")
    return out


def leaf_part(top: Part, path: str) -> Part | None:
    """The leaf part at section ``path`` ("1.2"), or None (no such part, a multipart, a bad path)."""
    try:
        numbers = [int(x) for x in path.split(".")]
    except ValueError:
        return None
    p = find_part(top, numbers)
    return None if p is None or p.is_multipart else p


def choose_body(top: Part) -> tuple[Part | None, Part | None]:
    """(html part, plain part) to display: the first inline ones outside attachments."""
    html = plain = None
    for p in iter_parts(top):
        if p.maintype == "message":
            break  # do not descend into forwarded messages for the main body
        if p.maintype == "text" and not (p.disposition and p.disposition[0].upper() == "ATTACHMENT"):
            if p.subtype == "html" and html is None:
                html = p
            elif p.subtype == "plain" and plain is None:
                plain = p
    return html, plain


# -- attachments --------------------------------------------------------------------------------
def stream_part(f: BinaryIO, part: Part) -> Iterator[bytes]:
    """The decoded body of ``part``, in chunks (base64 and quoted-printable decoded on the fly).
    Closes ``f`` when done (or when the iterator is closed): made for a download's response."""
    try:
        yield from decoded_chunks(f, part)
    finally:
        f.close()


def decoded_chunks(f: BinaryIO, part: Part) -> Iterator[bytes]:
    """The decoded body of ``part`` in chunks of at most ``CHUNK`` bytes read; leaves ``f`` open."""
    enc = part.encoding.lower()
    f.seek(part.body_start)
    left = part.end - part.body_start
    carry = b""
    while left > 0:
        chunk = f.read(min(CHUNK, left))
        if not chunk:
            break
        left -= len(chunk)
        if enc == "base64":
            data = carry + re.sub(rb"[^A-Za-z0-9+/=]", b"", chunk)
            cut = len(data) - len(data) % 4
            carry = data[cut:]
            try:
                yield base64.b64decode(data[:cut])
            except binascii.Error:
                return
        elif enc == "quoted-printable":
            data = carry + chunk
            cut = data.rfind(b"\n") + 1
            if cut == 0 and left > 0:
                carry = data
                continue
            carry = data[cut:] if left > 0 else b""
            yield quopri.decodestring(data[:cut] if left > 0 else data)
        else:
            yield chunk
    if carry and enc == "base64":
        try:
            yield base64.b64decode(carry + b"=" * (-len(carry) % 4))
        except binascii.Error:  # one stray character at the end holds no byte: nothing to add
            return


def decoded_size(f: BinaryIO, part: Part) -> int:
    """The attachment's size once decoded (what the reader downloads), not its size in the
    message. base64: the encoded length without line ends, times 3/4, minus padding — read from
    the part's first line and its last bytes, not the whole part. Quoted-printable parts up to
    ``QP_EXACT`` are decoded to count; larger ones show their encoded size. Leaves ``f`` open."""
    enc = part.encoding.lower()
    size = part.size
    if enc == "base64" and size > 0:
        f.seek(part.body_start)
        head = f.read(min(size, 4096))
        eol = head.find(b"\n")
        if eol < 0:
            line, ending = len(head.rstrip()), 0
        else:
            ending = 2 if eol > 0 and head[eol - 1 : eol] == b"\r" else 1
            line = eol + 1 - ending
        lines = -(-size // (line + ending)) if line else 1
        chars = max(0, size - lines * ending) if eol >= 0 else len(head.strip())
        f.seek(max(part.body_start, part.end - 8))
        pad = f.read(8).rstrip().count(b"=")
        return max(0, chars // 4 * 3 - min(pad, 2))
    if enc == "quoted-printable" and size <= QP_EXACT:
        return sum(len(chunk) for chunk in decoded_chunks(f, part))
    return size


def attachments(top: Part, f: BinaryIO | None = None) -> list[Attachment]:
    """The message's attachments; with the message file ``f`` (left open), each with its decoded
    size."""
    html, plain = choose_body(top)
    out = []
    for path, p in numbered_parts(top):
        if p is html or p is plain or not is_attachment(p):
            continue
        size = p.size
        if f is not None:
            try:
                size = decoded_size(f, p)
            except (OSError, ValueError, binascii.Error):
                size = p.size
        out.append(Attachment(path, part_filename(p), f"{p.maintype}/{p.subtype}", size))
    return out


# -- preview ------------------------------------------------------------------------------------
def preview(f: BinaryIO, top: Part) -> str:
    """A line of the body for a message list: quoted lines and signatures skipped, space
    collapsed. Reads at most ``PREVIEW_READ`` bytes; leaves ``f`` open."""
    html, plain = choose_body(top)
    part = plain or html
    if part is None:
        return ""
    raw = decode_body(read_range(f, part.body_start, min(part.end, part.body_start + PREVIEW_READ)), part.encoding)
    text = _decode_text(raw, part)
    if part is html:
        text = html_to_text(text)
    lines = []
    for ln in text.splitlines():
        if ln.startswith(">") or ln.rstrip().endswith((" wrote:", " a écrit :")):
            continue
        if ln.strip() == "--":
            break
        lines.append(ln)
    flat = " ".join(" ".join(lines).split())
    return flat[:PREVIEW_CHARS] + ("…" if len(flat) > PREVIEW_CHARS else "")


# -- by folder and UID ----------------------------------------------------------------------------
def body_text(mb: UserMailbox, folder: str, uid: int) -> str:
    """The text of a message's body: its plain part, else its HTML part as text, else ""."""
    top = mb.structure(folder, uid)
    html, plain = choose_body(top)
    part = plain or html
    if part is None:
        return ""
    with mb.open_message(folder, uid) as fh:
        text = part_text(fh, part)
    return html_to_text(text) if part is html else text


def body_html(mb: UserMailbox, folder: str, uid: int) -> str | None:
    """A message's HTML body as stored (NOT sanitized: never show it unfiltered), or None."""
    html, _plain = choose_body(mb.structure(folder, uid))
    if html is None:
        return None
    with mb.open_message(folder, uid) as fh:
        return part_text(fh, html)


def message_attachments(mb: UserMailbox, folder: str, uid: int, sizes: bool = True) -> list[Attachment]:
    """A message's attachments; ``sizes``: decoded sizes (reads a few bytes of each part)."""
    top = mb.structure(folder, uid)
    if not sizes:
        return attachments(top)
    with mb.open_message(folder, uid) as fh:
        return attachments(top, fh)


def message_preview(mb: UserMailbox, folder: str, uid: int) -> str:
    """A preview line of a message's body (see ``preview``)."""
    top = mb.structure(folder, uid)
    with mb.open_message(folder, uid) as fh:
        return preview(fh, top)


def attachment(mb: UserMailbox, folder: str, uid: int, path: str) -> tuple[Attachment, Iterator[bytes]] | None:
    """One leaf part by section ``path``: its description and its decoded bytes as a stream
    (the message file is closed when the stream ends or is closed); None when there is no such
    leaf part."""
    part = leaf_part(mb.structure(folder, uid), path)
    if part is None:
        return None
    info = Attachment(path, part_filename(part), f"{part.maintype}/{part.subtype}", part.size)
    return info, stream_part(mb.open_message(folder, uid), part)


__all__ = [
    "CHUNK",
    "MAX_BODY",
    "PREVIEW_CHARS",
    "PREVIEW_READ",
    "Attachment",
    "Part",
    "attachment",
    "attachments",
    "body_html",
    "body_text",
    "choose_body",
    "decode_body",
    "decode_rfc2231_name",
    "decode_words",
    "decoded_chunks",
    "decoded_size",
    "html_to_text",
    "is_attachment",
    "leaf_part",
    "message_attachments",
    "message_preview",
    "numbered_parts",
    "part_filename",
    "part_text",
    "preview",
    "read_range",
    "stream_part",
]
