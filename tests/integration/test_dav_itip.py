"""Invitations by mail (iMIP) between local users of a real ``gk serve``: an event alice organizes,
saved with the python ``caldav`` library, mails an iTIP REQUEST to bob (his INBOX); bob's REPLY
sent through SMTP submission updates his participation status in alice's calendar, and only his;
deleting the event mails a CANCEL; an attendee the client schedules itself gets nothing.
"""

from __future__ import annotations

import base64
import contextlib
import email
import email.policy
import http.client
import re
import smtplib
import ssl
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import caldav
import pytest
from support.gkserver import GKServer
from support.imap import tls_client_context

from gk import claim

ALICE, BOB, CAROL = "alice@itip.example", "bob@itip.example", "carol@itip.example"
ROBERT = "robert@itip.example"  # an alias of bob's
ALLY = "ally@itip.example"  # an alias of alice's
PASSWORD = "itip password 1"
pytestmark = pytest.mark.filterwarnings("ignore:Unverified HTTPS request")

EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//GK//itip test//EN\r\nBEGIN:VEVENT\r\nUID:meet-1\r\n"
    "DTSTAMP:20260101T000000Z\r\nDTSTART:20260610T090000Z\r\nDTEND:20260610T100000Z\r\nSUMMARY:{summary}\r\n"
    "SEQUENCE:{seq}\r\nORGANIZER;CN=Alice:mailto:{alice}\r\n"
    "ATTENDEE;CN=Alice;PARTSTAT=ACCEPTED:mailto:{alice}\r\n"
    "ATTENDEE;CN=Bob;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{bob}\r\n"
    "ATTENDEE;CN=Carol;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{carol}\r\n"
    "ATTENDEE;SCHEDULE-AGENT=CLIENT;PARTSTAT=NEEDS-ACTION:mailto:dave@elsewhere.example\r\n"
    "BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:soon\r\nTRIGGER:-PT10M\r\nEND:VALARM\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)
REPLY = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//GK//itip test//EN\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\n"
    "UID:meet-1\r\nDTSTAMP:20260102T000000Z\r\nSEQUENCE:0\r\nORGANIZER:mailto:{alice}\r\n"
    "ATTENDEE;PARTSTAT=ACCEPTED:mailto:{bob}\r\nATTENDEE;PARTSTAT=DECLINED:mailto:{carol}\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = GKServer(tmp_path_factory.mktemp("itip") / "gk", {})
    srv.write_config()
    for address in (ALICE, BOB, CAROL):
        srv.add_user(address, PASSWORD)
    add_alias(srv, ROBERT, BOB)
    add_alias(srv, ALLY, ALICE)
    claim.claim(srv.data_dir, "test")
    claim.complete(srv.data_dir)
    srv.start()
    yield srv
    srv.stop()


@contextlib.contextmanager
def accounts_of(srv: GKServer) -> Iterator[Any]:
    """The server's account store, opened in this process (as ``GKServer.add_user`` does)."""
    from gk.config import load
    from gk.context import open_accounts

    store = open_accounts(load(srv.data_dir), srv.data_dir)
    try:
        yield store
    finally:
        store.db.close()


def add_alias(srv: GKServer, source: str, target: str) -> None:
    """What ``gk alias add`` does."""
    with accounts_of(srv) as store:
        store.add_alias(source, target)


def calendar(srv: GKServer, user: str) -> caldav.Calendar:
    client = caldav.DAVClient(
        url=f"https://127.0.0.1:{srv.port('http.https_port')}/dav/",
        username=user,
        password=PASSWORD,
        ssl_verify_cert=False,
        enable_rfc6764=False,
    )
    return client.principal().calendar(name="Calendar")


def inbox(srv: GKServer, user: str) -> list[email.message.EmailMessage]:
    root = srv.data_dir / "mail" / user / "Maildir"
    for _ in range(20):  # the server moves files from new/ to cur/ as it indexes them
        try:
            files = sorted((p for sub in ("new", "cur") for p in (root / sub).glob("*")), key=lambda p: p.name)
            raw = [p.read_bytes() for p in files]
        except FileNotFoundError:
            time.sleep(0.2)
            continue
        return [email.message_from_bytes(r, policy=email.policy.default) for r in raw]  # type: ignore[misc]
    raise AssertionError(f"{root} kept changing")


def wait_for(what, deadline: float = 90.0):  # type: ignore[no-untyped-def]
    end = time.monotonic() + deadline
    while True:
        found = what()
        if found or time.monotonic() > end:
            return found
        time.sleep(0.5)


def itip_parts(msgs: list[email.message.EmailMessage], method: str) -> list[str]:
    out = []
    for msg in msgs:
        for part in msg.walk():
            if part.get_content_type() == "text/calendar" and part.get_param("method") == method:
                out.append(part.get_content())
    return out


def test_request_reply_and_cancel(server: GKServer) -> None:
    cal = calendar(server, ALICE)
    cal.save_event(EVENT.format(summary="Planning", seq=0, alice=ALICE, bob=BOB, carol=CAROL))
    requests = wait_for(lambda: itip_parts(inbox(server, BOB), "REQUEST"))
    assert len(requests) == 1, requests
    (request,) = requests
    assert "METHOD:REQUEST" in request and "UID:meet-1" in request and "VALARM" not in request
    (msg,) = inbox(server, BOB)
    assert msg["From"] == ALICE and msg["Subject"] == "Invitation: Planning"
    assert len(wait_for(lambda: itip_parts(inbox(server, CAROL), "REQUEST"))) == 1
    assert itip_parts(inbox(server, ALICE), "REQUEST") == []  # the organizer is not invited to her own event
    # an edit of her own alarm, nothing an attendee agreed to: no new invitation
    ev = cal.event_by_uid("meet-1")
    ev.data = ev.data.replace("TRIGGER:-PT10M", "TRIGGER:-PT20M")
    ev.save(increase_seqno=False)  # (the caldav library bumps SEQUENCE by default: a new REQUEST)
    # bob answers by mail: accepted; his mail also claims carol declined (he cannot answer for her)
    reply = EmailMessage()
    reply["From"], reply["To"], reply["Subject"] = BOB, ALICE, "Accepted: Planning"
    reply.set_content("Bob accepted.")
    reply.add_alternative(
        REPLY.format(alice=ALICE, bob=BOB, carol=CAROL), subtype="calendar", params={"method": "REPLY"}
    )
    with smtplib.SMTP_SSL(
        "127.0.0.1", server.port("smtp.submissions_port"), context=tls_client_context(), timeout=30
    ) as s:
        s.login(BOB, PASSWORD)
        s.send_message(reply)

    def bob_accepted() -> str:
        data = cal.event_by_uid("meet-1").data
        return data if "PARTSTAT=ACCEPTED" in attendee_line(data, BOB) else ""

    data = wait_for(bob_accepted)
    unfolded = data.replace("\r\n ", "")
    assert "PARTSTAT=ACCEPTED" in attendee_line(unfolded, BOB), unfolded
    assert "PARTSTAT=NEEDS-ACTION" in attendee_line(unfolded, CAROL), unfolded
    time.sleep(2)
    assert len(itip_parts(inbox(server, BOB), "REQUEST")) == 1  # neither the alarm edit nor the reply re-invited
    # a changed time is sent again; a deletion cancels
    ev = cal.event_by_uid("meet-1")
    ev.data = ev.data.replace("DTSTART:20260610T090000Z", "DTSTART:20260611T090000Z").replace(
        "DTEND:20260610T100000Z", "DTEND:20260611T100000Z"
    )
    ev.save()
    assert len(wait_for(lambda: len(itip_parts(inbox(server, BOB), "REQUEST")) == 2 and [1])) == 1
    cal.event_by_uid("meet-1").delete()
    cancels = wait_for(lambda: itip_parts(inbox(server, BOB), "CANCEL"))
    assert len(cancels) == 1 and "STATUS:CANCELLED" in cancels[0] and "METHOD:CANCEL" in cancels[0]
    assert '" 500 ' not in server.log() and "iTIP" in server.log()
    assert "dave@elsewhere.example" not in server.log().split("iTIP", 1)[1]  # SCHEDULE-AGENT=CLIENT: not ours


def test_reply_for_an_unknown_event_changes_nothing(server: GKServer) -> None:
    reply = EmailMessage()
    reply["From"], reply["To"], reply["Subject"] = BOB, CAROL, "Accepted"
    reply.set_content("x")
    reply.add_alternative(
        REPLY.format(alice=CAROL, bob=BOB, carol=CAROL).replace("meet-1", "nope"),
        subtype="calendar",
        params={"method": "REPLY"},
    )
    with smtplib.SMTP_SSL(
        "127.0.0.1", server.port("smtp.submissions_port"), context=tls_client_context(), timeout=30
    ) as s:
        s.login(BOB, PASSWORD)
        s.send_message(reply)
    assert wait_for(lambda: inbox(server, CAROL) and [m for m in inbox(server, CAROL) if m["Subject"] == "Accepted"])
    time.sleep(1)
    assert "iTIP reply" not in server.log() and "Traceback" not in server.log()
    assert Path(server.data_dir / "dav.sqlite3").exists()


# -- invitations answered from the webmail reader --------------------------------------------------

