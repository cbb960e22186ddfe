"""Issue 10: per-user quotas, set on the admin's Users page (``users.quota_mb``), enforced where
mail enters a mailbox — SMTP RCPT ``452 4.2.2`` once full, SMTP DATA ``552 5.2.2`` when the message
does not fit, IMAP APPEND ``NO [OVERQUOTA]`` (RFC 9208) — with smtplib and imaplib on a real
``gk serve``; the quota is changed while it runs (read from the account store each time)."""

from __future__ import annotations

import smtplib

from support.imap import imaps
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
    from support.smtp import tls_client_context

    sub.starttls(context=tls_client_context())
    sub.login(BOB, PASSWORD)
    sub.mail(BOB)
    code, text = sub.rcpt(ALICE)
    assert code == 452 and b"4.2.2" in text
    sub.quit()
