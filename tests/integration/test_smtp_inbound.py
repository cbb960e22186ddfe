"""Port 25 (MX) against a real ``gk serve``: policy, headers, extensions, limits, bad input."""

from __future__ import annotations

import re
import smtplib
import subprocess

import pytest
from support.smtp import RawSMTP, empty_maildirs, messages, module_server, parsed, smtp25, wait_for

ENHANCED = re.compile(r"^\d{3}[ -][245]\.\d{1,3}\.\d{1,3}\b")


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    # error replies are not slowed down here (test_smtp_limits.py covers the error budget)
    smtp = {"max_message_size": 4096, "max_recipients": 3, "soft_error_limit": 50, "hard_error_limit": 100}
    with module_server(tmp_path_factory, smtp=smtp) as srv:
        yield srv


@pytest.fixture
def srv(shared):
    empty_maildirs(shared)
    return shared


def test_ehlo_advertises_extensions_without_auth(srv):
    with smtp25(srv) as s:
        code, _ = s.ehlo()
        assert code == 250
        for ext in ("size", "8bitmime", "smtputf8", "pipelining", "enhancedstatuscodes", "starttls"):
            assert s.has_extn(ext), ext
        assert s.esmtp_features["size"] == "4096"
        assert not s.has_extn("auth")
        code, msg = s.docmd("AUTH", "PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHg=")
        assert code == 502 and msg.startswith(b"5.5.1")


def test_relay_denied_and_unknown_user_refused_at_rcpt(srv):
    with smtp25(srv) as s:
        s.ehlo()
        assert s.mail("someone@elsewhere.example")[0] == 250
        code, msg = s.rcpt("victim@elsewhere.example")
        assert (code, msg[:5]) == (550, b"5.7.1")
        code, msg = s.rcpt("nobody@example.org")
        assert (code, msg[:5]) == (550, b"5.1.1")
        assert s.rcpt("alice@example.org")[0] == 250
    assert messages(srv, "alice@example.org") == []  # nothing was sent yet


def test_delivery_headers_plus_address_and_alias(srv):
    body = b"From: Carol <carol@sender.example>\r\nSubject: hello\r\n\r\nline one\r\n.leading dot\r\n"
    with smtp25(srv) as s:
        refused = s.sendmail("carol@sender.example", ["alice+lists@example.org", "postmaster@example.org"], body)
        assert refused == {}
    got = messages(srv, "alice@example.org")
    assert len(got) == 1  # one copy per user, even with two addresses that resolve to alice
    msg = parsed(got[0])
    assert msg["Return-Path"] == "<carol@sender.example>"
    assert msg["Delivered-To"] == "alice+lists@example.org"
    received = msg["Received"]
    assert "client.example.net" in received and "[127.0.0.1]" in received and "with ESMTP " in received
    assert msg["Authentication-Results"].startswith("mx.test.example;")
    assert msg["Subject"] == "hello"
    assert got[0].endswith(b"line one\r\n.leading dot\r\n")  # dot-unstuffed, CRLF kept
    assert messages(srv, "bob@example.org") == []


