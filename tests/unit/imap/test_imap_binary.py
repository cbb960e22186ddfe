"""IMAP BINARY (RFC 3516, part of IMAP4rev2 RFC 9051): FETCH BINARY[…] / BINARY.PEEK[…] give a
part with its Content-Transfer-Encoding undone, BINARY.SIZE its decoded size, an encoding GK
cannot undo fails the FETCH with NO [UNKNOWN-CTE], and APPEND takes a ``~{n}`` literal8 but
refuses NUL bytes it could not serve back. Also Outlook's ``RFC822.PEEK``."""

from __future__ import annotations

import base64
import quopri
import re

import pytest
from support.imapharness import Client, IMAPHarness

# part 2's bytes hold NUL, CR and LF: they come back in a literal8 only
BLOB = bytes(range(256)) * 3 + b"\x00tail"
TEXT = "Grüße — a line long enough to be folded by quoted-printable encoding, " * 3 + "\nend\n"
QP = quopri.encodestring(TEXT.encode("utf-8")).replace(b"\n", b"\r\n")
B64 = base64.encodebytes(BLOB).replace(b"\n", b"\r\n")
MIXED = (
    b"From: Ann <ann@example.com>\r\nTo: alice@example.org\r\nSubject: binary\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    + QP
    + b"\r\n--b\r\n"
    b'Content-Type: application/octet-stream; name="blob.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
    + B64
    + b"\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    + "8-bit text: café\r\n".encode()
    + b"\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n"
    b"begin 644 x\r\n#86)C\r\n`\r\nend\r\n"
    b"\r\n--b--\r\n"
)
PLAIN = b"From: b@example.com\r\nSubject: plain\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(
    b"hello, binary world"
).replace(b"\n", b"\r\n")

_ITEM = re.compile(rb"(BINARY(?:\.SIZE)?\[[0-9.]*\](?:<\d+>)?) (~?)\{(\d+)\}\r\n", re.S)


@pytest.fixture
def client(harness: IMAPHarness) -> Client:
    harness.deliver(MIXED)
    harness.deliver(PLAIN)
    c = harness.connect()
    c.login()
    c.ok("SELECT INBOX")
    return c


def _literal(line: bytes, label: bytes) -> tuple[bytes, bool]:
    """(the data of item ``label`` in a FETCH line, whether it came as a literal8)."""
    for m in _ITEM.finditer(line):
        if m.group(1) == label:
            n = int(m.group(3))
            return line[m.end() : m.end() + n], m.group(2) == b"~"
    raise AssertionError(f"no {label!r} in {line[:200]!r}")


def test_binary_is_announced(client: Client) -> None:
    caps = client.ok("CAPABILITY")[0]
    assert b" BINARY" in caps.split(b"IMAP4rev1", 1)[1]


def test_each_encoding_is_undone(client: Client) -> None:
    line = client.ok("FETCH 1 (BINARY.PEEK[1] BINARY.PEEK[2] BINARY.PEEK[3])")[0]
    text, text8 = _literal(line, b"BINARY[1]")
    assert (
        text.decode("utf-8") == TEXT.replace("\n", "\r\n") and not text8
    )  # quoted-printable decoded, no NUL: a literal
    blob, blob8 = _literal(line, b"BINARY[2]")
    assert blob == BLOB and blob8  # base64 decoded, NUL inside: a literal8
    eight, _ = _literal(line, b"BINARY[3]")
    assert eight == "8-bit text: café\r\n".encode()  # the identity: as stored
    # a non-multipart message: part 1 is its body, decoded
    assert _literal(client.ok("FETCH 2 (BINARY.PEEK[1])")[0], b"BINARY[1]")[0] == b"hello, binary world"


def test_sizes_partials_and_the_whole_message(client: Client) -> None:
    line = client.ok("FETCH 1 (BINARY.SIZE[1] BINARY.SIZE[2] BINARY.SIZE[3])")[0]
    sizes = dict(re.findall(rb"BINARY\.SIZE\[(\d)\] (\d+)", line))
    assert sizes == {b"1": b"%d" % (len(TEXT.encode()) + 2), b"2": b"%d" % len(BLOB), b"3": b"19"}
    part, _ = _literal(client.ok("FETCH 1 (BINARY.PEEK[2]<100.50>)")[0], b"BINARY[2]<100>")
    assert part == BLOB[100:150]
    stored = client.ok("FETCH 1 (BODY.PEEK[])")[0].split(b" ", 4)[4]  # as delivered (Return-Path…)
    assert MIXED in stored
    assert client.ok("FETCH 1 (BINARY.PEEK[])")[0] == b"* 1 FETCH (BINARY[] " + stored
    assert client.ok("FETCH 1 (BINARY.PEEK[7])")[0].endswith(b"BINARY[7] {0}\r\n)")  # no such part: empty