ORGANIZER = "org@remote.example"
INVITE = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Remote//EN\r\nMETHOD:{method}\r\nBEGIN:VEVENT\r\n"
    "UID:remote-1@remote.example\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{start}\r\nDTEND:{end}\r\n"
    "SEQUENCE:{seq}\r\nSUMMARY:Board meeting\r\nLOCATION:Room 4\r\nORGANIZER;CN=Olga:mailto:{org}\r\n"
    "ATTENDEE;CN=Olga;PARTSTAT=ACCEPTED:mailto:{org}\r\n"
    "ATTENDEE;CN=Bob;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{bob}\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)


def deliver_invitation(srv: GKServer, method: str, seq: int, start: str, end: str) -> str:
    """An invitation from a remote organizer, delivered to bob over SMTP port 25; its subject."""
    subject = f"{method.title()} {seq}: Board meeting"
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = ORGANIZER, BOB, subject
    msg.set_content("Olga invites you.")
    ical = INVITE.format(method=method, seq=seq, start=start, end=end, org=ORGANIZER, bob=BOB)
    msg.add_alternative(ical, subtype="calendar", params={"method": method})
    with smtplib.SMTP("127.0.0.1", srv.port("smtp.port"), timeout=30) as s:
        s.ehlo("mx.remote.example")
        s.send_message(msg, from_addr=ORGANIZER, to_addrs=[BOB])
    return subject


def web_session(srv: GKServer, user: str):  # type: ignore[no-untyped-def]
    from test_web_http import Client

    c = Client(srv, https=True)
    c.login(user, PASSWORD)
    c.get("/mail")
    return c


def read_url(c, subject: str) -> str:  # type: ignore[no-untyped-def]
    """The reader URL of the INBOX message with ``subject`` (waits for its delivery)."""
    import re

    def find() -> str:
        _, page = c.get("/mail?folder=INBOX")
        for uid in re.findall(r"/mail/read\?folder=INBOX&amp;uid=(\d+)", page):
            _, text = c.get(f"/mail/read?folder=INBOX&uid={uid}")
            if subject in text:
                return f"/mail/read?folder=INBOX&uid={uid}"
        return ""

    found = wait_for(find)
    assert found, subject
    return found


def answer(c, url: str, choice: str, csrf: bool = True, known: bool = False):  # type: ignore[no-untyped-def]
    uid = url.rpartition("=")[2]
    fields = {"folder": "INBOX", "uid": uid, "answer": choice} | ({"known_sender": "yes"} if known else {})
    return c.post("/mail/invitation", fields, csrf=csrf)


def local_path(location: str) -> str:
    import urllib.parse

    parts = urllib.parse.urlsplit(location)
    return parts.path + ("?" + parts.query if parts.query else "")


def queued_to(srv: GKServer, rcpt: str) -> list[str]:
    """Subjects of bob's replies the outbound queue took for ``rcpt``: remote.example does not
    resolve here, so the queue bounces each at once and its DSN, quoting the reply's headers,
    lands in bob's INBOX (the queue's rows go with the bounce)."""
    out = []
    for msg in inbox(srv, BOB):
        raw = msg.as_bytes()
        if b"multipart/report" in raw and f"To: {rcpt}".encode() in raw:
            for subject in ("Accepted", "Tentative", "Declined"):
                if f"Subject: {subject}: Board meeting".encode() in raw:
                    out.append(subject)
    return out


def test_invitation_answered_from_webmail(server: GKServer) -> None:
    """An invitation delivered by SMTP shows in bob's reader; Accept puts it in his calendar (seen
    by the caldav client) and queues the REPLY to the remote organizer; an update with a higher
    SEQUENCE moves it; a CANCEL removes it. Carol cannot act on bob's message, and a POST without
    the CSRF token is refused."""
    subject = deliver_invitation(server, "REQUEST", 0, "20260715T080000Z", "20260715T090000Z")
    bob = web_session(server, BOB)
    url = read_url(bob, subject)
    _, page = bob.get(url)
    assert 'id="invitation"' in page and "Board meeting" in page and "Room 4" in page
    assert f"Olga &lt;{ORGANIZER}&gt;" in page and 'value="accept"' in page and 'value="decline"' in page
    # remote.example publishes no SPF, DKIM or DMARC: the reader warns the organizer may be forged
    assert 'id="invitation-unverified"' in page
    # so answering asks "I know this sender" (the box's own check, not only the browser's)
    assert 'name="known_sender"' in page

    resp, _ = answer(bob, url, "accept", csrf=False, known=True)
    assert resp.status == 403
    carol = web_session(server, CAROL)
    resp, _ = answer(carol, url, "accept", known=True)
    assert resp.status == 404  # her own mailbox has no such message, or no invitation in it
    # bob's Accept, Maybe or Decline without "I know this sender": refused, saying why; nothing
    # stored, nothing mailed
    for choice in ("accept", "tentative", "decline"):
        resp, _ = answer(bob, url, choice)
        assert resp.status == 303, resp.status
        assert "invitation_error=unconfirmed" in resp.headers["Location"]
        _, page = bob.get(local_path(resp.headers["Location"]))
        assert 'id="invitation-error"' in page and "could not be verified" in page
        assert 'id="invitation-done"' not in page
    with pytest.raises(caldav.error.NotFoundError):
        calendar(server, BOB).event_by_uid("remote-1@remote.example")
    time.sleep(1)
    assert f"from {BOB} to {ORGANIZER}" not in server.log()  # no iTIP REPLY sent, nor tried
    assert not queued_to(server, ORGANIZER)

    resp, _ = answer(bob, url, "accept", known=True)
    assert resp.status == 303, resp.status
    _, page = bob.get(local_path(resp.headers["Location"]))
    assert 'id="invitation-done"' in page and 'id="invitation-state"' in page
    event = calendar(server, BOB).event_by_uid("remote-1@remote.example")
    data = event.data.replace("\r\n ", "")
    assert "METHOD" not in data and f"PARTSTAT=ACCEPTED:mailto:{BOB}" in data and "20260715T080000Z" in data
    replies = wait_for(lambda: queued_to(server, ORGANIZER))
    assert replies == ["Accepted"], replies
    assert f"iTIP REPLY ACCEPTED from {BOB} to {ORGANIZER}" in server.log()

    # the organizer moves it: SEQUENCE 1, a day later; bob answers maybe, his copy follows
    subject = deliver_invitation(server, "REQUEST", 1, "20260716T080000Z", "20260716T090000Z")
    url = read_url(bob, subject)
    _, page = bob.get(url)
    assert "This is an update of an event in your calendar" in page
    resp, _ = answer(bob, url, "tentative", known=True)
    assert resp.status == 303
    data = calendar(server, BOB).event_by_uid("remote-1@remote.example").data.replace("\r\n ", "")
    assert "20260716T080000Z" in data and f"PARTSTAT=TENTATIVE:mailto:{BOB}" in data
    replies = wait_for(lambda: len(queued_to(server, ORGANIZER)) == 2 and queued_to(server, ORGANIZER))
    assert replies == ["Accepted", "Tentative"], replies

    # cancelled: the reader offers the removal; from a sender the box cannot vouch for (anyone
    # who saw the invitation knows its UID and organizer) it too needs "I know this sender"
    subject = deliver_invitation(server, "CANCEL", 2, "20260716T080000Z", "20260716T090000Z")
    url = read_url(bob, subject)
    _, page = bob.get(url)
    assert 'value="remove"' in page and 'id="invitation-unverified"' in page and 'name="known_sender"' in page
    resp, _ = answer(bob, url, "remove")
    assert resp.status == 303, resp.status
    assert "invitation_error=unconfirmed_cancel" in resp.headers["Location"]
    _, page = bob.get(local_path(resp.headers["Location"]))
    assert 'id="invitation-error"' in page and "Nothing was removed" in page and 'id="invitation-done"' not in page
    assert calendar(server, BOB).event_by_uid("remote-1@remote.example")  # still there
    resp, _ = answer(bob, url, "remove", known=True)
    assert resp.status == 303 and "invitation=removed" in resp.headers["Location"], resp.headers["Location"]
    with pytest.raises(caldav.error.NotFoundError):
        calendar(server, BOB).event_by_uid("remote-1@remote.example")
    assert "Traceback" not in server.log()


