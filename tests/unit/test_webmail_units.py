"""Webmail helpers without a server: RFC 2231 names as the mailbox index stores them, decoded
attachment sizes, thread grouping, reply-all recipients, References, dates and sizes for people."""

from __future__ import annotations

import base64
import datetime as dt
import email.message
import io
import zoneinfo
from types import SimpleNamespace

import pytest

from gk.mail.mailbox import reading
from gk.mail.mailbox.mime import parse_structure
from gk.web import webmail


def _with_attachment(disposition: str, body: bytes, encoding: str = "base64", eol: bytes = b"\r\n") -> bytes:
    return (
        b"From: a@b.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=BB\r\n\r\n"
        b"--BB\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
        b"--BB\r\nContent-Type: application/octet-stream\r\n" + disposition.encode() + b"\r\n"
        b"Content-Transfer-Encoding: " + encoding.encode() + b"\r\n\r\n" + body.replace(b"\n", eol) + b"\r\n--BB--\r\n"
    )


@pytest.mark.parametrize(
    "disposition,name",
    [
        ("Content-Disposition: attachment; filename*=utf-8''facture-%C3%A9t%C3%A9.pdf", "facture-été.pdf"),
        ("Content-Disposition: attachment; filename*=iso-8859-1'fr'r%E9sum%E9.txt", "résumé.txt"),
        ("Content-Disposition: attachment; filename*0*=utf-8''%C3%A9t; filename*1=e.txt", "éte.txt"),
        ('Content-Disposition: attachment; filename="=?utf-8?q?caf=C3=A9.txt?="', "café.txt"),
        ('Content-Disposition: attachment; filename="plain.txt"', "plain.txt"),
        ("Content-Disposition: attachment; filename*=utf-8''a%2Fb%22c.txt", "a_b_c.txt"),
    ],
)
def test_attachment_names_decode_rfc2231_and_2047(disposition, name):
    raw = _with_attachment(disposition, base64.encodebytes(b"x"))
    top = parse_structure(io.BytesIO(raw))
    assert [a.name for a in reading.attachments(top)] == [name]


def test_decode_rfc2231_name_singly_and_doubly_encoded():
    assert reading.decode_rfc2231_name("utf-8''%C3%A9t%C3%A9") == "été"
    assert reading.decode_rfc2231_name("utf-8''%C3%83%C2%A9t%C3%83%C2%A9") == "été"  # the index's form
    assert reading.decode_rfc2231_name("no-quote.txt") == "no-quote.txt"
    assert reading.decode_rfc2231_name("bogus-charset''%41") == "A"


@pytest.mark.parametrize("size", [0, 1, 2, 3, 56, 57, 58, 1000, 65_537])
@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
def test_decoded_size_of_base64_is_exact(size, eol):
    payload = bytes(i % 251 for i in range(size))
    raw = _with_attachment('Content-Disposition: attachment; filename="f"', base64.encodebytes(payload), eol=eol)
    top = parse_structure(io.BytesIO(raw))
    (att,) = reading.attachments(top, io.BytesIO(raw))
    assert att.size == size


def test_decoded_size_of_quoted_printable_counts_bytes():
    raw = _with_attachment('Content-Disposition: attachment; filename="f"', b"caf=C3=A9 =\n\n", "quoted-printable")
    top = parse_structure(io.BytesIO(raw))
    (att,) = reading.attachments(top, io.BytesIO(raw))
    assert att.size < top.children[1].size


def test_preview_skips_quotes_and_signature():
    raw = (
        b"From: a@b.example\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        b"Bob wrote:\r\n> old text\r\nNew   text\r\nhere\r\n-- \r\nSig\r\n"
    )
    top = parse_structure(io.BytesIO(raw))
    assert reading.preview(io.BytesIO(raw), top) == "New text here"


def _info(uid, subject, mid, irt="", ts=0):
    env = [None, subject, None, None, None, None, None, None, irt or None, mid]
    return SimpleNamespace(uid=uid, subject=subject, envelope=env, internaldate=ts or uid)


def test_thread_groups_by_chain_and_by_reply_subject():
    msgs = [
        _info(5, "Re: Re: Picnic", "<c@x>", "<b-in-sent@x>", 50),  # parent in Sent: joins by subject
        _info(4, "Other", "<o@x>", "", 40),
        _info(3, "Re: Dinner", "<d2@x>", "<d1@x>", 30),
        _info(2, "Dinner", "<d1@x>", "", 20),
        _info(1, "Picnic", "<a@x>", "", 10),
        _info(6, "Other", "<o2@x>", "", 5),  # same subject, neither a reply: kept apart
    ]
    groups = [(m.uid, n) for m, n in webmail.thread_groups(msgs)]
    assert groups == [(5, 2), (4, 1), (3, 2), (6, 1)]
    assert webmail.base_subject("RE: Fwd: TR:  Hello  world") == "hello world"


def test_references_and_reply_all_recipients():
    hdr = email.message.Message()
    hdr["Message-ID"] = "<m3@x>"
    hdr["References"] = "<m1@x>\r\n <m2@x> junk"
    hdr["To"] = "Bob <bob@home.example>, carol@home.example"
    hdr["Cc"] = "=?utf-8?q?Ren=C3=A9?= <rene@else.example>, alice@else.example"
    assert webmail.thread_references(hdr) == ["<m1@x>", "<m2@x>", "<m3@x>"]
    assert webmail.message_ids("<a@x>\r\nBcc: evil@x <b@x>") == ["<a@x>", "<b@x>"]
    cc = webmail.reply_all_cc(hdr, "Alice <alice@else.example>", lambda a: a == "bob@home.example")
    assert cc == "carol@home.example, René <rene@else.example>"
    long = email.message.Message()
    long["References"] = " ".join(f"<r{i}@x>" for i in range(40))
    long["Message-ID"] = "<last@x>"
    refs = webmail.thread_references(long)
    assert len(refs) == webmail.MAX_REFERENCES and refs[0] == "<r0@x>" and refs[-1] == "<last@x>"


def test_upload_names_dates_and_sizes():
    assert webmail.upload_filename("résumé été.txt") == "résumé été.txt"
    assert webmail.upload_filename("résumé.txt".encode().decode("latin-1")) == "résumé.txt"
    assert webmail.upload_filename('../a"b') == ".._a_b"
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    date = "Sun, 29 Nov 2026 12:00:00 +0000"
    assert webmail.fmt_header_date(date, 0, paris, "en") == "Sun, Nov 29, 2026, 13:00"
    assert webmail.fmt_header_date(date, 0, paris, "fr") == "dim. 29 nov. 2026, 13:00"
    ts = int(dt.datetime(2020, 2, 3, 9, 5, tzinfo=dt.UTC).timestamp())
    assert webmail.fmt_header_date("garbage", ts, paris, "fr") == "lun. 3 févr. 2020, 10:05"
    assert webmail.fmt_date(ts, paris, "fr") == "03/02/2020" and webmail.fmt_date(ts, paris, "en") == "2020-02-03"
    assert webmail.fmt_size(999) == "999 bytes" and webmail.fmt_size(1028) == "1.0 KB"
    assert webmail.fmt_size(3_400_000, "fr") == "3,4 Mo" and webmail.fmt_size(25_000_000) == "25 MB"


def test_address_list_decodes_names_after_parsing():
    assert webmail.address_list("=?utf-8?q?Doe=2C_J=C3=B6hn?= <j@x.example>, b@x.example") == (
        '"Doe, Jöhn" <j@x.example>, b@x.example'
    )
