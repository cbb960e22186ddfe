"""Text of a message for the FTS5 index: decoded headers and the text of its text/* parts.

Reads only the byte ranges of text parts (found by ``mime.parse_structure``), each capped at
``MAX_PART_TEXT`` bytes and the whole body text at ``MAX_BODY_TEXT``, so indexing a 50 MB
message with a large attachment reads a few hundred KB at most.
"""

from __future__ import annotations

import re
from email.message import Message
from email.parser import BytesHeaderParser
from typing import Any, BinaryIO

from gk.mail.mailbox.mime import MAX_HEADER, Part, iter_parts, parse_address_list
from gk.mail.mailbox.reading import decode_words, part_text, read_range

MAX_PART_TEXT = 512 * 1024
MAX_BODY_TEXT = 1024 * 1024
_TAG = re.compile(r"<[^>]*>|&nbsp;")


def address_text(value: str | None, parsed: list[list[Any]] | None = None) -> str:
    """An address header's text for FROM/TO/CC/BCC substring search: the decoded header, then
    each address as parsed (``local@domain`` and the display name) where the header does not
    already spell it so. RFC 5322 allows comments and spaces inside an address
    (``<user-from (comment)@ (comment) domain.org>``): SEARCH FROM user-from@domain.org must
    find it (imaptest's search-addresses; Dovecot matches parsed addresses too).

    ``parsed``: ``parse_address_list`` of this very value when the caller has it (the ENVELOPE's
    addresses), so it is not parsed twice."""
    text = decode_words(value)
    if not value:
        return text
    seen = text.lower()
    extra: list[str] = []
    if parsed is None:
        parsed = parse_address_list(" ".join(str(value).split()))
    for name, _route, local, host in parsed:
        if not host:
            continue  # a group's start or end marker
        for form in (decode_words(name), f"{local or ''}@{host}"):
            if form and form.lower() not in seen:
                extra.append(form)
                seen += "\n" + form.lower()
    return "\n".join([text, *extra])


def header_message(f: BinaryIO, part: Part) -> Message:
    return BytesHeaderParser().parsebytes(read_range(f, part.header_start, part.body_start, MAX_HEADER))


def message_text(f: BinaryIO, top: Part, msg: Message | None = None) -> dict[str, str]:
    """Columns of the FTS row: from, to, cc, bcc, subject, headers, body."""
    env = top.envelope if msg is not None else None  # parsed from this very header block
    msg = msg if msg is not None else header_message(f, top)
    items = msg.items()
    headers = "\n".join(f"{k}: {decode_words(v)}" for k, v in items)
    first: dict[str, Any] = {}  # Message.get(name) of each field, from one pass over the fields
    count: dict[str, int] = {}
    for k, v in items:
        key = k.lower()
        first.setdefault(key, v)
        count[key] = count.get(key, 0) + 1

    def addresses(field: str, slot: int) -> str:
        # the ENVELOPE holds the addresses of all the field's instances: the same as ours when
        # there is one (address_text reads the first instance only, as msg.get does)
        parsed = env[slot] or [] if env is not None and count.get(field) == 1 else None
        return address_text(first.get(field), parsed)

    body: list[str] = []
    total = 0
    for p in iter_parts(top):
        if p.maintype != "text" or (p.disposition and p.disposition[0] == "ATTACHMENT"):
            continue
        if total >= MAX_BODY_TEXT:
            break
        t = part_text(f, p, MAX_PART_TEXT)
        if p.subtype == "html":
            t = _TAG.sub(" ", t)
        body.append(t)
        total += len(t)
    return {
        "hfrom": addresses("from", 2),
        "hto": addresses("to", 5),
        "hcc": addresses("cc", 6),
        "hbcc": addresses("bcc", 7),
        "subject": decode_words(first.get("subject")),
        "headers": headers,
        "body": "\n".join(body),
    }
