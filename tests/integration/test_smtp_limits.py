"""SMTP limits and protocol strictness against a real ``gk serve`` (issue 9): connection budgets
per listener kind and per client IP, the overall DATA deadline, a full disk during DATA, RCPT
probing, STARTTLS/AUTH/MAIL edge cases. Other client IPs are other loopback addresses
(127.0.0.2, ...): Linux routes all of 127/8 to lo."""

from __future__ import annotations

import base64
import select
import smtplib
import subprocess
import threading
import time

import pytest
from support.smtp import (
    PASSWORD,
    RawSMTP,
    empty_maildirs,
    messages,
    module_server,
    smtp25,
    start_smtp_server,
    tls_client_context,
    wait_for,
)

SOFT, HARD, SLEEP = 2, 5, 0.2
DATA_TIMEOUT = 4.0
JUNK = 12


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    smtp = {
        "soft_error_limit": SOFT,
        "hard_error_limit": HARD,
        "error_sleep_time": SLEEP,
        "junk_command_limit": JUNK,
        "data_timeout": DATA_TIMEOUT,
        "data_idle_timeout": 60.0,  # only the overall deadline can end the trickle below
        "require_tls_for_auth": False,  # to log in before STARTTLS and see the login dropped
    }
    with module_server(tmp_path_factory, smtp=smtp) as srv:
        yield srv


@pytest.fixture
def srv(shared):
    empty_maildirs(shared)
    return shared


def plain(authzid: str, user: str, password: str = PASSWORD) -> str:
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()


# -- connection slots ------------------------------------------------------------------------


def test_port_25_flood_leaves_submission_free_and_one_ip_gets_only_its_share(make_server, dns_server):
    smtp = {
        "max_connections": 3,
        "max_connections_per_ip": 2,
        "max_submission_connections": 2,
        "max_submission_connections_per_ip": 2,
    }
    srv = start_smtp_server(make_server, dns_server, smtp=smtp, name="slots")
    mx = srv.port("smtp.port")
    first, second = RawSMTP(mx), RawSMTP(mx)
    assert first.greeting.startswith("220") and second.greeting.startswith("220")
    third = RawSMTP(mx)  # same IP, over its share
    assert third.greeting.startswith("421 4.7.0 Too many connections from your address"), third.greeting
    assert third.closed()
    other = RawSMTP(mx, source="127.0.0.2")  # another client still gets in
    assert other.greeting.startswith("220"), other.greeting
    full = RawSMTP(mx, source="127.0.0.3")  # port 25 is full now
    assert full.greeting.startswith("421 4.7.0 Too many connections;"), full.greeting
    # ... and submission is not: a user on the same IP as the flood sends mail
    with smtplib.SMTP("127.0.0.1", srv.port("smtp.submission_port"), timeout=30) as s:
        s.starttls(context=tls_client_context())
        s.login("alice@example.org", PASSWORD)
        assert s.sendmail("alice@example.org", ["bob@example.org"], b"Subject: out\r\n\r\nstill works\r\n") == {}
    assert len(messages(srv, "bob@example.org")) == 1
    first.cmd("QUIT")
    # the slot comes back once the server has seen the close
    assert wait_for(lambda: RawSMTP(mx, source="127.0.0.3").greeting.startswith("220"), timeout=60)
    assert second.cmd("NOOP").startswith("250") and other.cmd("NOOP").startswith("250")


# -- DATA ------------------------------------------------------------------------------------


def test_a_trickle_in_data_is_cut_at_the_overall_deadline(srv):
    c = RawSMTP(srv.port("smtp.port"))
    c.cmd("EHLO client.example.net")
    c.cmd("MAIL FROM:<carol@sender.example>")
    c.cmd("RCPT TO:<alice@example.org>")
    assert c.cmd("DATA").startswith("354")
    c.send(b"Subject: trickle\r\n\r\n")
    # one byte every half second: never idle, never done (the reported attack: 1 byte per 3 s
    # with data_idle_timeout=5 was still accepted after 60 s)
    give_up = time.monotonic() + 120
    reply = ""
    while time.monotonic() < give_up:
        readable, _, _ = select.select([c.sock], [], [], 0.5)
        if readable:
            reply = c.reply()
            break
        c.send(b"x")
    assert reply.startswith("421 4.4.2"), reply or "no reply: the trickle was never cut"
    assert "DATA not finished within 4 seconds" in reply
    assert c.closed()
    assert messages(srv, "alice@example.org") == []


@pytest.fixture
def full_spool(make_server, dns_server):
    """A server whose DATA spool is a 192 KiB tmpfs: a real ENOSPC in the middle of a message."""
    srv = make_server("diskfull", {})
    spool = srv.data_dir / "spool" / "smtp-in"
    spool.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(spool)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield start_smtp_server(lambda name, overrides: _reuse(srv, overrides), dns_server, name="diskfull")
    finally:
        srv.stop()
        subprocess.run(["umount", "-l", str(spool)], check=False)


