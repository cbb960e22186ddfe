"""Modified UTF-7 (RFC 3501 §5.1.3) for mailbox names on the wire; Unicode inside GK.

Written by hand: the stdlib ``utf-7`` codec is the RFC 2152 variant (``+``, ``/``), not IMAP's
(``&``, ``,``), and it is 30 lines.
"""

from __future__ import annotations

import base64
import binascii


class UTF7Error(ValueError):
    pass


def encode(name: str) -> str:
    out: list[str] = []
    buf: list[str] = []

    def flush() -> None:
        if buf:
            raw = "".join(buf).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode().rstrip("=").replace("/", ",") + "-")
            buf.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            buf.append(ch)
    flush()
    return "".join(out)


def decode(name: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(name):
        ch = name[i]
        if ord(ch) > 0x7E or ord(ch) < 0x20:
            raise UTF7Error("mailbox name has a non-ASCII character outside modified UTF-7")
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        end = name.find("-", i)
        if end < 0:
            raise UTF7Error("unterminated modified UTF-7 sequence in mailbox name")
        chunk = name[i + 1 : end]
        if not chunk:
            out.append("&")
        else:
            b64 = chunk.replace(",", "/")
            try:
                raw = base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
                text = raw.decode("utf-16-be")
            except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
                raise UTF7Error("bad modified UTF-7 in mailbox name") from exc
            if encode(text) != "&" + chunk + "-":
                raise UTF7Error("non-canonical modified UTF-7 in mailbox name")
            out.append(text)
        i = end + 1
    return "".join(out)