def test_swaks_delivers_over_starttls(srv):
    out = subprocess.run(
        [
            "swaks",
            "--server",
            "127.0.0.1",
            "--port",
            str(srv.port("smtp.port")),
            "--tls",
            "--helo",
            "swaks.example",
            "--from",
            "dave@sender.example",
            "--to",
            "bob@example.org",
            "--header",
            "Subject: via swaks",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "250 2.0.0" in out.stdout
    (raw,) = messages(srv, "bob@example.org")
    msg = parsed(raw)
    assert msg["Subject"] == "via swaks"
    assert "with ESMTPS" in msg["Received"] and "TLSv1." in msg["Received"]


def test_size_limit_recipient_limit_and_line_limit(srv):
    with smtp25(srv) as s:
        s.ehlo()
        code, msg = s.docmd("MAIL FROM:<a@sender.example> SIZE=999999")
        assert (code, msg[:5]) == (552, b"5.3.4")
        assert s.mail("a@sender.example")[0] == 250
        for _ in range(3):
            assert s.rcpt("alice@example.org")[0] == 250
        code, msg = s.rcpt("alice@example.org")
        assert (code, msg[:5]) == (452, b"4.5.3")
        code, msg = s.data(b"Subject: big\r\n\r\n" + b"x" * 70 + b"\r\n" * 1 + (b"y" * 70 + b"\r\n") * 100)
        assert (code, msg[:5]) == (552, b"5.3.4")
        # the session is still usable after the refusal
        assert s.mail("a@sender.example")[0] == 250
        assert s.rcpt("alice@example.org")[0] == 250
        code, msg = s.data(b"Subject: long line\r\n\r\n" + b"z" * 5000 + b"\r\n")
        assert code == 552 or (code == 500 and msg[:5] == b"5.5.6")
        assert s.noop()[0] == 250
    assert messages(srv, "alice@example.org") == []
    assert list((srv.data_dir / "mail" / "alice@example.org" / "Maildir" / "tmp").glob("*")) == []


def test_malformed_commands_get_replies_and_session_continues(srv):
    c = RawSMTP(srv.port("smtp.port"))
    assert c.greeting.startswith("220 mx.test.example")
    replies = [
        c.cmd("MAIL FROM:<x@y.example>"),  # before EHLO
        c.cmd("EHLO"),  # no argument
        c.cmd("HELO client.example.net"),
        c.cmd("RCPT TO:<alice@example.org>"),  # before MAIL
        c.cmd("MAIL FROM:<<<broken"),  # unbalanced brackets: a syntax error
        c.cmd("MAIL FROM:x@y.example BOGUS=1"),
        c.cmd("DATA"),
        c.cmd("XYZZY"),
        c.cmd(b"\xff\xfe garbage"),
        c.cmd("NOOP"),
    ]
    codes = [r[:3] for r in replies]
    assert codes == ["503", "501", "250", "503", "501", "501", "503", "500", "500", "250"], replies
    for r in replies:
        if not r.startswith("250 mx.test") and not r.startswith("501 Syntax: EHLO"):
            assert ENHANCED.match(r), r
    assert c.cmd("MAIL FROM:<x@y.example>").startswith("250 2.1.0")
    assert c.cmd("RCPT TO:<alice@example.org>").startswith("250 2.1.5")
    assert c.cmd("DATA").startswith("354")
    assert c.cmd(b"Subject: still works\r\n\r\nyes\r\n.").startswith("250 2.0.0")
    assert c.cmd("QUIT").startswith("221 2.0.0")
    assert len(messages(srv, "alice@example.org")) == 1


def test_pipelined_transaction(srv):
    c = RawSMTP(srv.port("smtp.port"))
    c.cmd("EHLO client.example.net")
    c.send(b"MAIL FROM:<p@sender.example>\r\nRCPT TO:<alice@example.org>\r\nRCPT TO:<nobody@example.org>\r\nDATA\r\n")
    assert [c.reply()[:9] for _ in range(4)] == ["250 2.1.0", "250 2.1.5", "550 5.1.1", "354 End d"]
    c.send(b"Subject: pipelined\r\n\r\nbody\r\n.\r\nMAIL FROM:<q@sender.example>\r\nRSET\r\nQUIT\r\n")
    assert [c.reply()[:9] for _ in range(4)] == ["250 2.0.0", "250 2.1.0", "250 2.0.0", "221 2.0.0"]
    assert len(messages(srv, "alice@example.org")) == 1


def test_tls_garbage_and_abrupt_disconnects_do_not_hurt(srv):
    import socket

    port = srv.port("smtp.port")
    c = RawSMTP(port)
    c.cmd("EHLO x.example")
    assert c.cmd("STARTTLS").startswith("220")
    c.send(b"GET / HTTP/1.0\r\n\r\n" * 20)  # not a TLS ClientHello
    assert c.closed()
    c = RawSMTP(port)
    c.cmd("EHLO x.example")
    c.cmd("MAIL FROM:<a@sender.example>")
    c.cmd("RCPT TO:<alice@example.org>")
    c.cmd("DATA")
    c.send(b"Subject: cut\r\n\r\nhalf a message")
    c.close()  # abrupt disconnect in the middle of DATA
    with socket.create_connection(("127.0.0.1", srv.port("smtp.submissions_port"))) as raw:
        raw.sendall(b"EHLO not-tls\r\n")  # plain text on the implicit TLS port
    with smtp25(srv) as s:
        assert s.noop()[0] == 250
    assert srv.proc.poll() is None
    assert messages(srv, "alice@example.org") == []
    assert list((srv.data_dir / "mail" / "alice@example.org" / "Maildir" / "tmp").glob("*")) == []
    assert list((srv.data_dir / "spool" / "smtp-in").glob("*")) == []


def test_helo_only_client_gets_plain_smtp(srv):
    s = smtplib.SMTP("127.0.0.1", srv.port("smtp.port"), local_hostname="old.example", timeout=30)
    s.helo()
    assert s.sendmail("old@sender.example", ["bob@example.org"], b"Subject: old\r\n\r\nhi\r\n") == {}
    s.quit()
    (raw,) = messages(srv, "bob@example.org")
    assert "with SMTP " in parsed(raw)["Received"]


def test_null_sender_bounce_is_accepted(srv):
    c = RawSMTP(srv.port("smtp.port"))
    c.cmd("EHLO mx.bounce.example")
    assert c.cmd("MAIL FROM:<> SIZE=100").startswith("250 2.1.0")
    assert c.cmd("RCPT TO:<bob@example.org>").startswith("250")
    c.cmd("DATA")
    assert c.cmd(b"Subject: Undelivered Mail\r\n\r\nbounce\r\n.").startswith("250 2.0.0")
    (raw,) = messages(srv, "bob@example.org")
    msg = parsed(raw)
    assert msg["Return-Path"] == "<>"
    assert "smtp.helo=mx.bounce.example" in msg["Authentication-Results"]


def test_connection_limit_answers_421(make_server, dns_server):
    from support.smtp import start_smtp_server

    limited = start_smtp_server(make_server, dns_server, smtp={"max_connections": 2}, name="limited")
    port = limited.port("smtp.port")
    first, second = RawSMTP(port), RawSMTP(port)
    assert first.greeting.startswith("220") and second.greeting.startswith("220")
    third = RawSMTP(port)
    assert third.greeting.startswith("421 4.7.0")
    assert third.closed()
    first.cmd("QUIT")
    assert wait_for(lambda: RawSMTP(port).greeting.startswith("220"))
    assert second.cmd("NOOP").startswith("250")


def test_postmaster_and_abuse_reach_the_admin(make_server, dns_server):
    """RFC 5321 §4.5.1: <Postmaster> (no domain) and postmaster@ each local domain are accepted;
    RFC 2142's abuse@ too. They reach the first admin unless an alias says otherwise."""
    from support.smtp import PASSWORD, start_smtp_server

    srv = start_smtp_server(make_server, dns_server, name="roles")
    srv.add_user("owner@example.org", PASSWORD, admin=True)
    body = b"From: <reporter@sender.example>\r\nSubject: report\r\n\r\nplease look\r\n"
    with smtp25(srv) as s:
        s.ehlo()
        assert s.mail("reporter@sender.example")[0] == 250
        assert s.rcpt("<Postmaster>")[0] == 250
        assert s.rcpt("Abuse@Example.org")[0] == 250
        code, msg = s.rcpt("postmaster@elsewhere.example")
        assert (code, msg[:5]) == (550, b"5.7.1")  # not a local domain: still no relay
        assert s.data(body)[0] == 250
        s.sendmail("reporter@sender.example", ["postmaster@example.org"], body)  # the alias to alice wins
    got = messages(srv, "owner@example.org")
    assert len(got) == 1  # one copy for the two role addresses
    assert parsed(got[0])["Subject"] == "report"
    assert len(messages(srv, "alice@example.org")) == 1