def test_a_cancellation_is_removed_in_one_click_only_from_its_verified_organizer(server: GKServer) -> None:
    """Alice (a user of the box: her mail is verified) cancels her meeting: bob's reader removes
    his copy in one click, as before. Carol, verified too but not the organizer, mails bob a
    CANCEL naming alice's other meeting: the reader warns, and the removal is refused without
    "I know this sender" — by the server, whatever the form sent."""
    alice_cal, bob_cal = calendar(server, ALICE), calendar(server, BOB)

    def bob_has(uid: str) -> bool:
        return any(f"UID:{uid}" in e.data for e in bob_cal.events())

    for uid, title in (("cancel-1", "Quarterly close"), ("cancel-2", "Budget review")):
        alice_cal.save_event(
            MEETING.format(uid=uid, alice=ALICE, bob=BOB, bob_partstat="NEEDS-ACTION").replace(
                "SUMMARY:Review", f"SUMMARY:{title}"
            )
        )
        assert bob_has(uid), server.log()[-4000:]
    bob = web_session(server, BOB)

    alice_cal.event_by_uid("cancel-1").delete()
    url = read_url(bob, "Cancelled: Quarterly close")
    _, page = bob.get(url)
    assert 'value="remove"' in page and 'id="invitation-unverified"' not in page
    assert 'name="known_sender"' not in page
    resp, _ = answer(bob, url, "remove")
    assert resp.status == 303 and "invitation=removed" in resp.headers["Location"], resp.headers["Location"]
    assert not bob_has("cancel-1")

    forged = EmailMessage()
    forged["From"], forged["To"], forged["Subject"] = CAROL, BOB, "Cancelled: Budget review"
    forged.set_content("Alice asked me to tell you.")
    cancel = (
        MEETING.format(uid="cancel-2", alice=ALICE, bob=BOB, bob_partstat="NEEDS-ACTION")
        .replace("VERSION:2.0\r\n", "VERSION:2.0\r\nMETHOD:CANCEL\r\n")
        .replace("SEQUENCE:0", "SEQUENCE:1\r\nSTATUS:CANCELLED")
    )
    forged.add_alternative(cancel, subtype="calendar", params={"method": "CANCEL"})
    with smtplib.SMTP_SSL(
        "127.0.0.1", server.port("smtp.submissions_port"), context=tls_client_context(), timeout=30
    ) as s:
        s.login(CAROL, PASSWORD)
        s.send_message(forged)
    url = read_url(bob, "Cancelled: Budget review")
    _, page = bob.get(url)
    assert 'value="remove"' in page and 'id="invitation-unverified"' in page and 'name="known_sender"' in page
    for known in ("", "no"):
        uid = url.rpartition("=")[2]
        fields = {"folder": "INBOX", "uid": uid, "answer": "remove"} | ({"known_sender": known} if known else {})
        resp, _ = bob.post("/mail/invitation", fields)
        assert resp.status == 303 and "invitation_error=unconfirmed_cancel" in resp.headers["Location"]
    assert bob_has("cancel-2") and "STATUS:CANCELLED" not in alice_cal.event_by_uid("cancel-2").data
    # bob knows carol: his choice, ticked
    resp, _ = answer(bob, url, "remove", known=True)
    assert resp.status == 303 and "invitation=removed" in resp.headers["Location"], resp.headers["Location"]
    assert not bob_has("cancel-2")
    assert alice_cal.event_by_uid("cancel-2")  # the organizer's event untouched
    assert '" 500 ' not in server.log() and "Traceback" not in server.log()


# -- RFC 6638: the scheduling inbox, and answers from CalDAV clients --------------------------------

MEETING = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//GK//itip test//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
    "DTSTAMP:20260101T000000Z\r\nDTSTART:20990710T090000Z\r\nDTEND:20990710T100000Z\r\nSUMMARY:Review\r\n"
    "SEQUENCE:0\r\nORGANIZER;CN=Alice:mailto:{alice}\r\nATTENDEE;CN=Alice;PARTSTAT=ACCEPTED:mailto:{alice}\r\n"
    "ATTENDEE;CN=Bob;PARTSTAT={bob_partstat};RSVP=TRUE:mailto:{bob}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def principal(srv: GKServer, user: str):  # type: ignore[no-untyped-def]
    return caldav.DAVClient(
        url=f"https://127.0.0.1:{srv.port('http.https_port')}/dav/",
        username=user,
        password=PASSWORD,
        ssl_verify_cert=False,
        enable_rfc6764=False,
    ).principal()


def bob_line(data: str) -> str:
    """Bob's ATTENDEE line of an event's text, unfolded."""
    for line in data.replace("\r\n ", "").replace("\n ", "").splitlines():
        if line.startswith("ATTENDEE") and line.lower().endswith(f"mailto:{BOB}"):
            return line
    return ""


def test_invitation_lands_in_the_scheduling_inbox_and_the_calendar_and_a_caldav_answer_is_mailed(
    server: GKServer,
) -> None:
    """RFC 6638 implicit scheduling between users of the box: Alice's invitation reaches Bob's
    scheduling inbox as a scheduling object (read and deleted with the caldav library, refused to
    Carol) and his calendar, to answer; Bob accepting from a CalDAV client (his copy PUT with
    PARTSTAT=ACCEPTED, as iOS and Thunderbird do on a calendar-auto-schedule server) mails the
    REPLY that updates Alice's event; Alice cancelling marks Bob's copy cancelled; Bob deleting
    the copy of another invitation declines it."""
    alice_cal = calendar(server, ALICE)
    alice_cal.save_event(MEETING.format(uid="review-1", alice=ALICE, bob=BOB, bob_partstat="NEEDS-ACTION"))
    bob_inbox = principal(server, BOB).schedule_inbox()

    def delivered() -> list:
        return [i for i in bob_inbox.get_items() if "review-1" in (i.load().data or "")]

    found = wait_for(delivered)
    assert len(found) == 1, server.log()[-4000:]
    (item,) = found
    assert "METHOD:REQUEST" in item.data and f"mailto:{ALICE}" in item.data
    carol = principal(server, CAROL)
    for url, method in ((item.url, "GET"), (item.url, "DELETE"), (bob_inbox.url, "PROPFIND")):
        with pytest.raises(caldav.lib.error.AuthorizationError):
            carol.client.request(str(url), method)
    item.delete()
    assert not delivered()
    bob_cal = calendar(server, BOB)

    def bob_copy(uid: str) -> str:
        found = [e.data for e in bob_cal.events() if f"UID:{uid}" in e.data]
        return found[0] if found else ""

    copy = wait_for(lambda: bob_copy("review-1"))
    assert copy, server.log()[-4000:]
    assert "PARTSTAT=NEEDS-ACTION" in bob_line(copy) and "METHOD" not in copy, copy
    # bob accepts from his phone: his copy, accepted
    ev = bob_cal.event_by_uid("review-1")
    for attendee in ev.icalendar_component.get("ATTENDEE"):
        if str(attendee).lower() == f"mailto:{BOB}":
            attendee.params["PARTSTAT"] = "ACCEPTED"
    ev.save(increase_seqno=False)

    def alice_sees(partstat: str, uid: str) -> str:
        data = alice_cal.event_by_uid(uid).data
        return data if f"PARTSTAT={partstat}" in bob_line(data) else ""

    assert wait_for(lambda: alice_sees("ACCEPTED", "review-1")), server.log()[-4000:]
    # the REPLY is mailed after the answer's request returned (its effect above came first)
    assert wait_for(lambda: f"iTIP REPLY ACCEPTED from {BOB} to {ALICE}" in server.log())
    # alice cancels: bob's copy says so (and deleting it then declines nothing)
    alice_cal.event_by_uid("review-1").delete()
    assert wait_for(lambda: "STATUS:CANCELLED" in bob_copy("review-1")), server.log()[-4000:]
    # another invitation, deleted by bob from his calendar: declined
    alice_cal.save_event(MEETING.format(uid="review-2", alice=ALICE, bob=BOB, bob_partstat="NEEDS-ACTION"))
    assert wait_for(lambda: bob_copy("review-2")), server.log()[-4000:]
    bob_cal.event_by_uid("review-2").delete()
    assert wait_for(lambda: alice_sees("DECLINED", "review-2")), server.log()[-4000:]
    # the REPLY is mailed after the answer's request returned (its effect above came first)
    assert wait_for(lambda: f"iTIP REPLY DECLINED from {BOB} to {ALICE}" in server.log())
    assert '" 500 ' not in server.log()