def _reuse(srv, overrides):  # type: ignore[no-untyped-def]
    srv.overrides = overrides
    return srv


def test_disk_full_during_data_never_reads_the_body_as_commands(full_spool):
    srv = full_spool
    # ~1 MB of NOOP lines (harmless if read as commands, so nothing else ends a desynced
    # session first), then a whole transaction: read as commands it would deliver a message
    injected = (
        b"RSET\r\nMAIL FROM:<admin@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"
        b"From: admin@sender.example\r\nSubject: injected\r\n\r\nevil\r\n"
    )
    body = b"Subject: big\r\n\r\n" + b"NOOP\r\n" * 175_000 + injected + b".\r\n"
    c = RawSMTP(srv.port("smtp.port"))
    try:
        c.cmd("EHLO client.example.net")
        assert c.cmd("MAIL FROM:<carol@sender.example>").startswith("250")
        assert c.cmd("RCPT TO:<alice@example.org>").startswith("250")
        assert c.cmd("DATA").startswith("354")
        sender = threading.Thread(target=c.send, args=(body,), daemon=True)
        sender.start()
        reply = c.reply()
        assert reply.startswith("452 4.3.1"), reply  # one reply, after the final dot
        sender.join(60)
        assert not sender.is_alive()
        assert c.cmd("NOOP").startswith("250 2.0.0")  # the next reply is the NOOP's: in step
        # the envelope was reset, the partial spool file removed (its space is free again)
        assert c.cmd("DATA").startswith("503")
        assert wait_for(lambda: not list((srv.data_dir / "spool" / "smtp-in").iterdir()), timeout=60)
        assert c.cmd("MAIL FROM:<carol@sender.example>").startswith("250")
        assert c.cmd("RCPT TO:<alice@example.org>").startswith("250")
        assert c.cmd("DATA").startswith("354")
        assert c.cmd(b"Subject: small\r\n\r\nfits\r\n.").startswith("250 2.0.0")
    finally:
        c.close()
    assert messages(srv, "bob@example.org") == []
    (raw,) = messages(srv, "alice@example.org")
    assert b"Subject: small" in raw
    assert "could not spool DATA" in srv.log()


# -- errors ----------------------------------------------------------------------------------


def _reply_or_none(c: RawSMTP) -> str | None:
    try:
        return c.reply()
    except ConnectionError:
        return None


def test_rcpt_probing_slows_down_and_is_cut_off(srv):
    c = RawSMTP(srv.port("smtp.port"))
    c.cmd("EHLO prober.example.net")
    assert c.cmd("MAIL FROM:<probe@sender.example>").startswith("250")
    started = time.monotonic()
    c.send(b"".join(b"RCPT TO:<guess%d@example.org>\r\n" % i for i in range(200)))
    replies = []
    while (r := _reply_or_none(c)) is not None:
        replies.append(r)
    elapsed = time.monotonic() - started
    assert [r[:9] for r in replies] == ["550 5.1.1"] * HARD + ["421 4.7.0"], replies
    assert "Too many errors" in replies[-1]
    # errors past the soft limit waited SLEEP, 2*SLEEP, ... (a lower bound holds under any load)
    assert elapsed >= SLEEP * sum(range(1, HARD - SOFT + 1)) - 0.05
    assert "closing session from 127.0.0.1 on smtp: 5 errors" in srv.log()


def test_a_delivered_message_forgives_earlier_errors(srv):
    c = RawSMTP(srv.port("smtp.port"))
    c.cmd("EHLO client.example.net")
    c.cmd("MAIL FROM:<carol@sender.example>")
    for i in range(HARD - 1):  # a typo'd list of recipients, then the right one
        assert c.cmd(f"RCPT TO:<typo{i}@example.org>").startswith("550 5.1.1")
    assert c.cmd("RCPT TO:<alice@example.org>").startswith("250")
    c.cmd("DATA")
    assert c.cmd(b"Subject: ok\r\n\r\nok\r\n.").startswith("250 2.0.0")
    c.cmd("MAIL FROM:<carol@sender.example>")
    for i in range(HARD - 1):
        assert c.cmd(f"RCPT TO:<again{i}@example.org>").startswith("550 5.1.1")
    assert c.cmd("NOOP").startswith("250")


