"""Ports 587 and 465 against a real ``gk serve``: STARTTLS, AUTH, sender ownership, lockout."""

from __future__ import annotations

import base64
import smtplib
import subprocess

import pytest
from support.smtp import (
    PASSWORD,
    RawSMTP,
    empty_maildirs,
    messages,
    module_server,
    parsed,
    submission,
    tls_client_context,
)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    # a quick lockout so the brute-force test is short; delays kept small
    auth = {"delay_after_failures": 2, "max_delay": 0.2, "lockout_failures_account": 4, "lockout_seconds": 600}
    with module_server(tmp_path_factory, auth=auth) as srv:
        yield srv


@pytest.fixture
def srv(shared):
    empty_maildirs(shared)
    return shared


def test_auth_hidden_before_starttls_and_offered_after(srv):
    s = smtplib.SMTP("127.0.0.1", srv.port("smtp.submission_port"), local_hostname="laptop.example.net", timeout=30)
    s.ehlo()
    assert s.has_extn("starttls") and not s.has_extn("auth")
    code, msg = s.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0alice@example.org\0" + PASSWORD.encode()).decode())
    assert (code, msg[:6]) == (538, b"5.7.11")
    code, msg = s.docmd("MAIL FROM:<alice@example.org>")
    assert (code, msg[:5]) == (530, b"5.7.0")  # no mail without AUTH
    s.starttls(context=tls_client_context())
    s.ehlo()
    assert s.has_extn("auth") and not s.has_extn("starttls")
    assert set(s.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}
    assert s.login("alice@example.org", PASSWORD)[0] == 235
    s.quit()


def test_authenticated_submission_to_local_user_with_plus_sender(srv):
    with submission(srv) as s:
        s.ehlo()
        refused = s.sendmail("alice+news@example.org", ["bob@example.org"], b"Subject: from alice\r\n\r\nhi bob\r\n")
        assert refused == {}
    (raw,) = messages(srv, "bob@example.org")
    msg = parsed(raw)
    assert msg["Return-Path"] == "<alice+news@example.org>"
    assert "with ESMTPSA" in msg["Received"] and "authenticated as alice@example.org" in msg["Received"]
    assert "TLSv1." in msg["Received"]


def test_sender_must_be_owned(srv):
    with submission(srv) as s:
        s.ehlo()
        code, msg = s.mail("bob@example.org")
        assert (code, msg[:5]) == (553, b"5.7.1")
        assert s.mail("postmaster@example.org")[0] == 250  # alias pointing at alice
        s.rset()
        code, _ = s.mail("alice@elsewhere.example")
        assert code == 553


def test_auth_login_and_implicit_tls_on_465(srv):
    s = smtplib.SMTP_SSL("127.0.0.1", srv.port("smtp.submissions_port"), context=tls_client_context(), timeout=30)
    s.ehlo("laptop.example.net")
    assert s.has_extn("auth") and not s.has_extn("starttls")
    s.user, s.password = "bob@example.org", PASSWORD
    code, _ = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
    assert code == 235
    assert s.sendmail("bob@example.org", ["alice@example.org"], b"Subject: 465\r\n\r\nx\r\n") == {}
    s.quit()
    (raw,) = messages(srv, "alice@example.org")
    assert "authenticated as bob@example.org" in parsed(raw)["Received"]


def test_swaks_submission_with_auth(srv):
    out = subprocess.run(
        [
            "swaks",
            "--server",
            "127.0.0.1",
            "--port",
            str(srv.port("smtp.submission_port")),
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice@example.org",
            "--auth-password",
            PASSWORD,
            "--from",
            "alice@example.org",
            "--to",
            "bob@example.org",
            "--header",
            "Subject: swaks submission",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "235 2.7.0" in out.stdout
    (raw,) = messages(srv, "bob@example.org")
    assert parsed(raw)["Subject"] == "swaks submission"


def test_remote_recipient_goes_to_the_queue(srv):
    with submission(srv) as s:
        s.ehlo()
        assert s.mail("alice@example.org")[0] == 250
        code, msg = s.rcpt("friend@remote.example")
        assert code == 250, msg  # the outbound queue runs in gk serve
        assert s.rcpt("bob@example.org")[0] == 250
        code, msg = s.data(b"Subject: mixed\r\n\r\nlocal and remote\r\n")
        assert code == 250
        code, msg = s.rcpt("nobody@example.org")
    assert len(messages(srv, "bob@example.org")) == 1


def test_queue_refusal_of_a_bad_address_is_permanent(srv):
    # aiosmtpd and the policy accept a quoted local part with a space; the queue refuses it
    with submission(srv) as s:
        s.ehlo()
        assert s.mail("alice@example.org")[0] == 250
        code, msg = s.rcpt('"two words"@remote.example')
        assert code == 250, msg
        code, msg = s.data(b"Subject: unqueueable\r\n\r\nnever leaves\r\n")
        assert code == 553, msg  # permanent: retrying would never succeed
        assert msg.startswith(b"5.1.3") and b"bad recipient address" in msg
        assert s.noop()[0] == 250  # the session goes on
    assert srv.proc.poll() is None


def test_bad_base64_and_aborted_auth_keep_session(srv):
    c = RawSMTP(srv.port("smtp.submissions_port"), tls=True)
    c.cmd("EHLO laptop.example.net")
    assert c.cmd("AUTH PLAIN !!!notbase64!!!").startswith("501 5.5.2")
    assert c.cmd("AUTH PLAIN " + base64.b64encode(b"no-nul-separators").decode()).startswith("501 5.5.2")
    assert c.cmd("AUTH LOGIN").startswith("334 ")
    assert c.cmd("*").startswith("501 5.7.0")  # client aborts
    assert c.cmd("AUTH CRAM-MD5").startswith("504 5.5.4")
    assert c.cmd("NOOP").startswith("250 2.0.0")
    assert srv.proc.poll() is None


def test_brute_force_lockout(srv):
    good = base64.b64encode(b"\0bob@example.org\0" + PASSWORD.encode()).decode()
    bad = base64.b64encode(b"\0bob@example.org\0wrong password").decode()
    c = RawSMTP(srv.port("smtp.submissions_port"), tls=True)
    c.cmd("EHLO attacker.example")
    failures = [c.cmd("AUTH PLAIN " + bad) for _ in range(4)]
    assert all(r.startswith("535 5.7.8") for r in failures[:3]), failures
    # locked now: even the right password is refused, with a temporary error
    assert c.cmd("AUTH PLAIN " + good).startswith("454 4.7.0")
    c.close()
    log = srv.log()
    assert "login failed ip=127.0.0.1 account=bob@example.org" in log
    assert "locked" in log