def test_scheduling_between_users_of_the_box_is_done_when_the_request_returns(server: GKServer) -> None:
    """RFC 6638 implicit scheduling between two users of the box is synchronous, as on Radicale,
    sabre/dav, Nextcloud or Apple's server: with no wait at all after each request, Bob's calendar
    and scheduling inbox hold Alice's invitation, Alice's copy holds Bob's answer, and Bob's copy
    is cancelled with her event. The iTIP mail still reaches Bob's INBOX, naming him as already
    scheduled (``X-GK-Scheduled``), and is not applied a second time."""
    uid = "sync-1"
    alice_cal, bob_cal = calendar(server, ALICE), calendar(server, BOB)
    bob_inbox = principal(server, BOB).schedule_inbox()

    def bob_copy() -> str:
        found = [e.data for e in bob_cal.events() if f"UID:{uid}" in e.data]
        return found[0] if found else ""

    def in_inbox(method: str) -> list[str]:
        return [i.data for i in bob_inbox.get_items() if f"UID:{uid}" in (i.load().data or "") and method in i.data]

    alice_cal.save_event(MEETING.format(uid=uid, alice=ALICE, bob=BOB, bob_partstat="NEEDS-ACTION"))
    copy = bob_copy()
    assert "PARTSTAT=NEEDS-ACTION" in bob_line(copy) and "METHOD" not in copy, server.log()[-4000:]
    assert len(in_inbox("METHOD:REQUEST")) == 1
    # bob accepts from his CalDAV client: alice's copy says so when his PUT returns
    ev = bob_cal.event_by_uid(uid)
    for attendee in ev.icalendar_component.get("ATTENDEE"):
        if str(attendee).lower() == f"mailto:{BOB}":
            attendee.params["PARTSTAT"] = "ACCEPTED"
    ev.save(increase_seqno=False)
    assert "PARTSTAT=ACCEPTED" in bob_line(alice_cal.event_by_uid(uid).data)
    # alice deletes her event: bob's copy is cancelled (his answer kept) when her DELETE returns
    alice_cal.event_by_uid(uid).delete()
    assert "STATUS:CANCELLED" in bob_copy() and "PARTSTAT=ACCEPTED" in bob_line(bob_copy())
    assert len(in_inbox("METHOD:CANCEL")) == 1

    # the mails still reach bob's INBOX, marked as scheduled for him; his mail watcher leaves them
    # alone (the REQUEST, read after the CANCEL, would be a second inbox item)
    def mailed(method: str) -> list[email.message.EmailMessage]:
        return [m for m in inbox(server, BOB) if uid in "".join(itip_parts([m], method))]

    def skipped(msg: email.message.EmailMessage) -> bool:
        return f"iTIP mail {msg['Message-ID']} to {BOB} was applied when sent" in server.log()

    for method in ("REQUEST", "CANCEL"):
        mails = wait_for(lambda: mailed(method))  # noqa: B023 - called at once
        assert mails and mails[0]["X-GK-Scheduled"] == BOB, [dict(m) for m in mails]
        assert wait_for(lambda: skipped(mails[0])), server.log()[-4000:]  # noqa: B023 - called at once
    assert len(in_inbox("METHOD:REQUEST")) == 1 and len(in_inbox("METHOD:CANCEL")) == 1
    assert "STATUS:CANCELLED" in bob_copy()
    # only what scheduling allows: an event alice writes as organized by carol, or where bob is
    # scheduled by the client (SCHEDULE-AGENT=CLIENT), puts nothing in bob's calendar or inbox
    forged = MEETING.format(uid="sync-carol", alice=CAROL, bob=BOB, bob_partstat="NEEDS-ACTION")
    client = MEETING.format(uid="sync-client", alice=ALICE, bob=BOB, bob_partstat="NEEDS-ACTION").replace(
        "ATTENDEE;CN=Bob;", "ATTENDEE;CN=Bob;SCHEDULE-AGENT=CLIENT;"
    )
    for text in (forged, client):
        alice_cal.save_event(text)
    bob_uids = " ".join(e.data for e in bob_cal.events()) + " ".join(i.load().data for i in bob_inbox.get_items())
    assert "UID:sync-carol" not in bob_uids and "UID:sync-client" not in bob_uids
    # bob answers another invitation from his webmail reader: alice's copy shows it when that returns
    alice_cal.save_event(
        MEETING.format(uid="sync-2", alice=ALICE, bob=BOB, bob_partstat="NEEDS-ACTION").replace(
            "SUMMARY:Review", "SUMMARY:Answered in webmail"
        )
    )
    bob = web_session(server, BOB)
    url = read_url(bob, "Invitation: Answered in webmail")
    _, page = bob.get(url)
    assert 'id="invitation"' in page and 'id="invitation-unverified"' not in page  # alice's own, submitted
    resp, _ = answer(bob, url, "decline")
    assert resp.status == 303, resp.status
    assert "PARTSTAT=DECLINED" in bob_line(alice_cal.event_by_uid("sync-2").data)
    assert '" 500 ' not in server.log()


def attendee_line(data: str, address: str) -> str:
    """The ATTENDEE line of ``address`` in an event's text, unfolded."""
    for line in data.replace("\r\n ", "").replace("\n ", "").splitlines():
        if line.startswith("ATTENDEE") and line.lower().endswith(f"mailto:{address.lower()}"):
            return line
    return ""


def answer_as(cal: caldav.Calendar, uid: str, address: str, partstat: str) -> None:
    """A CalDAV client's answer: the attendee's copy PUT with their PARTSTAT changed."""
    ev = cal.event_by_uid(uid)
    for attendee in ev.icalendar_component.get("ATTENDEE"):
        if str(attendee).lower() == f"mailto:{address.lower()}":
            attendee.params["PARTSTAT"] = partstat
    ev.save(increase_seqno=False)


def scheduling_items(srv: GKServer, user: str, uid: str, method: str) -> list[str]:
    box = principal(srv, user).schedule_inbox()
    texts = [i.load().data or "" for i in box.get_items()]
    return [t for t in texts if f"UID:{uid}" in t and f"METHOD:{method}" in t]


def test_an_answer_reaches_the_organizers_scheduling_inbox(server: GKServer) -> None:
    """RFC 6638 §3.2.2 and §4: when bob answers alice's invitation (accepts from his CalDAV
    client, or declines by deleting his copy), the iTIP REPLY is in alice's scheduling inbox when
    his request returns, where Apple Calendar and Thunderbird show "Bob accepted"; an answer
    that changes nothing adds no second item."""
    alice_cal, bob_cal = calendar(server, ALICE), calendar(server, BOB)
    alice_cal.save_event(MEETING.format(uid="inbox-reply-1", alice=ALICE, bob=BOB, bob_partstat="NEEDS-ACTION"))
    assert scheduling_items(server, ALICE, "inbox-reply-1", "REPLY") == []
    answer_as(bob_cal, "inbox-reply-1", BOB, "ACCEPTED")
    (reply,) = scheduling_items(server, ALICE, "inbox-reply-1", "REPLY")
    assert "PARTSTAT=ACCEPTED" in attendee_line(reply, BOB) and f"ORGANIZER;CN=Alice:mailto:{ALICE}" in reply
    assert attendee_line(reply, ALICE) == ""  # only the one who answered
    answer_as(bob_cal, "inbox-reply-1", BOB, "ACCEPTED")  # saved again, the same answer
    assert len(scheduling_items(server, ALICE, "inbox-reply-1", "REPLY")) == 1
    # another invitation, deleted by bob from his calendar: declined, in alice's inbox too
    alice_cal.save_event(MEETING.format(uid="inbox-reply-2", alice=ALICE, bob=BOB, bob_partstat="NEEDS-ACTION"))
    bob_cal.event_by_uid("inbox-reply-2").delete()
    (reply,) = scheduling_items(server, ALICE, "inbox-reply-2", "REPLY")
    assert "PARTSTAT=DECLINED" in attendee_line(reply, BOB), reply
    assert scheduling_items(server, BOB, "inbox-reply-2", "REPLY") == []  # the attendee gets none
    assert '" 500 ' not in server.log()


def test_an_alias_of_a_user_is_scheduled_to_that_user(server: GKServer) -> None:
    """RFC 6638 §2.4.1: bob's calendar-user-address-set lists his alias, so his client knows an
    invitation to it as his; alice inviting the alias (or a plus or case variant of bob's address)
    puts the event in bob's calendar and scheduling inbox when her PUT returns; his acceptance
    from a CalDAV client shows on the alias's line of alice's copy and in her inbox; the mail to
    the alias names bob as already scheduled, and his mail watcher leaves it alone."""
    hrefs = [str(h) for h in principal(server, BOB).calendar_user_address_set()]
    assert f"mailto:{BOB}" in hrefs and f"mailto:{ROBERT}" in hrefs, hrefs
    assert hrefs.index(f"mailto:{BOB}") < hrefs.index(f"mailto:{ROBERT}")
    assert f"mailto:{ROBERT}" not in [str(h) for h in principal(server, CAROL).calendar_user_address_set()]
    alice_cal, bob_cal = calendar(server, ALICE), calendar(server, BOB)
    uid = "alias-1"
    alice_cal.save_event(MEETING.format(uid=uid, alice=ALICE, bob=ROBERT, bob_partstat="NEEDS-ACTION"))
    copy = [e.data for e in bob_cal.events() if f"UID:{uid}" in e.data]
    assert copy and "PARTSTAT=NEEDS-ACTION" in attendee_line(copy[0], ROBERT), server.log()[-4000:]
    assert len(scheduling_items(server, BOB, uid, "REQUEST")) == 1
    answer_as(bob_cal, uid, ROBERT, "ACCEPTED")
    assert "PARTSTAT=ACCEPTED" in attendee_line(alice_cal.event_by_uid(uid).data, ROBERT)
    (reply,) = scheduling_items(server, ALICE, uid, "REPLY")
    assert "PARTSTAT=ACCEPTED" in attendee_line(reply, ROBERT)
    # alice moves the meeting: bob's copy follows, his answer kept while the SEQUENCE stays
    ev = alice_cal.event_by_uid(uid)
    ev.data = ev.data.replace("SUMMARY:Review", "SUMMARY:Review moved")
    ev.save(increase_seqno=False)
    copy = bob_cal.event_by_uid(uid).data
    assert "Review moved" in copy and "PARTSTAT=ACCEPTED" in attendee_line(copy, ROBERT), copy
    # a plus-address and a case variant of bob's own are bob too
    for n, address in enumerate(("bob+team@itip.example", "Bob@ITIP.example")):
        alice_cal.save_event(
            MEETING.format(uid=f"alias-{n + 2}", alice=ALICE, bob=address, bob_partstat="NEEDS-ACTION")
        )
        assert bob_cal.event_by_uid(f"alias-{n + 2}"), server.log()[-4000:]

    # the mailed REQUEST reached bob's INBOX through the alias, marked as scheduled for bob
    def mailed() -> list[email.message.EmailMessage]:
        return [m for m in inbox(server, BOB) if uid in "".join(itip_parts([m], "REQUEST"))]

    mails = wait_for(lambda: len(mailed()) == 2 and mailed())  # the invitation and its update
    assert mails and all(m["To"] == ROBERT and m["X-GK-Scheduled"] == BOB for m in mails), [dict(m) for m in mails]
    for msg in mails:
        assert wait_for(lambda: f"iTIP mail {msg['Message-ID']} to {BOB} was applied when sent" in server.log())  # noqa: B023 - called at once
    assert len(scheduling_items(server, BOB, uid, "REQUEST")) == 2  # the invitation and its update, once each
    assert '" 500 ' not in server.log() and "Traceback" not in server.log()