def test_binary_sets_seen_and_peek_does_not(client: Client) -> None:
    client.ok("FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])")
    assert b"\\Seen" not in client.ok("FETCH 1 (FLAGS)")[0]
    line = client.ok("FETCH 1 (BINARY[1])")[0]
    assert b"\\Seen" in line  # the flag change comes with the data


def test_an_encoding_it_cannot_undo_fails_the_fetch(client: Client) -> None:
    untagged, tagged = client.cmd("FETCH 1:2 (BINARY.PEEK[4])")
    assert tagged.split(b" ")[1:3] == [b"NO", b"[UNKNOWN-CTE]"]
    assert [u.split(b" ")[1] for u in untagged] == [b"2"]  # the other message is answered
    assert b"BINARY[4] {0}" in untagged[0]
    # BODY of the same part is the stored bytes, as always
    assert b"begin 644 x" in client.ok("FETCH 1 (BODY.PEEK[4])")[0]


@pytest.mark.parametrize("item", ["BINARY[1.MIME]", "BINARY[HEADER]", "BINARY[0]", "BINARY.SIZE[1]<0.5>", "BINARY"])
def test_malformed_binary_items_are_bad(client: Client, item: str) -> None:
    _, tagged = client.cmd(f"FETCH 1 ({item})")
    assert tagged.split(b" ")[1] == b"BAD", tagged
    client.ok("NOOP")  # and the session goes on


def test_append_takes_a_literal8_without_nul_and_refuses_one_with_nul(client: Client) -> None:
    msg = b"Subject: eight\r\n\r\ncaf\xc3\xa9\r\n"
    client.send(b"a1 APPEND INBOX ~{%d+}\r\n" % len(msg) + msg + b"\r\n")
    _, tagged = client.until_tagged("a1")
    assert b"OK [APPENDUID" in tagged
    assert msg in client.ok("FETCH 3 (BODY.PEEK[])")[0]
    bad = b"Subject: nul\r\n\r\na\x00b\r\n"
    client.send(b"a2 APPEND INBOX ~{%d+}\r\n" % len(bad) + bad + b"\r\n")
    _, tagged = client.until_tagged("a2")
    assert tagged.split(b" ")[1:3] == [b"NO", b"[UNKNOWN-CTE]"]
    assert client.ok("STATUS INBOX (MESSAGES)")[0].endswith(b"(MESSAGES 3)")  # nothing stored
    # spooled to a file (over MEMORY_LITERAL): its NUL is seen as it arrives, deep in the data
    big = b"Subject: big nul\r\n\r\n" + b"x" * 300_000 + b"\x00" + b"y" * 100 + b"\r\n"
    client.send(b"a3 APPEND INBOX ~{%d+}\r\n" % len(big) + big + b"\r\n")
    _, tagged = client.until_tagged("a3")
    assert tagged.split(b" ")[1:3] == [b"NO", b"[UNKNOWN-CTE]"]
    clean = big.replace(b"\x00", b"z")
    client.send(b"a4 APPEND INBOX ~{%d+}\r\n" % len(clean) + clean + b"\r\n")
    _, tagged = client.until_tagged("a4")
    assert b"OK [APPENDUID" in tagged
    assert client.ok("STATUS INBOX (MESSAGES)")[0].endswith(b"(MESSAGES 4)")


def test_rfc822_peek_is_the_whole_message_without_seen(client: Client) -> None:
    line = client.ok("FETCH 2 (RFC822.PEEK)")[0]
    assert line == client.ok("FETCH 2 (BODY.PEEK[])")[0].replace(b"BODY[]", b"RFC822", 1)
    assert line.startswith(b"* 2 FETCH (RFC822 {") and line.endswith(PLAIN + b")")
    assert b"\\Seen" not in client.ok("FETCH 2 (FLAGS)")[0]
