"""Text of a message for the FTS5 index: decoded headers and the text of its text/* parts.

Reads only the byte ranges of text parts (found by ``mime.parse_structure``), each capped at
``MAX_PART_TEXT`` bytes and the whole body text at ``MAX_BODY_TEXT``, so indexing a 50 MB
message with a large attachment reads a few hundred KB at most.
"""

from __future__ import annotations

import re
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import BinaryIO

from gk.mail.mailbox.mime import MAX_HEADER, Part, iter_parts, parse_address_list
from gk.mail.mailbox.reading import decode_words, part_text, read_range

MAX_PART_TEXT = 512 * 1024
MAX_BODY_TEXT = 1024 * 1024
_TAG = re.compile(r"<[^>]*>|&nbsp;")


def address_text(value: str | None) -> str:
    """An address header's text for FROM/TO/CC/BCC substring search: the decoded header, then
    each address as parsed (``local@domain`` and the display name) where the header does not
    already spell it so. RFC 5322 allows comments and spaces inside an address
    (``<user-from (comment)@ (comment) domain.org>``): SEARCH FROM user-from@domain.org must
    find it (imaptest's search-addresses; Dovecot matches parsed addresses too)."""
    text = decode_words(value)
    if not value:
        return text
    seen = text.lower()
    extra: list[str] = []
    for name, _route, local, host in parse_address_list(" ".join(str(value).split())):
        if not host:
            continue  # a group's start or end marker
        for form in (decode_words(name), f"{local or ''}@{host}"):
            if form and form.lower() not in seen:
                extra.append(form)
                seen += "\n" + form.lower()
    return "\n".join([text, *extra])


def header_message(f: BinaryIO, part: Part) -> Message:
    return BytesHeaderParser(policy=compat32).parsebytes(read_range(f, part.header_start, part.body_start, MAX_HEADER))


def message_text(f: BinaryIO, top: Part, msg: Message | None = None) -> dict[str, str]:
    """Columns of the FTS row: from, to, cc, bcc, subject, headers, body."""
    msg = msg if msg is not None else header_message(f, top)
    headers = "\n".join(f"{k}: {decode_words(v)}" for k, v in msg.items())
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
        "hfrom": address_text(msg.get("From")),
        "hto": address_text(msg.get("To")),
        "hcc": address_text(msg.get("Cc")),
        "hbcc": address_text(msg.get("Bcc")),
        "subject": decode_words(msg.get("Subject")),
        "headers": headers,
        "body": "\n".join(body),
    }
