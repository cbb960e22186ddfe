"""Messages mutated at random (the bench's realistic ones, with tokens that broke parsers here
inserted and bytes deleted) go through every reader of a message file without an exception:
the index's parse, the ENVELOPE reader, the structure-only parse and the webmail's reading.
Mutating this way found the malformed encoded word, 8-bit Date and odd charsets that made a
whole INBOX fail to open, and a base64 part that broke its download (seeded: repeatable)."""

from __future__ import annotations

import io
import random
import sys
from pathlib import Path

from gk.mail.mailbox import mime, reading
from gk.mail.mailbox import store as store_mod

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
import bench.imap as bench_imap

TOKENS = [
    b";", b"=", b'"', b"'", b"*", b"*0*", b"%", b"\\", b"=?utf-8?b?x?=", b"=?utf-8?q?x?=", b"\r\n ", b"\r\n",
    b"--", b"\xff", b"\xe9", b"\x00", b"charset=bogus", b"charset=idna", b"Date: ", b"From: ", b"<", b">",
    b"@", b",", b"message/rfc822", b"multipart/", b"boundary=", b"=\r\n", b"base64", b"quoted-printable",
    b"Content-Transfer-Encoding: ", b"utf-8''%ff%", b"&#x110000;", b"<script>",
]  # fmt: skip
NESTED = (
    b'Subject: =?utf-8?q?x?=\r\nContent-Type: multipart/mixed; boundary="a"\r\n\r\n--a\r\n'
    b"Content-Type: message/rfc822\r\n\r\nSubject: in\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"<p>h=C3=A9llo</p>=\r\n\r\n--b--\r\n--a\r\nContent-Type: application/pdf; name*=utf-8''%e2%82%ac.pdf\r\n"
    b"Content-Disposition: attachment; filename*0*=utf-8''%e2; filename*1*=%82%ac.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--a--\r\n"
)


def _mutants(seed: int, count: int) -> list[bytes]:
    rnd = random.Random(seed)
    base = [bench_imap.make_message(random.Random(i), i)[:3000] for i in range(20)] + [NESTED]
    out = []
    for _ in range(count):
        m = bytearray(rnd.choice(base))
        for _ in range(rnd.randint(1, 6)):
            pos = rnd.randrange(0, len(m) + 1)
            if rnd.random() < 0.7:
                m[pos:pos] = rnd.choice(TOKENS)
            else:
                del m[pos : pos + rnd.randint(1, 5)]
        out.append(bytes(m))
    return out


def test_mutated_messages_are_read_without_an_exception(tmp_path: Path) -> None:
    opaque: list[str] = []
    real = store_mod._opaque
    store_mod._opaque = lambda p, e, exc: (opaque.append(repr(exc)), real(p, e, exc))[1]  # type: ignore[assignment]
    try:
        for i, data in enumerate(_mutants(20261201, 1500)):
            path = tmp_path / f"m{i}"
            path.write_bytes(data)
            for with_envelope in (True, False):
                parsed = store_mod._parse_file(str(path), with_envelope)
                assert parsed is not None
                store_mod._sentdate(parsed[3])
            assert store_mod.read_envelopes([(str(path), None)])[0] is not None
            assert store_mod._body_wires([(str(path), None)])[0] is not None
            f = io.BytesIO(data)
            top = mime.parse_structure(f)
            text, html = reading.choose_body(top)
            if html is not None:
                reading.html_to_text(reading.part_text(f, html))
            if text is not None:
                reading.part_text(f, text)
            reading.preview(f, top)
            for _, part in reading.numbered_parts(top):
                b"".join(reading.decoded_chunks(f, part))
                reading.decoded_size(f, part)
                reading.part_filename(part)
            reading.attachments(top, f)
    finally:
        store_mod._opaque = real  # type: ignore[assignment]
    assert opaque == []  # each read as it stands, none given up on
