"""msmtp (Debian's, GnuTLS + GNU SASL) submitting to GK: STARTTLS on 587 with AUTH PLAIN and with
AUTH LOGIN, implicit TLS on 465 (``tls_starttls off``), each trusting only the server's own
certificate (``tls_trust_file``, the name checked through ``tls_host_override``). The message
is then read back over IMAP and must be byte for byte what msmtp was given (8-bit UTF-8, a
dot-leading line, a long body). A wrong password makes msmtp exit non-zero with GK's 535."""

from __future__ import annotations

import imaplib
import ssl

import pytest
from interop_support import (
    ALICE,
    BOB,
    HOSTNAME,
    PASSWORD,
    cert,
    maildir,
    messages,
    module_server,
    need,
    run,
    strip_trace,
)

gk_server = module_server()


def message(tag: str) -> bytes:
    return (
        f"From: Alice <{ALICE}>\r\n"
        f"To: Bob <{BOB}>\r\n"
        f"Subject: msmtp Grüße {tag}\r\n"
        f"Message-ID: <{tag}@msmtp.example.org>\r\n"
        "Date: Mon, 2 Nov 2026 10:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        f"Hällo wörld ✓ {tag}\r\n"
        ".a line that starts with a dot\r\n"
        "..and one with two\r\n" + "".join(f"line {i:05d} of a longer body\r\n" for i in range(3000))
    ).encode()


def msmtprc(srv, tmp_path, *, implicit_tls: bool, auth: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    port = srv.port("smtp.submissions_port" if implicit_tls else "smtp.submission_port")
    rc = tmp_path / f"msmtprc-{auth}-{int(implicit_tls)}"
    rc.write_text(
        f"""defaults
logfile {tmp_path}/msmtp.log

account gk
host 127.0.0.1
port {port}
tls on
tls_starttls {"off" if implicit_tls else "on"}
tls_trust_file {cert(srv)}
tls_host_override {HOSTNAME}
auth {auth}
user {ALICE}
password {password}
from {ALICE}
timeout 60
"""
    )
    rc.chmod(0o600)  # msmtp refuses a config file with a password that others can read
    return rc


def msmtp(rc, data: bytes, *rcpts: str):  # type: ignore[no-untyped-def]
    return run(["msmtp", "-C", str(rc), "-a", "gk", "--", *rcpts], input=data, timeout=90)


def fetch_by_message_id(srv, user: str, tag: str) -> bytes:  # type: ignore[no-untyped-def]
    ctx = ssl.create_default_context(cafile=str(cert(srv)))
    ctx.check_hostname = False  # the certificate names mx.test.example; we connect to 127.0.0.1
    m = imaplib.IMAP4_SSL("127.0.0.1", srv.port("imap.tls_port"), ssl_context=ctx, timeout=30)
    try:
        m.login(user, PASSWORD)
        m.select("INBOX", readonly=True)
        typ, data = m.uid("SEARCH", None, "HEADER", "Message-ID", f"<{tag}@msmtp.example.org>")
        assert typ == "OK", data
        uids = data[0].split()
        assert len(uids) == 1, f"{len(uids)} messages with Message-ID {tag} in {user}'s INBOX"
        typ, data = m.uid("FETCH", uids[0], "(BODY.PEEK[])")
        assert typ == "OK", data
        return next(d[1] for d in data if isinstance(d, tuple))
    finally:
        m.logout()


@pytest.mark.parametrize(
    ("implicit_tls", "auth"),
    [(False, "plain"), (False, "login"), (True, "plain")],
    ids=["587-starttls-plain", "587-starttls-login", "465-implicit-plain"],
)
def test_msmtp_submits_and_message_arrives_whole(gk_server, tmp_path, implicit_tls, auth):
    need("msmtp")
    tag = f"{auth}{int(implicit_tls)}"
    data = message(tag)
    rc = msmtprc(gk_server, tmp_path, implicit_tls=implicit_tls, auth=auth)
    res = msmtp(rc, data, BOB, ALICE)
    out = (res.stdout + res.stderr).decode(errors="replace")
    assert res.returncode == 0, out + (tmp_path / "msmtp.log").read_text(errors="replace")
    for user in (BOB, ALICE):
        got = fetch_by_message_id(gk_server, user, tag)
        assert strip_trace(got) == data  # whole: headers, 8-bit bytes, dot lines, every line
        assert b"with ESMTPSA" in got  # authenticated submission, recorded in the trace


def test_msmtp_wrong_password_gets_535(gk_server, tmp_path):
    need("msmtp")
    before = len(messages(maildir(gk_server, BOB)))
    rc = msmtprc(gk_server, tmp_path, implicit_tls=False, auth="plain", password="wrong password")
    res = msmtp(rc, message("badpw"), BOB)
    out = (res.stdout + res.stderr).decode(errors="replace")
    assert res.returncode != 0, out
    assert "535" in out, out  # msmtp shows the server's reply: 535 5.7.8
    assert "authentication failed" in out.lower(), out
    assert len(messages(maildir(gk_server, BOB))) == before