def test_a_session_that_only_keeps_itself_open_is_closed(srv):
    """NOOP, RSET, VRFY and HELP past ``junk_command_limit`` since the last message delivered
    count as errors (Postfix's smtpd_junk_command_limit): a client sending a NOOP just inside
    command_timeout no longer holds a port-25 slot for ever. A delivered message starts the
    count again."""
    c = RawSMTP(srv.port("smtp.port"))
    c.cmd("EHLO idler.example.net")
    junk = ["NOOP", "RSET", "VRFY <alice@example.org>", "HELP"]
    for i in range(JUNK - 1):
        assert c.cmd(junk[i % 4])[:1] == "2"
    c.cmd("MAIL FROM:<carol@sender.example>")
    c.cmd("RCPT TO:<alice@example.org>")
    c.cmd("DATA")
    assert c.cmd(b"Subject: hi\r\n\r\nhi\r\n.").startswith("250 2.0.0")
    replies = []
    for _ in range(JUNK + HARD + 5):
        try:
            replies.append(c.cmd("NOOP"))
        except (ConnectionError, OSError):
            break
    assert [r[:3] for r in replies] == ["250"] * (JUNK + HARD - 1) + ["421"], replies
    assert "Too many errors" in replies[-1] and c.closed()


# -- protocol --------------------------------------------------------------------------------


def test_starttls_forgets_the_login_and_a_second_starttls_is_refused(srv):
    with smtplib.SMTP("127.0.0.1", srv.port("smtp.submission_port"), timeout=30) as s:
        s.ehlo("laptop.example.net")
        s.login("alice@example.org", PASSWORD)  # in clear text: this server allows it
        s.starttls(context=tls_client_context())
        s.ehlo("laptop.example.net")
        code, msg = s.mail("alice@example.org")
        assert (code, msg[:5]) == (530, b"5.7.0"), msg  # the login made before TLS is gone
        s.login("alice@example.org", PASSWORD)
        code, msg = s.docmd("STARTTLS")
        assert (code, msg[:5]) == (503, b"5.5.1"), msg  # RFC 3207 §4.2
        # still the same TLS session, still logged in
        assert s.noop()[0] == 250
        assert s.mail("alice@example.org")[0] == 250
    c = RawSMTP(srv.port("smtp.submissions_port"), tls=True)
    c.cmd("EHLO laptop.example.net")
    assert c.cmd("STARTTLS").startswith("503 5.5.1")
    assert c.cmd("NOOP").startswith("250")


def test_auth_plain_as_another_user_fails(srv):
    c = RawSMTP(srv.port("smtp.submissions_port"), tls=True)
    c.cmd("EHLO laptop.example.net")
    reply = c.cmd("AUTH PLAIN " + plain("bob@example.org", "alice@example.org"))
    assert reply.startswith("535 5.7.8"), reply  # RFC 4616: not "logged in as alice"
    assert c.cmd("MAIL FROM:<alice@example.org>").startswith("530")
    assert c.cmd("AUTH PLAIN " + plain("Alice@Example.org", "alice@example.org")).startswith("235")
    assert c.cmd("MAIL FROM:<alice@example.org>").startswith("250")


def test_an_overlong_line_in_auth_login_is_refused_and_not_run(srv):
    tracebacks = srv.log().count("Traceback")
    c = RawSMTP(srv.port("smtp.submissions_port"), tls=True)
    c.cmd("EHLO laptop.example.net")
    assert c.cmd("AUTH LOGIN").startswith("334 ")
    reply = c.cmd(b"A" * 100_000 + b" NOOP")
    assert reply.startswith("500 5.5.6"), reply
    assert c.cmd("NOOP").startswith("250 2.0.0")  # the next reply: no part of the line ran
    assert c.cmd("AUTH LOGIN").startswith("334 ")
    assert c.cmd(base64.b64encode(b"alice@example.org")).startswith("334 ")
    assert c.cmd(base64.b64encode(b"x" * 100_000)).startswith("500 5.5.6")  # the password step too
    assert c.cmd("NOOP").startswith("250 2.0.0")
    assert srv.log().count("Traceback") == tracebacks


def test_unbalanced_brackets_in_mail_and_rcpt_are_syntax_errors(srv):
    c = RawSMTP(srv.port("smtp.port"))
    c.cmd("EHLO client.example.net")
    assert c.cmd("MAIL FROM:<broken").startswith("501 5.1.7")
    assert c.cmd("MAIL FROM:<carol@sender.example>>").startswith("501 5.1.7")
    assert c.cmd("MAIL FROM:<carol@sender.example>").startswith("250")
    assert c.cmd("RCPT TO:<alice@example.org").startswith("501 5.1.3")
    assert c.cmd("RCPT TO:<alice@example.org>").startswith("250")
    with smtp25(srv) as s:  # smtplib's own framing still works
        assert s.sendmail("carol@sender.example", ["alice@example.org"], b"Subject: fine\r\n\r\nfine\r\n") == {}