def test_an_invitation_to_an_alias_answered_from_webmail_and_one_organized_as_an_alias(server: GKServer) -> None:
    """Bob declines, from his webmail reader, an invitation alice sent to his alias: her copy's
    alias line says so and the REPLY is in her scheduling inbox when his answer returns. An event
    alice organizes as her own alias (a client offering her calendar-user-address-set) is hers:
    bob gets it at once, and his CalDAV answer updates her copy and reaches her inbox."""
    alice_cal, bob_cal = calendar(server, ALICE), calendar(server, BOB)
    alice_cal.save_event(
        MEETING.format(uid="alias-web", alice=ALICE, bob=ROBERT, bob_partstat="NEEDS-ACTION").replace(
            "SUMMARY:Review", "SUMMARY:Alias answered in webmail"
        )
    )
    bob = web_session(server, BOB)
    resp, _ = answer(bob, read_url(bob, "Invitation: Alias answered in webmail"), "decline")
    assert resp.status == 303, resp.status
    assert "PARTSTAT=DECLINED" in attendee_line(alice_cal.event_by_uid("alias-web").data, ROBERT)
    (reply,) = scheduling_items(server, ALICE, "alias-web", "REPLY")
    assert "PARTSTAT=DECLINED" in attendee_line(reply, ROBERT)
    # organized as alice's alias
    uid = "alias-org"
    organized_as_ally = MEETING.format(uid=uid, alice=ALLY, bob=BOB, bob_partstat="NEEDS-ACTION").replace(
        f"ATTENDEE;CN=Alice;PARTSTAT=ACCEPTED:mailto:{ALLY}", f"ATTENDEE;CN=Alice;PARTSTAT=ACCEPTED:mailto:{ALICE}"
    )  # (her own address on her attendee line)
    alice_cal.save_event(organized_as_ally)
    assert f"ORGANIZER;CN=Alice:mailto:{ALLY}" in bob_cal.event_by_uid(uid).data.replace("\r\n ", "")
    assert len(scheduling_items(server, BOB, uid, "REQUEST")) == 1
    answer_as(bob_cal, uid, BOB, "TENTATIVE")
    assert "PARTSTAT=TENTATIVE" in attendee_line(alice_cal.event_by_uid(uid).data, BOB)
    assert len(scheduling_items(server, ALICE, uid, "REPLY")) == 1
    # the invitation mailed from her alias, marked as scheduled for bob
    mails = wait_for(lambda: [m for m in inbox(server, BOB) if uid in "".join(itip_parts([m], "REQUEST"))])
    assert mails and mails[0]["From"] == ALLY and mails[0]["X-GK-Scheduled"] == BOB, [dict(m) for m in mails]
    assert '" 500 ' not in server.log()


WEEKLY = MEETING.replace("SUMMARY:Review\r\n", "SUMMARY:Weekly\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\n")
OCCURRENCE = (
    "BEGIN:VEVENT\r\nUID:{uid}\r\nRECURRENCE-ID:20990717T090000Z\r\nDTSTAMP:20260101T000000Z\r\n"
    "DTSTART:20990717T090000Z\r\nDTEND:20990717T100000Z\r\nSUMMARY:Weekly\r\nSEQUENCE:0\r\n"
    "ORGANIZER;CN=Alice:mailto:{alice}\r\nATTENDEE;CN=Alice;PARTSTAT=ACCEPTED:mailto:{alice}\r\n"
    "ATTENDEE;CN=Bob;PARTSTAT={partstat}:mailto:{bob}\r\nEND:VEVENT\r\n"
)


def bob_rewrites_his_copy(bob_cal, uid: str, old: str, new: str) -> None:  # type: ignore[no-untyped-def]
    """Bob's client saves his copy of ``uid`` with ``old`` replaced by ``new`` (once)."""
    ev = bob_cal.event_by_uid(uid)
    ev.data = ev.data.replace("\r\n", "\n").replace("\n", "\r\n").replace(old, new, 1)
    ev.save(increase_seqno=False)


def assert_occurrence_answered(server: GKServer, uid: str, series: str, answer: str) -> None:
    """Alice's copy: bob's ``series`` answer kept, his ``answer`` for the 17 July occurrence (an
    override of it); her scheduling inbox: one REPLY, of that occurrence only."""
    data = calendar(server, ALICE).event_by_uid(uid).data.replace("\r\n ", "")
    whole, _, override = data.partition("RECURRENCE-ID")
    assert f"PARTSTAT={series}" in attendee_line(whole, BOB), data
    assert f"PARTSTAT={answer}" in attendee_line(override, BOB) and "20990717T090000Z" in override, data
    (reply,) = scheduling_items(server, ALICE, uid, "REPLY")
    assert reply.count("BEGIN:VEVENT") == 1 and "RECURRENCE-ID:20990717T090000Z" in reply, reply
    assert f"PARTSTAT={answer}" in attendee_line(reply, BOB)


def test_one_occurrence_answered_from_a_caldav_client(server: GKServer) -> None:
    """RFC 6638 §3.2.2 for one occurrence: bob accepts only the second meeting of alice's weekly
    series from his client (an override of it in his copy, as Apple Calendar's and Thunderbird's
    "only this event" write): alice's copy gets that occurrence with bob's answer, the series
    keeping his NEEDS-ACTION, and the REPLY in her scheduling inbox names that occurrence only."""
    uid = "weekly-1"
    alice_cal, bob_cal = calendar(server, ALICE), calendar(server, BOB)
    alice_cal.save_event(WEEKLY.format(uid=uid, alice=ALICE, bob=BOB, bob_partstat="NEEDS-ACTION"))
    occurrence = OCCURRENCE.format(uid=uid, alice=ALICE, bob=BOB, partstat="ACCEPTED")
    bob_rewrites_his_copy(bob_cal, uid, "END:VCALENDAR", occurrence + "END:VCALENDAR")
    assert_occurrence_answered(server, uid, "NEEDS-ACTION", "ACCEPTED")
    assert wait_for(lambda: f"iTIP REPLY ACCEPTED from {BOB} to {ALICE}" in server.log())
    assert '" 500 ' not in server.log()


def test_one_occurrence_deleted_from_a_caldav_client_is_declined(server: GKServer) -> None:
    """Thunderbird's "delete only this occurrence" on an invitation: bob's copy gets an EXDATE.
    Alice's copy gets that occurrence with bob DECLINED (the series keeps his answer), and the
    REPLY in her scheduling inbox names that occurrence only."""
    uid = "weekly-exdate-1"
    alice_cal, bob_cal = calendar(server, ALICE), calendar(server, BOB)
    alice_cal.save_event(WEEKLY.format(uid=uid, alice=ALICE, bob=BOB, bob_partstat="ACCEPTED"))
    bob_rewrites_his_copy(bob_cal, uid, "RRULE:", "EXDATE:20990717T090000Z\r\nRRULE:")
    assert_occurrence_answered(server, uid, "ACCEPTED", "DECLINED")
    assert '" 500 ' not in server.log()


# -- forged senders: mail that names someone it is not from never schedules anything -----------------


def send_on_port_25(srv: GKServer, sender: str, rcpt: str, subject: str, method: str, ical: str) -> None:
    """An iTIP mail from a stranger on port 25 (no AUTH), its From and envelope ``sender``."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, rcpt, subject
    msg.set_content(subject)
    msg.add_alternative(ical, subtype="calendar", params={"method": method})
    with smtplib.SMTP("127.0.0.1", srv.port("smtp.port"), timeout=30) as s:
        s.ehlo("mx.stranger.example")
        s.send_message(msg, from_addr=sender, to_addrs=[rcpt])


def scheduled_uids(srv: GKServer, user: str) -> str:
    """Every UID in ``user``'s calendar and scheduling inbox, as one text."""
    items = principal(srv, user).schedule_inbox().get_items()
    return " ".join(e.data for e in calendar(srv, user).events()) + " ".join(i.load().data for i in items)


def forged_request(uid: str, organizer: str) -> str:
    text = MEETING.format(uid=uid, alice=organizer, bob=BOB, bob_partstat="NEEDS-ACTION")
    return text.replace("VERSION:2.0\r\n", "VERSION:2.0\r\nMETHOD:REQUEST\r\n")


