"""Issue 10: per-user quotas, set on the admin's Users page (``users.quota_mb``), enforced where
mail enters a mailbox — SMTP RCPT ``452 4.2.2`` once full, SMTP DATA ``552 5.2.2`` when the message
does not fit, IMAP APPEND ``NO [OVERQUOTA]`` (RFC 9208) — with smtplib and imaplib on a real
``gk serve``; the quota is changed while it runs (read from the account store each time)."""

from __future__ import annotations

import smtplib
import socket

from support.imap import imaps, tls_client_context
from support.smtp import PASSWORD, smtp25, start_smtp_server

ALICE, BOB = "alice@example.org", "bob@example.org"


def message(size: int) -> bytes:
    head = f"From: <carol@remote.example>\r\nTo: <{ALICE}>\r\nSubject: big\r\n\r\n".encode()
    line = b"x" * 998 + b"\r\n"
    return head + line * (size // len(line))


def set_quota(srv, address: str, mb: int) -> None:  # type: ignore[no-untyped-def]
    from gk.config import load
    from gk.context import open_accounts

    store = open_accounts(load(srv.data_dir), srv.data_dir)
    try:
        store.set_quota(address, mb)
    finally:
        store.db.close()


def test_quota_refuses_at_rcpt_data_and_append(make_server, dns_server):  # type: ignore[no-untyped-def]
    srv = start_smtp_server(make_server, dns_server)
    set_quota(srv, ALICE, 1)
    with smtp25(srv) as s:
        s.sendmail("carol@remote.example", [ALICE], message(600_000))  # fits: 0.6 of 1 MB
        # 0.6 + 0.6 MB does not fit: refused for good after the data, as RFC 3463 5.2.2 says
        s.mail("carol@remote.example")
        assert s.rcpt(ALICE)[0] == 250
        code, text = s.data(message(600_000))
        assert code == 552 and b"5.2.2" in text
        s.rset()
        # bob has no quota: the same message is taken
        assert s.sendmail("carol@remote.example", [BOB], message(600_000)) == {}
    m = imaps(srv)
    typ, data = m.append("INBOX", None, None, message(600_000))
    assert typ == "NO" and b"[OVERQUOTA]" in data[0]
    assert m.append("INBOX", None, None, message(100_000))[0] == "OK"  # what fits is still taken
    m.logout()
    imap_quota(srv)
    # over the quota (lowered while serving): RCPT gets the transient 452 4.2.2
    set_quota(srv, BOB, 0)
    set_quota(srv, ALICE, 0)
    with smtp25(srv) as s:
        s.sendmail("carol@remote.example", [ALICE], message(600_000))  # 1.3 MB now
    set_quota(srv, ALICE, 1)
    with smtp25(srv) as s:
        s.ehlo()
        s.mail("carol@remote.example")
        code, text = s.rcpt(ALICE)
        assert code == 452 and b"4.2.2" in text
        assert s.rcpt(BOB)[0] == 250  # the others of the same message are not held back
        s.rset()
    # submission to a full local mailbox: the same answer
    sub = smtplib.SMTP("127.0.0.1", srv.port("smtp.submission_port"), timeout=30)
    sub.starttls(context=tls_client_context())
    sub.login(BOB, PASSWORD)
    sub.mail(BOB)
    code, text = sub.rcpt(ALICE)
    assert code == 452 and b"4.2.2" in text
    sub.quit()


def used_kib(m) -> int:  # type: ignore[no-untyped-def]
    """What every folder holds (STATUS SIZE, RFC 8438), in KiB rounded up."""
    total = 0
    for line in m.list()[1]:
        name = line.rsplit(b' "/" ', 1)[-1].decode()
        typ, data = m.status(name, "(SIZE)")
        total += int(data[0].rsplit(b"SIZE ", 1)[1].rstrip(b")"))
    return -(-total // 1024)


def raw_reply(f, tag: bytes) -> bytes:  # type: ignore[no-untyped-def]
    """The server's lines up to ``tag``'s reply or a continuation request; that last line."""
    while True:
        line = f.readline()
        assert line, "connection closed"
        if line.startswith((tag + b" ", b"+")):
            return line


def imap_quota(srv) -> None:  # type: ignore[no-untyped-def]
    """RFC 9208 over the same figures: CAPABILITY, GETQUOTAROOT/GETQUOTA (imaplib), SETQUOTA
    refused to a user and allowed to an administrator, and an APPEND too big for what remains
    refused before ``+`` (synchronizing literal) or after its bytes (LITERAL+), on a raw socket."""
    m = imaps(srv)
    caps = m.capability()[1][0].split()
    assert b"QUOTA" in caps and b"QUOTA=RES-STORAGE" in caps and b"QUOTASET" not in caps
    used = used_kib(m)
    assert used > 600  # the two messages taken above
    typ, data = m.getquotaroot("INBOX")
    assert typ == "OK" and data == [[b'"INBOX" ""'], [f'"" (STORAGE {used} 1024)'.encode()]], data
    assert m.getquota('""') == ("OK", [f'"" (STORAGE {used} 1024)'.encode()])
    # STATUS DELETED-STORAGE: what an EXPUNGE would free, in the same KiB
    m.select("INBOX")
    typ, data = m.search(None, "ALL")
    first = data[0].split()[0]
    m.store(first, "+FLAGS", "\\Deleted")
    size = int(m.fetch(first, "(RFC822.SIZE)")[1][0].rsplit(b"RFC822.SIZE ", 1)[1].rstrip(b")"))
    status = m.status("INBOX", "(DELETED-STORAGE SIZE)")[1][0]
    assert f"DELETED-STORAGE {-(-size // 1024)} ".encode() in status, status
    m.store(first, "-FLAGS", "\\Deleted")
    assert b"DELETED-STORAGE 0 " in m.status("INBOX", "(DELETED-STORAGE SIZE)")[1][0]
    # COPY: the 600 KB message a second time does not fit (nothing copied), MOVE adds nothing
    m.create("Archive")
    typ, data = m.copy(first, "Archive")
    assert typ == "NO" and b"[OVERQUOTA]" in data[0], data
    assert m.status("Archive", "(MESSAGES)")[1][0].endswith(b"(MESSAGES 0)")
    assert m._simple_command("MOVE", first, "Archive")[0] == "OK"
    assert used_kib(m) == used
    m.close()
    typ, data = m.setquota('""', "(STORAGE 999999)")
    assert typ == "NO" and b"[NOPERM]" in data[0]
    typ, data = m.getquota(BOB)  # another user's root: not alice's to see
    assert typ == "NO"
    # bob has no quota: no quota root at all
    b = imaps(srv, BOB)
    assert b.getquotaroot("INBOX") == ("OK", [[b'"INBOX"'], [None]])  # imaplib's way of saying: no QUOTA line
    b.logout()
    # an administrator sets and reads another user's quota (KiB, stored as whole MB)
    srv.add_user("admin@example.org", PASSWORD, admin=True)
    a = imaps(srv, "admin@example.org")
    assert b"QUOTASET" in a.capability()[1][0].split()  # SETQUOTA is carried out for an administrator
    typ, data = a.setquota(BOB, "(STORAGE 1500)")
    assert typ == "OK" and data[0].endswith(b" 2048)"), data
    assert a.getquota(BOB)[1][0].startswith(f'"{BOB}" (STORAGE '.encode())
    typ, data = a.setquota(BOB, "(MESSAGE 10)")
    assert typ == "NO" and b"[LIMIT]" in data[0]
    assert a.setquota(BOB, "()")[0] == "OK"  # no limit again
    a.logout()
    # raw socket: 500 KB does not fit in the ~300 KB left
    m.logout()
    sock = socket.create_connection(("127.0.0.1", srv.port("imap.tls_port")), timeout=30)
    sock = tls_client_context().wrap_socket(sock)
    f = sock.makefile("rb")
    raw_reply(f, b"*")
    sock.sendall(f"l LOGIN {ALICE} {{{len(PASSWORD)}+}}\r\n{PASSWORD}\r\n".encode())
    assert b"l OK" in raw_reply(f, b"l")
    sock.sendall(b"a1 APPEND INBOX {500000}\r\n")
    reply = raw_reply(f, b"a1")
    assert reply.startswith(b"a1 NO [OVERQUOTA]"), reply  # no "+": the client need not send it
    body = message(500_000)
    sock.sendall(f"a2 APPEND INBOX (\\Seen) {{{len(body)}+}}\r\n".encode() + body + b"\r\n")
    reply = raw_reply(f, b"a2")
    assert reply.startswith(b"a2 NO [OVERQUOTA]"), reply
    sock.sendall(b"a3 NOOP\r\n")  # still in step: the discarded bytes were not read as commands
    assert raw_reply(f, b"a3").startswith(b"a3 OK")
    small = message(10_000)
    sock.sendall(f"a4 APPEND INBOX {{{len(small)}}}\r\n".encode())
    assert raw_reply(f, b"a4").startswith(b"+")
    sock.sendall(small + b"\r\n")
    assert raw_reply(f, b"a4").startswith(b"a4 OK [APPENDUID")
    sock.close()
