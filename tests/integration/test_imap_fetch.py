"""FETCH: headers, parts and partials byte-exact against the stored file; ENVELOPE,
BODYSTRUCTURE, \\Seen on BODY[] and streaming of a large message."""

from __future__ import annotations

import email
import email.policy
import imaplib
import re

import pytest
from support.imap import NESTED, client, fresh_folder, imaps, maildir, module_server, simple_message

imap_server = module_server()


def _stored(srv, folder: str) -> bytes:  # type: ignore[no-untyped-def]
    files = list((maildir(srv, folder=folder) / "cur").iterdir())
    assert len(files) == 1
    return files[0].read_bytes()


def _ranges(raw: bytes) -> dict[str, bytes]:
    """Expected section bytes of NESTED, computed independently of GK by string search."""
    head, _, body = raw.partition(b"\r\n\r\n")
    alt_start = raw.index(b"--inner\r\n")
    plain_body = raw.index(b"Gr=C3")
    plain_end = raw.index(b"\r\n--inner\r\nContent-Type: text/html")
    inner_msg = raw.index(b"From: dave@")
    inner_end = raw.index(b"\r\n--outer\r\nContent-Type: application")
    blob_mime = raw.index(b"Content-Type: application/octet-stream")
    blob_body = raw.index(b"AAECAw")
    return {
        "HEADER": head + b"\r\n\r\n",
        "TEXT": body,
        "1": raw[alt_start : raw.index(b"\r\n--outer\r\nContent-Type: message")],
        "1.1": raw[plain_body:plain_end],
        "2": raw[inner_msg:inner_end],
        "2.HEADER": b"From: dave@example.com\r\nSubject: inner message\r\n\r\n",
        "2.TEXT": b"inner body line 1\r\ninner body line 2",
        "2.1": b"inner body line 1\r\ninner body line 2",
        "3.MIME": raw[blob_mime:blob_body],
        "3": b"AAECAwQFBgcICQ==",
    }


def test_sections_are_byte_exact(imap_server):  # type: ignore[no-untyped-def]
    c = client(imap_server)
    folder = fresh_folder(c, "fetch")
    c.append(folder, NESTED)
    c.select_folder(folder)
    raw = _stored(imap_server, folder)
    assert raw == NESTED
    want = _ranges(raw)
    for section, expected in want.items():
        key = f"BODY[{section}]".encode()
        got = c.fetch([1], [f"BODY.PEEK[{section}]"])[1][key]
        assert got == expected, section
    full = c.fetch([1], ["BODY.PEEK[]"])[1][b"BODY[]"]
    assert full == raw
    # partials: origin inside, at the end, beyond the end
    data = c.fetch([1], ["BODY.PEEK[]<10.25>", "BODY.PEEK[1.1]<4.6>"])[1]
    assert data[b"BODY[]<10>"] == raw[10:35]
    assert data[b"BODY[1.1]<4>"] == want["1.1"][4:10]
    data = c.fetch([1], [f"BODY.PEEK[]<{len(raw) - 5}.100>"])[1]
    assert data[f"BODY[]<{len(raw) - 5}>".encode()] == raw[-5:]
    data = c.fetch([1], [f"BODY.PEEK[TEXT]<{len(raw)}.10>"])[1]
    assert data[f"BODY[TEXT]<{len(raw)}>".encode()] == b""
    c.logout()


def test_header_fields_and_rfc822_items(imap_server):  # type: ignore[no-untyped-def]
    c = client(imap_server)
    folder = fresh_folder(c, "hdr")
    c.append(folder, NESTED)
    c.select_folder(folder)
    data = c.fetch(
        [1], ["BODY.PEEK[HEADER.FIELDS (SUBJECT message-id)]", "BODY.PEEK[HEADER.FIELDS.NOT (From To Date Subject)]"]
    )[1]
    fields = data[b"BODY[HEADER.FIELDS (SUBJECT MESSAGE-ID)]"]
    assert fields == b"Subject: =?utf-8?b?R3LDvMOfZQ==?= nested\r\nMessage-ID: <nested@example.net>\r\n\r\n"
    rest = data[b"BODY[HEADER.FIELDS.NOT (FROM TO DATE SUBJECT)]"]
    assert rest.startswith(b"Message-ID: <nested@example.net>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed")
    assert b"Subject:" not in rest and rest.endswith(b"\r\n\r\n")
    data = c.fetch([1], ["RFC822.HEADER", "RFC822.SIZE"])[1]
    assert data[b"RFC822.HEADER"] == NESTED.partition(b"\r\n\r\n")[0] + b"\r\n\r\n"
    assert data[b"RFC822.SIZE"] == len(NESTED)
    assert b"\\Seen" not in c.get_flags([1])[1]
    c.logout()


def test_body_fetch_sets_seen_but_peek_does_not(imap_server):  # type: ignore[no-untyped-def]
    c = client(imap_server)
    folder = fresh_folder(c, "seen")
    c.append(folder, simple_message("a"))
    c.append(folder, simple_message("b"))
    c.select_folder(folder)
    c.fetch([1], ["BODY.PEEK[TEXT]"])
    assert c.get_flags([1])[1] == ()
    data = c.fetch([2], ["BODY[TEXT]"])[2]
    assert data[b"BODY[TEXT]"] == b"plain body text\r\n"
    assert b"\\Seen" in data[b"FLAGS"]
    assert c.fetch([1], ["RFC822"])[1][b"RFC822"] == simple_message("a")
    assert b"\\Seen" in c.get_flags([1])[1]
    # EXAMINE (read-only) never sets \Seen
    c.append(folder, simple_message("c"))
    c.select_folder(folder, readonly=True)
    c.fetch([3], ["BODY[]"])
    assert c.get_flags([3])[3] == ()
    c.logout()


