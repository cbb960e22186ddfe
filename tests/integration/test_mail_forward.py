# ruff: noqa: F811  (pytest fixtures imported from support.peermta)
"""Issue 10: forwards. Mail to a user (from outside, or from a user of the box) with a forward outside reaches the other server through the
outbound queue with the envelope sender rewritten to the user's own address (SPF checks this
box's domain), a bounce keeps its empty sender, a local forward is one hop, and "keep a copy"
decides whether the mailbox keeps one — a real ``gk serve``, smtplib in, a peer MTA out, DNS on
loopback."""

from __future__ import annotations

import smtplib

from support.outbound import ALICE, start_gk
from support.peermta import peers  # noqa: F401

BOB = "bob@test.example"


def delivered(srv, user: str) -> list[bytes]:  # type: ignore[no-untyped-def]
    new = srv.data_dir / "mail" / user / "Maildir" / "new"
    return [p.read_bytes() for p in sorted(new.glob("*"))] if new.is_dir() else []


def send(srv, mail_from: str, rcpt: str, subject: str) -> None:  # type: ignore[no-untyped-def]
    with smtplib.SMTP("127.0.0.1", srv.port("smtp.port"), local_hostname="mx.remote.example", timeout=30) as s:
        body = f"From: <carol@remote.example>\r\nTo: <{rcpt}>\r\nSubject: {subject}\r\n\r\nhello\r\n"
        s.sendmail(mail_from, [rcpt], body)


def test_forwards_outside_and_inside(make_server, dns_server, peers):  # type: ignore[no-untyped-def]
    peer = peers("127.0.0.2")
    dns_server.add("elsewhere.example", "MX", "10 mx.elsewhere.example.").add("mx.elsewhere.example", "A", "127.0.0.2")
    srv = start_gk(make_server, dns_server, peers.port)
    from gk.config import load
    from gk.context import open_accounts

    store = open_accounts(load(srv.data_dir), srv.data_dir)
    try:
        store.add_user(BOB, "lamp orbit seventh gravel")
        store.set_forward(ALICE, "al@elsewhere.example", keep=True)
        store.set_forward(BOB, ALICE, keep=False)
    finally:
        store.db.close()
    send(srv, "carol@remote.example", ALICE, "to alice")
    (meta, body), *_ = peer.wait_for(1, timeout=90)
    assert meta["mail_from"] == ALICE and meta["rcpt_tos"] == ["al@elsewhere.example"]
    assert b"Subject: to alice" in body and b"DKIM-Signature:" in body
    assert any(b"Subject: to alice" in m for m in delivered(srv, ALICE))  # the copy kept
    # a local forward: one hop (alice's own forward is not followed again), bob keeps nothing
    send(srv, "carol@remote.example", BOB, "to bob")
    assert any(b"Subject: to bob" in m for m in delivered(srv, ALICE))
    assert delivered(srv, BOB) == []
    # a bounce keeps its empty sender: never bounced back
    send(srv, "", ALICE, "a bounce")
    got = peer.wait_for(2, timeout=90)
    bounce = [m for m, b in got if b"Subject: a bounce" in b]
    assert bounce and bounce[0]["mail_from"] in ("", "<>")  # the null reverse-path
    assert len(got) == 2  # the mail to bob went nowhere outside
    # mail from a user of the box (submission, as the webmail's) follows the recipient's forward too
    from support.smtp import tls_client_context

    with smtplib.SMTP("127.0.0.1", srv.port("smtp.submission_port"), timeout=30) as s:
        s.starttls(context=tls_client_context())
        s.login(BOB, "lamp orbit seventh gravel")
        s.sendmail(BOB, [ALICE], f"From: <{BOB}>\r\nTo: <{ALICE}>\r\nSubject: from bob\r\n\r\nhi\r\n")
    got = peer.wait_for(3, timeout=90)
    inside = [m for m, b in got if b"Subject: from bob" in b]
    assert inside and inside[0]["mail_from"] == ALICE and inside[0]["rcpt_tos"] == ["al@elsewhere.example"]
    assert any(b"Subject: from bob" in m for m in delivered(srv, ALICE))