def forged_reply(uid: str, organizer: str, attendee: str) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//x//EN\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260102T000000Z\r\nSEQUENCE:0\r\nORGANIZER:mailto:{organizer}\r\n"
        f"ATTENDEE;PARTSTAT=DECLINED:mailto:{attendee}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def test_a_forged_invitation_or_answer_from_a_user_of_the_box_is_refused(server: GKServer) -> None:
    """A stranger on port 25 writing as alice (a REQUEST to bob) or as bob (a REPLY declining
    alice's event): refused with 550 5.7.1 (itip.example publishes no DMARC record, but it is the
    box's own domain), nothing in bob's calendar or scheduling inbox, alice's event unchanged."""
    alice_cal = calendar(server, ALICE)
    alice_cal.save_event(MEETING.format(uid="spoof-reply-1", alice=ALICE, bob=BOB, bob_partstat="ACCEPTED"))
    for sender, rcpt, method, ical in (
        (ALICE, BOB, "REQUEST", forged_request("spoof-request-1", ALICE)),
        (BOB, ALICE, "REPLY", forged_reply("spoof-reply-1", ALICE, BOB)),
    ):
        with pytest.raises(smtplib.SMTPDataError) as err:
            send_on_port_25(server, sender, rcpt, f"Forged {method}", method, ical)
        assert err.value.smtp_code == 550 and b"5.7.1" in err.value.smtp_error
    assert "spoof-request-1" not in scheduled_uids(server, BOB)
    assert "PARTSTAT=ACCEPTED" in bob_line(alice_cal.event_by_uid("spoof-reply-1").data)
    assert not [m for m in inbox(server, BOB) if m["Subject"] == "Forged REQUEST"]


def test_an_unverified_remote_sender_schedules_nothing(server: GKServer) -> None:
    """From outside, a sender the box cannot vouch for (remote.example publishes no SPF, DKIM or
    DMARC record) gets its mail delivered, but its REQUEST is not placed in bob's scheduling
    inbox and its REPLY does not change the PARTSTAT of an attendee of alice's event."""
    eve = "eve@remote.example"
    alice_cal = calendar(server, ALICE)
    alice_cal.save_event(
        MEETING.format(uid="remote-reply-1", alice=ALICE, bob=BOB, bob_partstat="ACCEPTED").replace(
            "END:VEVENT", f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{eve}\r\nEND:VEVENT"
        )
    )
    send_on_port_25(server, eve, BOB, "Unverified REQUEST", "REQUEST", forged_request("remote-request-1", eve))
    send_on_port_25(server, eve, ALICE, "Unverified REPLY", "REPLY", forged_reply("remote-reply-1", ALICE, eve))
    for line in (
        f"iTIP mail to {BOB} not placed: its sender {eve} is not authenticated",
        f"iTIP REPLY to {ALICE} not applied: its sender {eve} is not authenticated",
    ):
        assert wait_for(lambda: line in server.log()), server.log()[-4000:]  # noqa: B023 - called at once
    assert wait_for(lambda: [m for m in inbox(server, BOB) if m["Subject"] == "Unverified REQUEST"])
    assert "remote-request-1" not in scheduled_uids(server, BOB)
    data = alice_cal.event_by_uid("remote-reply-1").data.replace("\r\n ", "")
    assert "PARTSTAT=ACCEPTED" in attendee_line(data, eve), data


@pytest.fixture(scope="module")
def unchecked(tmp_path_factory):
    """A box whose owner turned the DMARC check off: a forged local From reaches the INBOX."""
    srv = GKServer(tmp_path_factory.mktemp("itip-unchecked") / "gk", {"smtp": {"check_dmarc": False}})
    srv.write_config()
    for address in (ALICE, BOB):
        srv.add_user(address, PASSWORD)
    claim.claim(srv.data_dir, "test")
    claim.complete(srv.data_dir)
    srv.start()
    yield srv
    srv.stop()


def test_a_forged_local_sender_that_got_through_schedules_nothing(unchecked: GKServer) -> None:
    """Defence in depth: with the SMTP check off, the forged REQUEST "from alice" is delivered to
    bob's INBOX, yet the iTIP watcher acts only on senders the box vouches for: nothing in bob's
    calendar or scheduling inbox. Alice's genuine invitation, submitted with AUTH, is applied."""
    send_on_port_25(unchecked, ALICE, BOB, "Forged REQUEST", "REQUEST", forged_request("forged-through-1", ALICE))
    assert wait_for(lambda: f"sender {ALICE} is not authenticated" in unchecked.log()), unchecked.log()[-4000:]
    assert [m for m in inbox(unchecked, BOB) if m["Subject"] == "Forged REQUEST"]
    assert "forged-through-1" not in scheduled_uids(unchecked, BOB)
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = ALICE, BOB, "Genuine REQUEST"
    msg.set_content("Alice invites you.")
    msg.add_alternative(forged_request("genuine-1", ALICE), subtype="calendar", params={"method": "REQUEST"})
    with smtplib.SMTP_SSL(
        "127.0.0.1", unchecked.port("smtp.submissions_port"), context=tls_client_context(), timeout=30
    ) as s:
        s.login(ALICE, PASSWORD)
        s.send_message(msg)
    assert wait_for(lambda: "genuine-1" in scheduled_uids(unchecked, BOB)), unchecked.log()[-4000:]
    assert "forged-through-1" not in scheduled_uids(unchecked, BOB)


# -- Schedule-Tag (RFC 6638 §3.2.10, §3.3, §8.3) ---------------------------------------------------


