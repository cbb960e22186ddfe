"""A stored message as it goes on the wire: CRLF lines, read one at a time.

Both the DATA stream (``client.Session``) and the DKIM body hash (``gk.mail.dkim.signer``)
read the spool file through ``wire_lines``, so what is signed is exactly what is sent: every
line ends in CRLF (a bare LF or a CR run before LF becomes CRLF; a last line without one gets
one). Memory: one line at a time; a line longer than ``LINE_LIMIT`` (RFC 5322 allows 998
bytes) is broken into ``LINE_LIMIT`` pieces rather than read whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

LINE_LIMIT = 1024 * 1024


def wire_lines(f: BinaryIO) -> Iterator[bytes]:
    while True:
        line = f.readline(LINE_LIMIT)
        if not line:
            return
        yield line.rstrip(b"\r\n") + b"\r\n"
