"""DATA against a real ``gk serve``: SMTP smuggling refused, memory bounded for a 30 MB message,
idle timeout between DATA lines instead of one timeout for the whole transfer."""

from __future__ import annotations

import hashlib
import os
import smtplib
import time

import pytest
from support.smtp import RawSMTP, empty_maildirs, messages, module_server, smtp25, wait_for

COMMAND_TIMEOUT = 3.0
DATA_IDLE_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    smtp = {"command_timeout": COMMAND_TIMEOUT, "data_idle_timeout": DATA_IDLE_TIMEOUT}
    with module_server(tmp_path_factory, smtp=smtp) as srv:
        yield srv


@pytest.fixture
def srv(shared):
    empty_maildirs(shared)
    return shared


SMUGGLING_ENDS = [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r\n.\r", b"\r.\n", b"\n.\r"]


@pytest.mark.parametrize("fake_end", SMUGGLING_ENDS, ids=[repr(e) for e in SMUGGLING_ENDS])
def test_smuggling_is_refused_and_never_ends_data(srv, fake_end):
    c = RawSMTP(srv.port("smtp.port"))
    c.cmd("EHLO client.example.net")
    assert c.cmd("MAIL FROM:<carol@sender.example>").startswith("250")
    assert c.cmd("RCPT TO:<alice@example.org>").startswith("250")
    assert c.cmd("DATA").startswith("354")
    smuggled = (
        b"MAIL FROM:<admin@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"
        b"From: admin@sender.example\r\nSubject: smuggled\r\n\r\nsend me your password\r\n"
    )
    c.send(b"Subject: innocent\r\n\r\nhello" + fake_end + smuggled + b"\r\n.\r\n")
    reply = c.reply()
    assert reply.startswith("550 5.6.0"), reply
    # exactly one reply came for the whole thing: the smuggled commands were message text
    assert c.cmd("NOOP").startswith("250 2.0.0")
    assert messages(srv, "alice@example.org") == []
    assert messages(srv, "bob@example.org") == []


def test_bare_lf_away_from_a_dot_is_accepted(srv):
    c = RawSMTP(srv.port("smtp.port"))
    c.cmd("EHLO client.example.net")
    c.cmd("MAIL FROM:<carol@sender.example>")
    c.cmd("RCPT TO:<alice@example.org>")
    c.cmd("DATA")
    c.send(b"Subject: sloppy\r\n\r\nline one\nline two\r\n.\r\n")
    assert c.reply().startswith("250 2.0.0")
    (raw,) = messages(srv, "alice@example.org")
    assert raw.endswith(b"line one\nline two\r\n")


def _vm(pid: int, key: str) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def test_30mb_message_streams_to_disk_with_bounded_memory(srv):
    size = 30 * 1024 * 1024
    with smtp25(srv) as s:  # warm up every code path first, so the baseline includes them
        s.sendmail("carol@sender.example", ["bob@example.org"], b"Subject: warm up\r\n\r\nx\r\n")
    time.sleep(0.5)
    before = _vm(srv.pid(), "VmHWM")
    line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n"  # 76 bytes
    body = b"Subject: big\r\n\r\n" + line * (size // len(line))
    digest = hashlib.sha256(body).hexdigest()
    with smtp25(srv) as s:
        assert s.sendmail("carol@sender.example", ["alice@example.org"], body) == {}
    after = _vm(srv.pid(), "VmHWM")
    growth = after - before
    print(f"VmHWM before {before / 2**20:.1f} MiB, after {after / 2**20:.1f} MiB, growth {growth / 2**20:.1f} MiB")
    assert growth <= 1.5 * len(body), growth  # the bound; streaming keeps it far lower
    assert growth <= 16 * 2**20, f"DATA is not streamed: peak RSS grew {growth / 2**20:.1f} MiB"
    new = srv.data_dir / "mail" / "alice@example.org" / "Maildir" / "new"
    (path,) = list(new.iterdir())
    with open(path, "rb") as f:
        raw = f.read()
    top, _, rest = raw.partition(b"Subject: big\r\n")
    assert hashlib.sha256(b"Subject: big\r\n" + rest).hexdigest() == digest
    assert b"dkim=none" in top


def test_slow_but_active_data_survives_the_command_timeout(srv):
    c = RawSMTP(srv.port("smtp.port"))
    c.cmd("EHLO client.example.net")
    c.cmd("MAIL FROM:<carol@sender.example>")
    c.cmd("RCPT TO:<alice@example.org>")
    assert c.cmd("DATA").startswith("354")
    c.send(b"Subject: slow\r\n\r\n")
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < COMMAND_TIMEOUT + 1.5:  # longer than the whole-command timeout
        c.send(b"line %d\r\n" % n)
        n += 1
        time.sleep(0.25)
    c.send(b".\r\n")
    assert c.reply().startswith("250 2.0.0")
    (raw,) = messages(srv, "alice@example.org")
    assert raw.endswith(b"line %d\r\n" % (n - 1))


def test_silent_client_in_data_is_cut_off_after_the_idle_timeout(srv):
    c = RawSMTP(srv.port("smtp.port"))
    c.cmd("EHLO client.example.net")
    c.cmd("MAIL FROM:<carol@sender.example>")
    c.cmd("RCPT TO:<alice@example.org>")
    c.cmd("DATA")
    c.send(b"Subject: stalled\r\n\r\npart")
    started = time.monotonic()
    c.sock.settimeout(COMMAND_TIMEOUT + 10)
    reply = c.reply()
    waited = time.monotonic() - started
    assert reply.startswith("421 4.4.2"), reply
    assert waited >= DATA_IDLE_TIMEOUT - 0.2
    assert c.closed()
    assert messages(srv, "alice@example.org") == []
    # the cut session removes its spool file as it unwinds
    assert wait_for(lambda: list((srv.data_dir / "spool" / "smtp-in").iterdir()) == [], timeout=5)


def test_sigterm_lets_a_transfer_in_progress_finish(make_server, dns_server):
    from support.smtp import start_smtp_server

    srv = start_smtp_server(make_server, dns_server, name="drain")
    c = RawSMTP(srv.port("smtp.port"))
    idle = RawSMTP(srv.port("smtp.port"))
    idle.cmd("EHLO idle.example.net")
    c.cmd("EHLO client.example.net")
    c.cmd("MAIL FROM:<carol@sender.example>")
    c.cmd("RCPT TO:<alice@example.org>")
    c.cmd("DATA")
    c.send(b"Subject: during shutdown\r\n\r\nfirst half\r\n")
    srv.proc.send_signal(15)
    assert idle.reply().startswith("421 4.3.2")  # idle sessions are told to come back later
    time.sleep(0.3)
    c.send(b"second half\r\n.\r\n")
    assert c.reply().startswith("250 2.0.0")
    assert srv.proc.wait(20) == 0
    (raw,) = messages(srv, "alice@example.org")
    assert raw.endswith(b"first half\r\nsecond half\r\n")
    with pytest.raises((ConnectionError, OSError, smtplib.SMTPException)):
        smtp25(srv)
    assert not os.path.exists(srv.data_dir / "spool" / "smtp-in") or not list(
        (srv.data_dir / "spool" / "smtp-in").iterdir()
    )


def test_command_timeout_moves_with_each_command_and_cuts_an_idle_session(srv):
    c = RawSMTP(srv.port("smtp.port"))
    c.cmd("EHLO client.example.net")
    started = time.monotonic()
    while True:
        assert c.cmd("NOOP").startswith("250"), "an active session was cut off"
        last = time.monotonic()  # the server has read the command by now
        if last - started > COMMAND_TIMEOUT + 1.5:  # active for longer than one timeout
            break
        time.sleep(COMMAND_TIMEOUT / 4)
    # then silence: the session is closed one command timeout after the last command
    c.sock.settimeout(COMMAND_TIMEOUT + 10)
    reply = c.reply()
    waited = time.monotonic() - last
    assert reply.startswith("421 4.4.2"), reply
    assert COMMAND_TIMEOUT - 0.2 <= waited
    assert c.closed()