def test_envelope_and_bodystructure(imap_server):  # type: ignore[no-untyped-def]
    c = client(imap_server)
    folder = fresh_folder(c, "env")
    c.append(folder, NESTED)
    c.select_folder(folder)
    data = c.fetch([1], ["ENVELOPE", "BODYSTRUCTURE", "BODY", "INTERNALDATE", "UID"])[1]
    env = data[b"ENVELOPE"]
    assert env.subject == b"=?utf-8?b?R3LDvMOfZQ==?= nested"
    assert env.message_id == b"<nested@example.net>"
    assert [(a.mailbox, a.host) for a in env.to] == [(b"alice", b"example.org"), (b"bob", b"example.org")]
    assert env.to[1].name == b"Bob B."
    assert env.from_[0].name == b"=?utf-8?q?J=C3=B6rg?=" and env.sender == env.from_
    bs = data[b"BODYSTRUCTURE"]
    assert bs.is_multipart
    parts, subtype = bs[0], bs[1]
    assert subtype == b"MIXED" and len(parts) == 3
    alt = parts[0]
    assert alt[1] == b"ALTERNATIVE"
    plain = alt[0][0]
    assert plain[:7] == (
        b"TEXT",
        b"PLAIN",
        (b"CHARSET", b"utf-8"),
        None,
        None,
        b"QUOTED-PRINTABLE",
        len(b"Gr=C3=BC=C3=9Fe aus dem Text, zebrafish"),
    )
    msg = parts[1]
    assert msg[0] == b"MESSAGE" and msg[1] == b"RFC822"
    assert msg[7][1] == b"inner message"  # the encapsulated ENVELOPE
    blob = parts[2]
    assert blob[0] == b"APPLICATION" and blob[5] == b"BASE64" and blob[6] == 16
    # the same structure without extension data
    assert data[b"BODY"][1] == b"MIXED"
    # Python's email package agrees on the decoded text
    parsed = email.message_from_bytes(NESTED, policy=email.policy.default)
    text = next(p for p in parsed.walk() if p.get_content_type() == "text/plain").get_content()
    dec = c.fetch([1], ["BODY.PEEK[1.1]"])[1][b"BODY[1.1]"]
    import quopri

    assert quopri.decodestring(dec).decode() == text.rstrip("\r\n")
    c.logout()


def test_large_message_partial_fetch_and_full_stream(imap_server):  # type: ignore[no-untyped-def]
    c = client(imap_server)
    folder = fresh_folder(c, "big")
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n"
    big = b"Subject: big\r\nFrom: a@example.net\r\n\r\n" + line * (3 * 1024 * 1024 // len(line))
    c.append(folder, big)
    c.select_folder(folder)
    mid = len(big) // 2
    data = c.fetch([1], [f"BODY.PEEK[]<{mid}.1000>", "RFC822.SIZE"])[1]
    assert data[f"BODY[]<{mid}>".encode()] == big[mid : mid + 1000]
    assert data[b"RFC822.SIZE"] == len(big)
    assert c.fetch([1], ["BODY.PEEK[TEXT]"])[1][b"BODY[TEXT]"] == big.partition(b"\r\n\r\n")[2]
    c.logout()


def test_fetch_macros_and_sequence_ranges(imap_server):  # type: ignore[no-untyped-def]
    c = client(imap_server)
    folder = fresh_folder(c, "macro")
    for i in range(5):
        c.append(folder, simple_message(f"m{i}"))
    c.logout()
    m = imaps(imap_server)
    assert m.select(folder)[0] == "OK"
    typ, data = m.fetch("2:*", "FAST")
    assert typ == "OK" and [d.split()[0] for d in data] == [b"2", b"3", b"4", b"5"]
    assert b"RFC822.SIZE" in data[0] and b"INTERNALDATE" in data[0] and b"FLAGS" in data[0]
    typ, data = m.fetch("4:2", "ALL")
    assert [d[0].split()[0] if isinstance(d, tuple) else d.split()[0] for d in data] == [b"2", b"3", b"4"]
    assert b"ENVELOPE" in data[0]
    typ, data = m.fetch("5,1", "(UID)")
    assert data == [b"1 (UID 1)", b"5 (UID 5)"]
    with pytest.raises(imaplib.IMAP4.error, match="out of range"):  # beyond the last message: BAD
        m.fetch("9", "(UID)")
    assert m.noop()[0] == "OK"
    m.logout()


def test_message_file_removed_behind_our_back(imap_server):  # type: ignore[no-untyped-def]
    c = client(imap_server)
    folder = fresh_folder(c, "gone")
    c.append(folder, simple_message("a"))
    c.append(folder, simple_message("b"))
    c.logout()
    m = imaps(imap_server)
    m.select(folder)
    # message 1 is the file holding "a" (file names do not sort in arrival order)
    files = (maildir(imap_server, folder=folder) / "cur").iterdir()
    victim = next(f for f in files if re.search(rb"^Subject: a\r?$", f.read_bytes(), re.M))
    victim.unlink()
    typ, data = m.fetch("1:2", "(BODY.PEEK[])")  # no EXPUNGE allowed here: message 1 is skipped
    assert typ == "OK"
    assert [d[1] for d in data if isinstance(d, tuple)] == [simple_message("b")]
    typ, data = m.noop()
    assert m.untagged_responses.get("EXPUNGE") == [b"1"]
    m.logout()
