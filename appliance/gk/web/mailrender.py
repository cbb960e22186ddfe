"""Reading stored messages for the webmail: pick the body to show, sanitize HTML, stream attachments.

HTML mail goes through nh3 (ammonia, a maintained allow-list sanitizer): scripts, styles,
event-handler attributes, forms and ``javascript:`` URLs are removed; remote images are
dropped unless the reader chose "show images". The result is served from its own URL into
a sandboxed iframe (no ``allow-scripts``) with its own CSP (``default-src 'none'``), so even
a sanitizer bug could not run script in the UI's origin.

Memory: a displayed body is read up to ``MAX_BODY`` (2 MB); attachments are streamed and
decoded in 48 KiB chunks, never held whole. nh3 (1.4 MB of RSS) is imported on the first
HTML body shown, not at start.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import quopri
import re
import urllib.parse
from collections.abc import Iterator
from typing import Any, BinaryIO

from gk.mail.mailbox.mime import Part, iter_parts
from gk.mail.mailbox.textindex import decode_body, decode_words, read_range

MAX_BODY = 2 * 1024 * 1024
CHUNK = 48 * 1024
ALLOWED_SCHEMES = {"http", "https", "mailto"}


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
            if k.lower() == "filename":
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


def part_text(f: BinaryIO, part: Part) -> str:
    raw = decode_body(read_range(f, part.body_start, part.end, MAX_BODY), part.encoding)
    charset = part.param("charset") or "utf-8"
    try:
        return raw.decode(charset, "replace")
    except LookupError:
        return raw.decode("utf-8", "replace")


URL_ATTRIBUTES = {"href", "src", "cite", "longdesc", "action", "formaction", "background", "poster", "srcset", "ping"}


def _url_value(value: str) -> str:
    """A URL attribute as a browser reads it: white space and control characters inside ignored."""
    return "".join(ch for ch in value if ch > " " and ch != "\x7f").lower()


# the mail's own look survives: <style> sheets, style attributes (filtered to the properties
# below) and the presentational attributes newsletters still use. Safe because the frame has its
# own CSP: no script, fonts or @import at all, url() images only once the reader shows images.
STYLE_PROPERTIES = {
    *("color", "background", "background-color", "background-image", "background-position"),
    *("background-repeat", "background-size", "border", "border-top", "border-right", "border-bottom"),
    *("border-left", "border-color", "border-style", "border-width", "border-radius", "border-collapse"),
    *("border-spacing", "margin", "margin-top", "margin-right", "margin-bottom", "margin-left"),
    *("padding", "padding-top", "padding-right", "padding-bottom", "padding-left", "width", "min-width"),
    *("max-width", "height", "min-height", "max-height", "font", "font-family", "font-size"),
    *("font-style", "font-weight", "line-height", "letter-spacing", "text-align", "text-decoration"),
    *("text-transform", "text-indent", "vertical-align", "white-space", "word-break", "word-wrap"),
    *("overflow-wrap", "display", "float", "clear", "list-style", "list-style-type", "table-layout"),
    *("opacity", "box-sizing", "direction", "overflow", "mso-line-height-rule"),
}
# "*" replaces ammonia's generic attributes, so its defaults (lang, title) are listed again
PRESENTATION_ATTRIBUTES = {
    "lang",
    "title",
    "style",
    "class",
    "id",
    "align",
    "valign",
    "bgcolor",
    "width",
    "height",
    "dir",
}
EXTRA_TAG_ATTRIBUTES = {
    "table": {"border", "cellpadding", "cellspacing", "background"},
    "td": {"nowrap", "background"},
    "th": {"nowrap", "background"},
    "font": {"color", "face", "size"},
    "img": {"border", "hspace", "vspace"},
}
# sane defaults before the mail's own sheet (which overrides them): readable text, images that
# fit the frame, long words that wrap on a phone
BASE_STYLE = (
    "<style>html{color-scheme:light}body{margin:.6rem;font:15px/1.45 system-ui,sans-serif;"
    "overflow-wrap:anywhere}img{max-width:100%;height:auto}table{max-width:100%}</style>"
)


def sanitize_html(html: str, show_images: bool) -> str:
    """Clean HTML mail, keeping its styling (see ``STYLE_PROPERTIES``). ``data:`` is allowed in
    ``img src`` only (``data:image/…``): a ``data:`` link (``data:text/html,…``) opens attacker
    HTML in a new tab, outside the sandboxed frame."""

    def keep(tag: str, attr: str, value: str) -> str | None:
        v = _url_value(value)
        if tag == "img" and attr == "src":
            if v.startswith("data:image/"):
                return value
            if show_images and v.startswith(("http://", "https://")):
                return value
            return None
        if attr in URL_ATTRIBUTES and v.startswith("data:"):
            return None
        if attr == "background" and not (show_images and v.startswith(("http://", "https://"))):
            return None
        return value

    import nh3

    attributes = {tag: set(names) for tag, names in nh3.ALLOWED_ATTRIBUTES.items()}
    attributes["*"] = attributes.get("*", set()) | PRESENTATION_ATTRIBUTES
    for tag, names in EXTRA_TAG_ATTRIBUTES.items():
        attributes[tag] = attributes.get(tag, set()) | names
    schemes = set(ALLOWED_SCHEMES) | {"data"}  # for img src; every other data: URL is dropped in keep()
    return nh3.clean(
        html,
        tags=set(nh3.ALLOWED_TAGS) | {"style", "font", "center"},
        clean_content_tags={"script", "noscript", "template", "title", "xmp", "noembed", "noframes"},
        attributes=attributes,
        url_schemes=schemes,
        link_rel="noopener noreferrer nofollow",
        attribute_filter=keep,
        set_tag_attribute_values={"a": {"target": "_blank"}},
        filter_style_properties=STYLE_PROPERTIES,
    )


def has_remote_images(html: str) -> bool:
    return bool(
        re.search(r"<img\b[^>]*\bsrc\s*=\s*[\"']?\s*https?:", html, re.I)
        or re.search(r"url\(\s*[\"']?\s*https?:|\bbackground\s*=\s*[\"']?\s*https?:", html, re.I)
    )


def stream_part(f: BinaryIO, part: Part) -> Iterator[bytes]:
    """The decoded body of ``part``, in chunks (base64 and quoted-printable decoded on the fly)."""
    enc = part.encoding.lower()
    f.seek(part.body_start)
    left = part.end - part.body_start
    carry = b""
    try:
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
            yield base64.b64decode(carry + b"=" * (-len(carry) % 4))
    finally:
        f.close()


def decoded_size(f: BinaryIO, part: Part) -> int:
    """The attachment's size once decoded (what the reader downloads), not its size in the
    message. base64: the encoded length without line ends, times 3/4, minus padding — read from
    the part's first line and its last bytes, not the whole part. Quoted-printable parts up to
    ``QP_EXACT`` are decoded to count; larger ones show their encoded size."""
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
        return sum(len(c) for c in stream_part(f, part))
    return size


QP_EXACT = 1024 * 1024
PREVIEW_READ = 2048  # bytes of the body read for a list preview line
PREVIEW_CHARS = 140


def attachments(top: Part, f: BinaryIO | None = None) -> list[dict[str, Any]]:
    """The message's attachments; with the message file ``f``, each with its decoded size."""
    html, plain = choose_body(top)
    out = []
    try:
        for path, p in numbered_parts(top):
            if p is html or p is plain or not is_attachment(p):
                continue
            size = p.size
            if f is not None:
                try:
                    size = decoded_size(f, p)
                except (OSError, ValueError, binascii.Error):
                    size = p.size
            out.append({"path": path, "name": part_filename(p), "type": f"{p.maintype}/{p.subtype}", "size": size})
    finally:
        if f is not None:
            f.close()
    return out


def preview(f: BinaryIO, top: Part) -> str:
    """A line of the body for the message list: quoted lines and signatures skipped, space
    collapsed. Reads at most ``PREVIEW_READ`` bytes; closes ``f``."""
    try:
        html, plain = choose_body(top)
        part = plain or html
        if part is None:
            return ""
        raw = decode_body(read_range(f, part.body_start, min(part.end, part.body_start + PREVIEW_READ)), part.encoding)
    finally:
        f.close()
    charset = part.param("charset") or "utf-8"
    try:
        text = raw.decode(charset, "replace")
    except LookupError:
        text = raw.decode("utf-8", "replace")
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


def html_to_text(html: str) -> str:
    """Plain text of an HTML body for quoting in a reply (tags dropped, entities decoded)."""
    import html as htmllib

    text = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", html)
    text = re.sub(r"(?i)<br\s*/?>|</p>|</div>", "\n", text)
    text = re.sub(r"<[^>]+>", "", text)
    return htmllib.unescape(text).strip()
