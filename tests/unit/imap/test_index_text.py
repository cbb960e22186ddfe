"""The text index's columns (``textindex.message_text``) and header decoding take short cuts
(issue 11: the first SEARCH of a lazily indexed folder parses every message): each gives what
the long way gives."""

from __future__ import annotations

import binascii
import io
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32

from hypothesis import given, settings
from hypothesis import strategies as st

from gk.mail.mailbox.mime import parse_header_block, parse_with_headers
from gk.mail.mailbox.reading import decode_words
from gk.mail.mailbox.textindex import message_text


def _eight_bit(value: str) -> str:
    """Each run of surrogate escapes as the bytes it stands for: UTF-8, else Windows-1252."""
    out, run = [], b""
    for c in value + "\0":
        if 0xDC80 <= ord(c) <= 0xDCFF:
            run += bytes([ord(c) - 0xDC00])
            continue
        if run:
            try:
                out.append(run.decode("utf-8"))
            except UnicodeDecodeError:
                out.append(run.decode("cp1252", "replace"))
            run = b""
        out.append(c)
    return "".join(out)[:-1]


def _email_package(value: str) -> str:
    text = _eight_bit(" ".join(value.split()))
    try:
        return str(make_header(decode_header(text)))
    except (UnicodeError, LookupError, ValueError, binascii.Error):
        return text


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('aB é\udce9?="ü:Ω\t\r\n\x85\u2028q_')), max_size=30))
def test_decode_words_gives_what_the_email_package_gives(value: str) -> None:
    assert decode_words(value) == (_email_package(value) if value else "")


def test_decode_words_reads_raw_8_bit_headers() -> None:
    """8-bit bytes in a header (a compat32 ``Header`` of unknown-8bit, or surrogate escapes) are
    UTF-8 (RFC 6532), else Windows-1252: the webmail showed "Go\ufffd\ufffdter" for "Goûter"."""
    value = parse_header_block("Subject: Goûter très tôt\r\n".encode()).get("subject")
    assert decode_words(value) == "Goûter très tôt"
    value = parse_header_block("Subject: Jörg café\r\n".encode("cp1252")).get("subject")
    assert decode_words(value) == "Jörg café"
    assert decode_words("Go\udcc3\udcbbter") == "Goûter"  # as the envelope's JSON keeps it
    assert decode_words("déjà vu") == "déjà vu"  # real text untouched


def test_an_8_bit_subject_keeps_its_bytes_in_the_envelope() -> None:
    """The ENVELOPE (IMAP's, and the mail list's subject) holds the raw bytes as surrogate escapes,
    as mime's docstring says; ``str()`` of compat32's Header made each one U+FFFD."""
    import io

    from gk.mail.mailbox.mime import parse_envelope

    env, _ = parse_envelope(io.BytesIO("Subject: Goûter\r\nFrom: a@b.example\r\n\r\nx\r\n".encode()))
    assert env[1].encode("utf-8", "surrogateescape") == "Goûter".encode()
    assert decode_words(env[1]) == "Goûter"


def test_decode_words_still_decodes_encoded_words() -> None:
    assert decode_words("=?utf-8?q?Gr=C3=BC=C3=9Fe?= aus  Bern") == "Grüße aus Bern"
    assert decode_words("=?iso-8859-1?b?SvZyZw==?= <j@x.de>") == "Jörg <j@x.de>"


MESSAGES = [
    b"From: =?utf-8?q?J=C3=B6rg?= <j@example.de>, (c) <user-from (c)@ (c) domain.org>\r\n"
    b"To: team: a@x.org, B <b@y.org>;\r\nCc: c@z.org\r\nSubject: =?utf-8?q?caf=C3=A9?= plans\r\n\r\nbody\r\n",
    # two From fields: the index reads the first, the ENVELOPE both
    b"From: a@x.org\r\nFrom: Bee <b@y.org>\r\nTo: c@z.org\r\nTo: d@w.org\r\nSubject: two\r\n\r\nbody\r\n",
    b"From: Ann\r\n Lee <ann@example.com>\r\nBcc: undisclosed-recipients:;\r\nSubject: folded\r\n\r\nx\r\n",
    b"Subject: none\r\n\r\n",
]


def test_message_text_with_the_parsed_headers_equals_reading_them_again() -> None:
    """The index's columns from the parse's own header block (its ENVELOPE's addresses reused)
    are those read from the file alone."""
    for raw in MESSAGES:
        f = io.BytesIO(raw)
        top, headers = parse_with_headers(f)
        assert message_text(f, top, headers) == message_text(f, top), raw
    f = io.BytesIO(MESSAGES[1])
    top, headers = parse_with_headers(f)
    assert "b@y.org" not in message_text(f, top, headers)["hfrom"]  # FROM searches the first field


_LINES = [
    b"From: a@b",
    b"From a@b",
    b"To:x",
    b" cont",
    b"\tcont",
    b"X-A: v ",
    b": nope",
    b"Sub ject: x",
    b"Content-Type: text/html; charset=\"utf-8\"; name*=utf-8''%C3%A9",
    b"\xc3\xa9: x",
    b"A: \xff",
    b"B: c\rd",
    b"",
    b"C:",
    b"D:  \t lead",
    b"E: a:b:c",
    b"F: \x0b\x1c",
]


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.sampled_from(_LINES), max_size=6),
    st.sampled_from([b"\r\n", b"\n"]),
    st.booleans(),
)
def test_header_block_parse_gives_what_the_email_package_gives(lines: list[bytes], eol: bytes, last: bool) -> None:
    raw = eol.join(lines) + (eol if last else b"")
    ours, theirs = parse_header_block(raw), BytesHeaderParser(policy=compat32).parsebytes(raw)
    assert ours.items() == theirs.items()
    assert ours.get_content_type() == theirs.get_content_type()
    assert ours.get_params() == theirs.get_params()
    assert ours.get_unixfrom() == theirs.get_unixfrom()