def dav_http(
    srv: GKServer, user: str, method: str, url: str, body: str = "", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], str]:
    """One plain HTTP request as ``user`` (``url``: an absolute one, or a path)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # the self-signed device certificate
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port("http.https_port"), context=ctx, timeout=60)
    hdrs = {"Authorization": "Basic " + base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()}
    hdrs.update(headers or {})
    try:
        conn.request(method, urllib.parse.urlsplit(str(url)).path, body=body.encode() or None, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def propfind_tag(srv: GKServer, user: str, url: str) -> str | None:
    """CALDAV:schedule-tag of ``url`` by PROPFIND (None when the server has none for it)."""
    body = (
        '<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:" '
        'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:schedule-tag/></D:prop></D:propfind>'
    )
    status, _, text = dav_http(srv, user, "PROPFIND", url, body, {"Depth": "0", "Content-Type": "application/xml"})
    assert status == 207, text
    for propstat in ET.fromstring(text).iter("{DAV:}propstat"):
        tag = propstat.find("{DAV:}prop/{urn:ietf:params:xml:ns:caldav}schedule-tag")
        if tag is not None and " 200 " in (propstat.findtext("{DAV:}status") or ""):
            return tag.text
    return None


def multiget_tags(srv: GKServer, user: str, collection: str, urls: list[str]) -> dict[str, str]:
    """href -> CALDAV:schedule-tag of a calendar-multiget REPORT asking for it."""
    hrefs = "".join(f"<D:href>{urllib.parse.urlsplit(str(u)).path}</D:href>" for u in urls)
    body = (
        '<?xml version="1.0" encoding="utf-8"?><C:calendar-multiget xmlns:D="DAV:" '
        'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:schedule-tag/></D:prop>'
        f"{hrefs}</C:calendar-multiget>"
    )
    status, _, text = dav_http(srv, user, "REPORT", collection, body, {"Depth": "1", "Content-Type": "application/xml"})
    assert status == 207, text
    out = {}
    for response in ET.fromstring(text).iter("{DAV:}response"):
        tag = response.find("{DAV:}propstat/{DAV:}prop/{urn:ietf:params:xml:ns:caldav}schedule-tag")
        if tag is not None and tag.text:
            out[urllib.parse.unquote(response.findtext("{DAV:}href") or "")] = tag.text
    return out


def test_schedule_tag_changes_with_the_organizer_only(server: GKServer) -> None:
    """RFC 6638 §3.2.10: each scheduling object has a Schedule-Tag (GET, HEAD and PUT headers, the
    CALDAV:schedule-tag property); bob's answer written into alice's copy and his own attendee-only
    PUTs (his PARTSTAT, an alarm, TRANSP) keep the tags, alice's PUT changes hers and, applied to
    bob's copy, his; If-Schedule-Tag-Match with a stale tag is refused (412), an If-Match beside a
    matching one is ignored (iOS Calendar sends both);
    an event without an ORGANIZER has no tag."""
    uid = "tag-1"
    alice_cal, bob_cal = calendar(server, ALICE), calendar(server, BOB)
    alice_cal.save_event(MEETING.format(uid=uid, alice=ALICE, bob=BOB, bob_partstat="NEEDS-ACTION"))
    alice_url, bob_url = alice_cal.event_by_uid(uid).url, bob_cal.event_by_uid(uid).url
    status, headers, alice_text = dav_http(server, ALICE, "GET", alice_url)
    alice_tag = headers.get("schedule-tag", "")
    assert status == 200 and re.fullmatch(r'"[^"]+"', alice_tag), headers
    assert dav_http(server, ALICE, "HEAD", alice_url)[1].get("schedule-tag") == alice_tag
    assert propfind_tag(server, ALICE, alice_url) == alice_tag
    status, headers, bob_text = dav_http(server, BOB, "GET", bob_url)
    bob_tag = headers.get("schedule-tag", "")
    assert status == 200 and bob_tag and bob_tag != alice_tag, headers
    assert multiget_tags(server, BOB, bob_cal.url, [bob_url]) == {urllib.parse.unquote(bob_url.path): bob_tag}
    # bob accepts from a CalDAV client, conditional on his tag: his tag stays, and so does alice's,
    # though her copy changed (his answer in it: a new ETag)
    accepted = bob_text.replace("PARTSTAT=NEEDS-ACTION", "PARTSTAT=ACCEPTED")
    # (as iOS Calendar, with an If-Match too, here one no copy has: the tag decides)
    both = {"If-Schedule-Tag-Match": bob_tag, "If-Match": '"not-this-etag"', "Content-Type": "text/calendar"}
    status, headers, _ = dav_http(server, BOB, "PUT", bob_url, accepted, both)
    assert status in (201, 204) and headers.get("schedule-tag") == bob_tag, (status, headers)
    status, headers, text = dav_http(server, ALICE, "GET", alice_url)
    assert "PARTSTAT=ACCEPTED" in attendee_line(text, BOB) and headers["schedule-tag"] == alice_tag
    assert text != alice_text
    # alice's client, at her tag but with the text from before bob's answer, adds a description:
    # §3.2.10, the server merges his answer (an "inconsequential" change) into what it stores,
    # with no ETag in the answer (the stored text is not the one sent); her PUT, a new tag
    described = alice_text.replace("SUMMARY:Review", "SUMMARY:Review\r\nDESCRIPTION:agenda attached")
    status, headers, _ = dav_http(
        server,
        ALICE,
        "PUT",
        alice_url,
        described,
        {"If-Schedule-Tag-Match": alice_tag, "Content-Type": "text/calendar"},
    )
    assert status in (201, 204) and "etag" not in headers and headers["schedule-tag"] != alice_tag, headers
    text = dav_http(server, ALICE, "GET", alice_url)[2]
    assert "PARTSTAT=ACCEPTED" in attendee_line(text, BOB) and "agenda attached" in text, text
    assert propfind_tag(server, BOB, bob_url) == bob_tag  # (nothing bob agreed to changed: his copy as it was)
    # an alarm and TRANSP of his own, with the caldav library: still his tag
    ev = bob_cal.event_by_uid(uid)
    ev.data = ev.data.replace(
        "END:VEVENT",
        "TRANSP:TRANSPARENT\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:x\r\nTRIGGER:-PT5M\r\nEND:VALARM\r\nEND:VEVENT",
    )
    ev.save(increase_seqno=False)
    assert "TRANSP:TRANSPARENT" in dav_http(server, BOB, "GET", bob_url)[2]
    assert propfind_tag(server, BOB, bob_url) == bob_tag
    # alice moves the meeting: a new tag for her copy (her PUT's header says which), and for bob's
    ev = alice_cal.event_by_uid(uid)
    moved = ev.data.replace("20990710T09", "20990711T09").replace("20990710T10", "20990711T10")
    status, headers, _ = dav_http(server, ALICE, "PUT", alice_url, moved, {"Content-Type": "text/calendar"})
    new_alice = headers.get("schedule-tag", "")
    assert status in (201, 204) and new_alice and new_alice != alice_tag, (status, headers)
    assert dav_http(server, ALICE, "GET", alice_url)[1]["schedule-tag"] == new_alice
    status, headers, text = dav_http(server, BOB, "GET", bob_url)
    assert "20990711T09" in text and headers["schedule-tag"] not in ("", bob_tag), headers
    new_bob = headers["schedule-tag"]
    # bob's client, still at the old tag, declines: refused, his copy as the server made it
    declined = text.replace("PARTSTAT=ACCEPTED", "PARTSTAT=DECLINED")
    stale = {"If-Schedule-Tag-Match": bob_tag, "Content-Type": "text/calendar"}
    assert dav_http(server, BOB, "PUT", bob_url, declined, stale)[0] == 412
    assert dav_http(server, BOB, "DELETE", bob_url, "", {"If-Schedule-Tag-Match": bob_tag})[0] == 412
    assert dav_http(server, BOB, "GET", bob_url)[2] == text
    assert "PARTSTAT=ACCEPTED" in attendee_line(alice_cal.event_by_uid(uid).data, BOB)
    # at the current tag it goes through
    fresh = {"If-Schedule-Tag-Match": new_bob, "Content-Type": "text/calendar"}
    assert dav_http(server, BOB, "PUT", bob_url, declined, fresh)[0] in (201, 204)
    assert "PARTSTAT=DECLINED" in attendee_line(alice_cal.event_by_uid(uid).data, BOB)
    # an event of alice's own, no ORGANIZER: no tag anywhere, and If-Schedule-Tag-Match fails
    alice_cal.save_event(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//GK//itip test//EN\r\nBEGIN:VEVENT\r\nUID:tag-own\r\n"
        "DTSTAMP:20260101T000000Z\r\nDTSTART:20990712T090000Z\r\nDTEND:20990712T100000Z\r\nSUMMARY:Alone\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    own_url = alice_cal.event_by_uid("tag-own").url
    status, headers, text = dav_http(server, ALICE, "GET", own_url)
    assert status == 200 and "schedule-tag" not in headers
    assert propfind_tag(server, ALICE, own_url) is None
    assert multiget_tags(server, ALICE, alice_cal.url, [own_url, alice_url]) == {
        urllib.parse.unquote(alice_url.path): new_alice
    }
    status, headers, _ = dav_http(server, ALICE, "PUT", own_url, text, {"Content-Type": "text/calendar"})
    assert status in (201, 204) and "schedule-tag" not in headers
    assert dav_http(server, ALICE, "PUT", own_url, text, {"If-Schedule-Tag-Match": new_alice})[0] == 412
    # the caldav library reads the property too
    tag = alice_cal.event_by_uid(uid).get_property(caldav.elements.cdav.ScheduleTag())
    assert tag == new_alice
    # a MOVE into another calendar of hers: the tag asked of the source; the answer gives the moved one's
    other = principal(server, ALICE).make_calendar(name="Tag moves", cal_id="tag-moves")
    destination = {"Destination": f"{str(other.url).rstrip('/')}/{uid}.ics"}
    assert dav_http(server, ALICE, "MOVE", alice_url, "", {**destination, "If-Schedule-Tag-Match": alice_tag})[0] == 412
    status, headers, _ = dav_http(
        server, ALICE, "MOVE", alice_url, "", {**destination, "If-Schedule-Tag-Match": new_alice}
    )
    assert status in (201, 204) and headers.get("schedule-tag"), (status, headers)
    assert dav_http(server, ALICE, "GET", destination["Destination"])[1]["schedule-tag"] == headers["schedule-tag"]
    assert dav_http(server, ALICE, "GET", alice_url)[0] == 404
    assert '" 500 ' not in server.log()


# -- SCHEDULE-STATUS (RFC 6638 §3.2.9, §7.3) and SCHEDULE-FORCE-SEND (§7.2) ------------------------
REMOTE, NOBODY = "zoe@remote.example", "nobody@itip.example"
STATUS_EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//GK//itip test//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
    "DTSTAMP:20260101T000000Z\r\nDTSTART:20990810T090000Z\r\nDTEND:20990810T100000Z\r\nSUMMARY:Status\r\n"
    "SEQUENCE:0\r\nORGANIZER;CN=Alice:mailto:{alice}\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:{alice}\r\n"
    "ATTENDEE;CN=Bob;PARTSTAT=NEEDS-ACTION;RSVP=TRUE;SCHEDULE-STATUS=5.3:mailto:{bob}\r\n"
    "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:{carol}\r\n"
    "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:{remote}\r\nATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:{nobody}\r\n"
    "ATTENDEE;SCHEDULE-AGENT=CLIENT;SCHEDULE-STATUS=2.0:mailto:dave@elsewhere.example\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)


def schedule_status(data: str, address: str, name: str = "ATTENDEE") -> str | None:
    """The SCHEDULE-STATUS of ``address``'s ``name`` line of an event's text (None: none)."""
    for line in data.replace("\r\n ", "").replace("\n ", "").splitlines():
        if line.startswith(name) and line.lower().endswith(f"mailto:{address.lower()}"):
            found = re.search(r';SCHEDULE-STATUS="?([0-9.,]+)"?[;:]', line)
            return found.group(1) if found else None
    raise AssertionError(f"no {name} {address} in {data}")


def test_schedule_status_on_the_organizers_copy(server: GKServer) -> None:
    """RFC 6638 §3.2.9, §7.3: alice's PUT (plain HTTP) schedules, and her stored copy says for each
    attendee what became of it: bob, a user of the box, 1.2 (delivered into his calendar: no
    status there, none in the iTIP message); an address outside, 1.1 (mailed); one of the box's
    domains that is no one, 3.7, left out of the mail (bob still gets his); the status alice's
    client sent for bob is not kept, the one on a line it schedules itself (SCHEDULE-AGENT=CLIENT)
    is. The answer has no ETag (the stored text is not the one sent, RFC 4791 §5.3.4) and the
    Schedule-Tag of the stored copy. Her client writing back what it read, with a status of its
    own and a description, at that tag: accepted, the server's statuses kept. The same text again
    is stored as sent: an ETag then. SCHEDULE-FORCE-SEND=REQUEST sends carol the unchanged event
    again and is not stored."""
    uid = "status-1"
    alice_cal = calendar(server, ALICE)
    url = f"{str(alice_cal.url).rstrip('/')}/{uid}.ics"
    text = STATUS_EVENT.format(uid=uid, alice=ALICE, bob=BOB, carol=CAROL, remote=REMOTE, nobody=NOBODY)
    status, headers, _ = dav_http(server, ALICE, "PUT", url, text, {"Content-Type": "text/calendar"})
    assert status == 201 and "etag" not in headers and headers.get("schedule-tag"), (status, headers)
    tag = headers["schedule-tag"]
    status, headers, stored = dav_http(server, ALICE, "GET", url)
    assert status == 200 and headers["schedule-tag"] == tag, headers
    assert schedule_status(stored, BOB) == "1.2" and schedule_status(stored, CAROL) == "1.2", stored
    assert schedule_status(stored, REMOTE) == "1.1" and schedule_status(stored, NOBODY) == "3.7", stored
    assert schedule_status(stored, "dave@elsewhere.example") == "2.0"
    assert schedule_status(stored, ALICE) is None  # the organizer is sent nothing
    # the caldav library reads the same
    assert schedule_status(alice_cal.event_by_uid(uid).data, BOB) == "1.2"
    bob_copy = calendar(server, BOB).event_by_uid(uid).data
    assert "SCHEDULE-STATUS" not in bob_copy, bob_copy
    requests = wait_for(lambda: [r for r in itip_parts(inbox(server, BOB), "REQUEST") if f"UID:{uid}" in r])
    assert requests and "SCHEDULE-STATUS" not in requests[0], requests
    assert wait_for(lambda: f"iTIP REQUEST from {ALICE} to " in server.log())
    sent_to = [
        line for line in server.log().splitlines() if f"iTIP REQUEST from {ALICE} to " in line and REMOTE in line
    ]
    assert sent_to and NOBODY not in sent_to[-1], sent_to
    # her client writes back what it read, its own status for bob and a description, at her tag
    edited = stored.replace("\r\n ", "").replace(
        "SCHEDULE-STATUS=1.2:mailto:" + BOB, "SCHEDULE-STATUS=2.0:mailto:" + BOB
    )
    edited = edited.replace("SUMMARY:Status", "SUMMARY:Status\r\nDESCRIPTION:agenda")
    assert schedule_status(edited, BOB) == "2.0"
    status, headers, _ = dav_http(
        server, ALICE, "PUT", url, edited, {"If-Schedule-Tag-Match": tag, "Content-Type": "text/calendar"}
    )
    assert status == 204 and "etag" not in headers and headers["schedule-tag"] != tag, (status, headers)
    status, headers, stored = dav_http(server, ALICE, "GET", url)
    assert "DESCRIPTION:agenda" in stored and schedule_status(stored, BOB) == "1.2", stored
    assert schedule_status(stored, REMOTE) == "1.1" and schedule_status(stored, NOBODY) == "3.7"
    # the same text again, conditional on its ETag: stored as sent, so the answer has an ETag
    etag = headers["etag"]
    status, headers, _ = dav_http(
        server, ALICE, "PUT", url, stored, {"If-Match": etag, "Content-Type": "text/calendar"}
    )
    assert status == 204 and headers.get("etag"), (status, headers)
    assert dav_http(server, ALICE, "GET", url)[1]["etag"] == headers["etag"]
    # SCHEDULE-FORCE-SEND=REQUEST: carol gets the unchanged event again, and it is not stored
    before = len(scheduling_items(server, CAROL, uid, "REQUEST"))
    forced = stored.replace("\r\n ", "").replace(
        f"PARTSTAT=NEEDS-ACTION;SCHEDULE-STATUS=1.2:mailto:{CAROL}",
        f"PARTSTAT=NEEDS-ACTION;SCHEDULE-FORCE-SEND=REQUEST:mailto:{CAROL}",
    )
    assert "SCHEDULE-FORCE-SEND" in forced, stored
    status, headers, _ = dav_http(server, ALICE, "PUT", url, forced, {"Content-Type": "text/calendar"})
    assert status == 204 and "etag" not in headers, (status, headers)
    assert len(scheduling_items(server, CAROL, uid, "REQUEST")) == before + 1
    stored = dav_http(server, ALICE, "GET", url)[2]
    assert "SCHEDULE-FORCE-SEND" not in stored and schedule_status(stored, CAROL) == "1.2", stored
    assert '" 500 ' not in server.log()


def test_schedule_status_on_the_attendees_copy(server: GKServer) -> None:
    """RFC 6638 §7.3: bob's answer from a CalDAV client (plain HTTP, at his Schedule-Tag) is sent to
    alice, a user of the box: his copy's ORGANIZER says 1.2, his tag stays (§3.2.10: his answer
    alone), and the answer has no ETag (the stored text is not the one sent). His client writing
    the copy back without the status, an alarm of his own added, changes neither; the caldav
    library's answer (another event) gets the status too."""
    uid = "status-2"
    alice_cal, bob_cal = calendar(server, ALICE), calendar(server, BOB)
    alice_cal.save_event(MEETING.format(uid=uid, alice=ALICE, bob=BOB, bob_partstat="NEEDS-ACTION"))
    bob_url = bob_cal.event_by_uid(uid).url
    status, headers, text = dav_http(server, BOB, "GET", bob_url)
    tag = headers["schedule-tag"]
    assert schedule_status(text, ALICE, "ORGANIZER") is None
    accepted = text.replace("PARTSTAT=NEEDS-ACTION", "PARTSTAT=ACCEPTED")
    status, headers, _ = dav_http(
        server, BOB, "PUT", bob_url, accepted, {"If-Schedule-Tag-Match": tag, "Content-Type": "text/calendar"}
    )
    assert status == 204 and "etag" not in headers and headers["schedule-tag"] == tag, (status, headers)
    status, headers, text = dav_http(server, BOB, "GET", bob_url)
    assert schedule_status(text, ALICE, "ORGANIZER") == "1.2" and headers["schedule-tag"] == tag, text
    assert "PARTSTAT=ACCEPTED" in attendee_line(alice_cal.event_by_uid(uid).data, BOB)
    assert "SCHEDULE-STATUS" not in "".join(scheduling_items(server, ALICE, uid, "REPLY"))
    # his client drops the status and adds an alarm: the tag stays, the server's status too
    dropped = text.replace(";SCHEDULE-STATUS=1.2", "").replace(
        "END:VEVENT", "BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:x\r\nTRIGGER:-PT5M\r\nEND:VALARM\r\nEND:VEVENT"
    )
    assert "SCHEDULE-STATUS" not in dropped
    status, headers, _ = dav_http(
        server, BOB, "PUT", bob_url, dropped, {"If-Schedule-Tag-Match": tag, "Content-Type": "text/calendar"}
    )
    assert status == 204 and headers["schedule-tag"] == tag, (status, headers)
    text = dav_http(server, BOB, "GET", bob_url)[2]
    assert schedule_status(text, ALICE, "ORGANIZER") == "1.2" and "VALARM" in text, text
    # with the caldav library
    alice_cal.save_event(MEETING.format(uid="status-3", alice=ALICE, bob=BOB, bob_partstat="NEEDS-ACTION"))
    answer_as(bob_cal, "status-3", BOB, "TENTATIVE")
    assert schedule_status(bob_cal.event_by_uid("status-3").data, ALICE, "ORGANIZER") == "1.2"
    assert '" 500 ' not in server.log()


