"""One malformed message must never stop its folder: a From with a broken base64 encoded word
made the text index's header decoding raise, the parse of its batch failed with it, and the
INBOX answered every SELECT with ``NO [SERVERBUG]`` until the file was removed by hand. Such
headers now read as they stand; a parse that fails all the same indexes the message as one
opaque part (every byte still served)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.imapharness import Client, IMAPHarness

from gk.mail.mailbox import store as store_mod

# what the fuzzing found (each raised out of the parse before the fix), and its neighbours
HOSTILE = [
    b"From: =?utf-8?b?SsO2cmcgTcO8bGxlquoted-printablecg==?= <joerg@example.de>\r\n",  # base64: 33 chars
    b"From: =?u\xfftf-8?b?SsO2cmcgTcO8bGxlcg==?= <joerg@example.de>\r\n",  # 8-bit charset name
    b"Subject: =?utf-8?b?SGVsbG?= x\r\n",
    b"Content-Type: text/plain; charset=u\x00tf-8\r\n",  # NUL in the charset
    b"Content-Type: text/plain; charset=idna\r\n",  # a codec that refuses errors="replace"
    b"Content-Type: text/plain; charset=base64\r\n",  # not a text encoding
    b'Content-Type: text/plain; name*0*=a; name*=b; charset="utf-8"\r\n',  # RFC 2231 parts and whole
    b"Date: Thu, \xff16 Nov 2023 03:13:20 -0000\r\n",  # 8-bit in the Date: a Header object, not a str
]


def _message(header: bytes, i: int) -> bytes:
    return b"Message-ID: <%d@example.org>\r\n" % i + header + b"\r\n" + b"hello hostile world %d\r\n" % i


@pytest.fixture
def client(harness: IMAPHarness) -> Client:
    c = harness.connect()
    c.login()
    return c


def test_a_folder_with_hostile_headers_opens_and_serves_them(harness: IMAPHarness, client: Client) -> None:
    harness.deliver(b"Subject: fine\r\n\r\nhello hostile world 0\r\n")
    for i, header in enumerate(HOSTILE, 1):
        harness.deliver(_message(header, i))
    untagged, tagged = client.cmd("SELECT INBOX")
    assert b"OK [READ-WRITE]" in tagged, (untagged, tagged)
    count = len(HOSTILE) + 1
    assert f"* {count} EXISTS".encode() in untagged
    lines = client.ok("FETCH 1:* (UID ENVELOPE BODYSTRUCTURE)")
    assert len(lines) == count
    assert all(b'("TEXT" "PLAIN"' in line for line in lines)  # each parsed, not made opaque
    assert b"=?utf-8?b?SsO2cmcgTcO8bGxlquoted-printablecg==?=" in lines[1]  # as it stands
    body = client.ok("FETCH 2 (BODY.PEEK[])")[0]
    assert HOSTILE[0] in body
    found = client.ok('SEARCH TEXT "hostile world"')[0]
    assert found == b"* SEARCH " + " ".join(str(n) for n in range(1, count + 1)).encode()
    assert client.ok("SEARCH SENTBEFORE 1-Jan-2000")[0] == b"* SEARCH"  # no date read from the 8-bit one


def test_a_message_the_parse_fails_on_is_one_opaque_part(
    harness: IMAPHarness, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the parser raises on (here, a bug planted for one file), the folder opens, the
    message is one application/octet-stream part after its header block with its ENVELOPE, and
    every other message is as it was."""
    real = store_mod.parse_with_headers

    def planted(f, **kw):  # type: ignore[no-untyped-def]
        data = f.read()
        f.seek(0)
        if b"<planted@example.org>" in data:
            raise RuntimeError("a parser bug")
        return real(f, **kw)

    monkeypatch.setattr(store_mod, "parse_with_headers", planted)
    harness.deliver(b"Subject: before\r\n\r\nhello\r\n")
    bad = b"Message-ID: <planted@example.org>\r\nSubject: planted\r\nFrom: Ann <ann@example.com>\r\n\r\nbody text\r\n"
    harness.deliver(bad)
    harness.deliver(b"Subject: after\r\n\r\nhello\r\n")
    _, tagged = client.cmd("SELECT INBOX")
    assert b"OK [READ-WRITE]" in tagged
    lines = client.ok("FETCH 1:* (ENVELOPE BODYSTRUCTURE)")
    assert b'"before"' in lines[0] and b'"after"' in lines[2] and b'("TEXT" "PLAIN"' in lines[2]
    assert b'ENVELOPE (NIL "planted" (("Ann" NIL "ann" "example.com"))' in lines[1]
    assert b'BODYSTRUCTURE ("APPLICATION" "OCTET-STREAM" NIL NIL NIL "7BIT" 11 NIL NIL NIL NIL)' in lines[1]
    assert client.ok("FETCH 2 (BODY.PEEK[TEXT])")[0].endswith(b"{11}\r\nbody text\r\n)")
    whole = client.ok("FETCH 2 (BODY.PEEK[])")[0]
    assert whole.endswith(bad + b")") and b"Delivered-To: " in whole  # the file, byte for byte


