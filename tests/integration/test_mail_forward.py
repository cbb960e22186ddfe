# ruff: noqa: F811  (pytest fixtures imported from support.peermta)
"""Issue 10: forwards. Mail to a user (from outside, or from a user of the box) with a forward outside reaches the other server through the
outbound queue with the envelope sender rewritten by SRS (``SRS0=HHHH=TT=domain=local@<the
user's domain>``: SPF checks this box's domain), a bounce to that address comes back and is sent
on to the original sender while a forged or expired one is refused, a bounce keeps its empty
sender, a local forward is one hop, and "keep a copy" decides whether the mailbox keeps one — a
real ``gk serve``, smtplib in, a peer MTA out, DNS on loopback."""

from __future__ import annotations

import re
import smtplib
import time

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
    assert re.fullmatch(r"SRS0=[A-Za-z0-9+/]{4}=[A-Z2-7]{2}=remote\.example=carol@test\.example", meta["mail_from"])
    assert meta["rcpt_tos"] == ["al@elsewhere.example"]
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
    # bob's own domain is the box's: his address is kept (SPF passes; his bounces come home)
    assert inside and inside[0]["mail_from"] == BOB and inside[0]["rcpt_tos"] == ["al@elsewhere.example"]
    assert any(b"Subject: from bob" in m for m in delivered(srv, ALICE))
    srs_bounces(srv, peer, dns_server)


def rcpt(srv, mail_from: str, address: str) -> tuple[int, bytes]:  # type: ignore[no-untyped-def]
    with smtplib.SMTP("127.0.0.1", srv.port("smtp.port"), local_hostname="mx.elsewhere.example", timeout=30) as s:
        s.ehlo()
        s.mail(mail_from)
        return s.rcpt(address)


def srs_bounces(srv, peer, dns_server) -> None:  # type: ignore[no-untyped-def]
    """A forward of mail from dave@elsewhere.example bounces at its destination: the bounce, sent
    to the SRS sender, is taken and queued back to dave (the peer MTA is elsewhere.example's
    MX); a forged hash, a too short one, an expired stamp or a malformed address are refused."""
    send(srv, "dave@elsewhere.example", ALICE, "from dave")
    got = peer.wait_for(4, timeout=90)
    srs_sender = next(m for m, b in got if b"Subject: from dave" in b)["mail_from"]
    assert srs_sender.startswith("SRS0=") and srs_sender.endswith("=elsewhere.example=dave@test.example")
    bounce = (
        f"From: MAILER-DAEMON@mx.elsewhere.example\r\nTo: <{srs_sender}>\r\nSubject: Undelivered: from dave\r\n"
        "Content-Type: text/plain\r\n\r\nal@elsewhere.example: mailbox unavailable\r\n"
    )
    with smtplib.SMTP("127.0.0.1", srv.port("smtp.port"), local_hostname="mx.elsewhere.example", timeout=30) as s:
        assert s.sendmail("", [srs_sender.lower()], bounce) == {}  # hashes compare case-insensitively
    got = peer.wait_for(5, timeout=90)
    back = [m for m, b in got if b"Subject: Undelivered: from dave" in b]
    assert back and back[0]["rcpt_tos"] == ["dave@elsewhere.example"] and back[0]["mail_from"] in ("", "<>")
    # forged: another hash, a hash cut short, the same hash on another original sender
    head, h, rest = srs_sender.partition("=")[0], srs_sender.split("=")[1], srs_sender.split("=", 2)[2]
    other = "A" if h[0].lower() != "a" else "B"  # hashes compare case-insensitively: "a" would pass as "A"
    for forged in (f"{head}={other}{h[1:]}={rest}", f"{head}={h[:1]}={rest}", srs_sender.replace("dave@", "eve@")):
        code, text = rcpt(srv, "", forged)
        assert code == 550, (forged, code, text)
    # expired: made with the box's own key 30 days ago
    from gk.mail.smtp import srs

    key = (srv.data_dir / "secrets" / "srs").read_bytes()
    old = srs.forward(key, "dave@elsewhere.example", "test.example", now=time.time() - 30 * 86400)
    code, text = rcpt(srv, "", old)
    assert code == 550 and b"expired" in text
    fresh = srs.forward(key, "dave@elsewhere.example", "test.example", now=time.time() - 5 * 86400)
    assert rcpt(srv, "", fresh)[0] == 250  # still within its 21 days
    assert rcpt(srv, "", "SRS0=nonsense@test.example")[0] == 550
    assert len(peer.messages()) == 5  # nothing more went out