def set_quota(srv: GKServer, address: str, mb: int) -> None:
    """What the admin's Users page does (read by ``gk serve`` at each delivery)."""
    with accounts_of(srv) as store:
        store.set_quota(address, mb)


def test_a_refused_invitation_mail_turns_its_status_into_the_refusal(server: GKServer) -> None:
    """RFC 6638 §3.2.9: frank, a user of the box who never used a calendar (so mailed: 1.1), has
    a full mailbox; the iTIP mail, refused by submission after alice's PUT returned, turns his
    status (and that of the remote attendee the same mail was for) into 5.1, written by the server
    into her copy with her Schedule-Tag kept; bob, delivered into his calendar, stays 1.2."""
    frank, uid = "frank@itip.example", "status-full"
    server.add_user(frank, PASSWORD)
    big = EmailMessage()
    big["From"], big["To"], big["Subject"] = BOB, frank, "Big"
    big.set_content("\n".join("x" * 70 for _ in range(16_000)))  # ~1.1 MB
    with smtplib.SMTP_SSL(
        "127.0.0.1", server.port("smtp.submissions_port"), context=tls_client_context(), timeout=30
    ) as s:
        s.login(BOB, PASSWORD)
        s.send_message(big)
    assert wait_for(lambda: inbox(server, frank))
    set_quota(server, frank, 1)
    alice_cal = calendar(server, ALICE)
    url = f"{str(alice_cal.url).rstrip('/')}/{uid}.ics"
    text = MEETING.format(uid=uid, alice=ALICE, bob=BOB, bob_partstat="NEEDS-ACTION").replace(
        "END:VEVENT", f"ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:{frank}\r\nATTENDEE:mailto:{REMOTE}\r\nEND:VEVENT"
    )
    status, headers, _ = dav_http(server, ALICE, "PUT", url, text, {"Content-Type": "text/calendar"})
    assert status == 201, (status, headers)
    tag = headers["schedule-tag"]

    def refused() -> str:
        data = alice_cal.event_by_uid(uid).data
        return data if schedule_status(data, frank) == "5.1" else ""

    data = wait_for(refused)
    assert data, server.log()[-4000:]
    assert schedule_status(data, REMOTE) == "5.1" and schedule_status(data, BOB) == "1.2", data
    assert "552 5.2.2" in server.log()
    assert dav_http(server, ALICE, "GET", url)[1]["schedule-tag"] == tag
    assert not [m for m in inbox(server, frank) if m["Subject"] != "Big"]
    set_quota(server, frank, 0)
    assert '" 500 ' not in server.log()