_WORD = st.builds(
    lambda cs, enc, payload: f"=?{cs}?{enc}?{payload}?=",
    st.sampled_from(["utf-8", "iso-8859-1", "u\xfftf-8", "bogus", "idna", "base64", "utf-7"]),
    st.sampled_from(["b", "q", "B", "x"]),
    st.text(alphabet="ABCDEFGHIJKLMNOPabcdef0123456789+/=_?", max_size=24),
)
_PARAM = st.sampled_from(["charset", "name", "name*", "name*0*", "name*1", "filename*", "boundary"])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(_WORD, min_size=1, max_size=3),
    st.lists(
        st.tuples(_PARAM, st.one_of(_WORD, st.sampled_from(["u\x00tf-8", "idna", "''%e2", "us-ascii'en'x"]))),
        max_size=4,
    ),
)
def test_the_parse_never_raises_on_hostile_words_and_parameters(
    tmp_path_factory: pytest.TempPathFactory, words: list[str], params: list[tuple[str, str]]
) -> None:
    path = tmp_path_factory.mktemp("m") / "msg"
    ctype = "text/plain" + "".join(f"; {k}={v}" for k, v in params)
    head = f"From: {' '.join(words)} <a@example.org>\r\nSubject: {words[0]}\r\nContent-Type: {ctype}\r\n"
    head += f"Date: {words[-1]} 16 Nov 2023\r\n"
    path.write_bytes(head.encode("utf-8", "surrogateescape") + b"\r\nbody\r\n")
    calls: list[Exception] = []
    real = store_mod._opaque
    store_mod._opaque = lambda p, e, exc: (calls.append(exc), real(p, e, exc))[1]  # type: ignore[assignment]
    try:
        parsed = store_mod._parse_file(str(path))
        wires = store_mod._body_wires([(str(path), None)])
    finally:
        store_mod._opaque = real  # type: ignore[assignment]
    assert parsed is not None and wires[0] is not None
    store_mod._sentdate(parsed[3])  # stored with the row: must not raise either
    assert store_mod.read_envelopes([(str(path), None)])[0] is not None
    assert calls == []  # read as it stands, not given up on
    assert Path(path).exists()


@pytest.mark.parametrize("tail", [b"A", b"A=", b"QUJD\r\nA"])
def test_a_base64_part_with_a_stray_last_character_decodes(tail: bytes) -> None:
    """The webmail's download and preview decode base64 as it streams; a part whose last group
    has one character (no whole byte) raised binascii.Error out of the generator before."""
    import io

    from gk.mail.mailbox import mime, reading

    raw = (
        b'Content-Type: multipart/mixed; boundary="a"\r\n\r\n--a\r\nContent-Type: application/pdf\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0x\r\n" + tail + b"\r\n--a--\r\n"
    )
    f = io.BytesIO(raw)
    part = mime.parse_structure(f).children[0]
    assert b"".join(reading.decoded_chunks(f, part)).startswith(b"%PDF-1")
