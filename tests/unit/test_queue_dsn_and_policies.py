"""DSN format (RFC 3464), MTA-STS policy parsing (RFC 8461), DKIM keys and signatures (dkimpy)."""

from __future__ import annotations

import email

import dkim
import pytest

from gk.mail.dkim import dns_record, ensure_keys, load_keys, sign_headers
from gk.mail.outbound.mtasts import parse_policy
from gk.mail.queue import dsn


def test_failure_dsn_is_a_delivery_status_report():
    raw = dsn.build(
        kind="failed",
        hostname="mx.l.example",
        to="a@l.example",
        failures=[dsn.Failure("b@x.example", "RCPT TO: 550 5.1.1 no such user", "mx.x.example[1.2.3.4]:25")],
        original=b"Subject: report\r\nFrom: a@l.example\r\n",
        arrival=0.0,
    )
    msg = email.message_from_bytes(raw)
    assert msg.get_content_type() == "multipart/report" and msg.get_param("report-type") == "delivery-status"
    assert msg["From"] == "Mail Delivery System <MAILER-DAEMON@mx.l.example>"
    text, status, headers = msg.get_payload()
    assert [p.get_content_type() for p in msg.get_payload()] == [
        "text/plain",
        "message/delivery-status",
        "text/rfc822-headers",
    ]
    per_message, per_rcpt = status.get_payload()
    assert per_message["Reporting-MTA"] == "dns; mx.l.example"
    assert per_rcpt["Final-Recipient"] == "rfc822; b@x.example"
    assert per_rcpt["Action"] == "failed" and per_rcpt["Status"] == "5.1.1"
    assert per_rcpt["Remote-MTA"] == "dns; mx.x.example[1.2.3.4]:25"
    assert "Subject: report" in headers.get_payload()


def test_status_codes():
    assert dsn.Failure("x", "451 4.7.1 later", permanent=False).status == "4.7.1"
    assert dsn.Failure("x", "connection refused", permanent=False).status == "4.0.0"
    assert dsn.Failure("x", "gave up", permanent=True).status == "5.0.0"
    assert dsn.Failure("x", "gave up; last error: 451 4.3.0 busy", permanent=True).status == "5.0.0"
    assert dsn.Failure("x", "expired", permanent=True, fixed_status="5.4.7").status == "5.4.7"
    assert dsn.Failure("x", "RCPT TO: 550 5.1.1 no").smtp_reply == "550 5.1.1 no"
    assert dsn.Failure("x", "domain x accepts no mail").smtp_reply == ""


def test_mta_sts_policy_parse_and_match():
    p = parse_policy(
        "x.example", "1", "version: STSv1\nmode: enforce\nmx: *.x.example\nmx: mail.y.example\nmax_age: 600\n"
    )
    assert p.enforce and p.max_age == 600
    assert p.matches("mx1.x.example") and p.matches("MAIL.Y.EXAMPLE.")
    assert not p.matches("a.b.x.example") and not p.matches("x.example") and not p.matches("evil-x.example")
    with pytest.raises(ValueError):
        parse_policy("x.example", "1", "mode: enforce\nmx: a\n")
    with pytest.raises(ValueError):
        parse_policy("x.example", "1", "version: STSv1\nmode: sometimes\n")


def test_dkim_rsa_and_ed25519_signatures_verify(tmp_path):
    keys = ensure_keys(tmp_path, "l.example", "gk", "gked")
    assert [(k.algorithm, k.selector) for k in keys] == [("rsa", "gk"), ("ed25519", "gked")]
    assert oct(keys[0].path.stat().st_mode & 0o777) == "0o600"
    assert load_keys(tmp_path, "l.example", "gk", "gked") == keys  # made once, then reused
    txt = {f"{k.dns_name}.".encode(): dns_record(k).encode() for k in keys}
    message = b"From: a@l.example\r\nTo: b@x.example\r\nSubject: hi\r\n\r\nHello.\r\n"
    signed = sign_headers(message, keys) + message
    d = dkim.DKIM(signed)
    assert d.verify(idx=0, dnsfunc=lambda name, timeout=5: txt.get(name))
    assert d.verify(idx=1, dnsfunc=lambda name, timeout=5: txt.get(name))
    algos = {d.verify(idx=i, dnsfunc=lambda n, timeout=5: txt.get(n)) and d.signature_fields[b"a"] for i in (0, 1)}
    assert algos == {b"rsa-sha256", b"ed25519-sha256"}
    assert not dkim.verify(signed.replace(b"Hello.", b"Hullo."), dnsfunc=lambda name, timeout=5: txt.get(name))


def test_dkim_rejects_bad_domain_names(tmp_path):
    with pytest.raises(ValueError):
        ensure_keys(tmp_path, "../etc", "gk")


@pytest.mark.parametrize(
    "body",
    [
        b"Hello.\r\n",
        b"",
        b"\r\n\r\n",
        b"a  b\t c   \r\n\r\n\r\nd\r\n\r\n\r\n",
        b"no final newline  \t",
        b"lf only\nsecond\t\tline  \n\n",
        b".dot\r\n..two\r\n \r\n\t\r\nend",
    ],
)
def test_streamed_body_hash_matches_dkimpy(tmp_path, body):
    from gk.mail.dkim.signer import relaxed_body_hash, sign_headers
    from gk.mail.outbound.wire import wire_lines

    (key,) = ensure_keys(tmp_path, "l.example", "gk")
    head = b"From: a@l.example\nSubject:  spaced   out \r\nTo: b@x.example\r\n\r\n"
    path = tmp_path / "m.eml"
    path.write_bytes(head + body)
    with open(path, "rb") as f:
        wire = b"".join(wire_lines(f))  # what goes on the wire
    ref = dkim.sign(wire, b"gk", b"l.example", key.signing_key(), canonicalize=(b"relaxed", b"relaxed"))
    ours = sign_headers(head + body, [key])
    bh = lambda sig: dkim.util.parse_tag_value(sig.split(b":", 1)[1].replace(b"\r\n", b""))[b"bh"]  # noqa: E731
    assert bh(ours) == bh(ref)
    txt = {b"gk._domainkey.l.example.": dns_record(key).encode()}
    assert dkim.verify(ours + wire, dnsfunc=lambda name, timeout=5: txt.get(name))
    with open(path, "rb") as f:
        assert relaxed_body_hash(list(wire_lines(f))[4:])  # after 3 headers + blank line == bh(ref)
