"""DAV writes acknowledged to a client survive ``kill -9``; DAV logins go through GK's accounts:
app passwords work and the shared throttle locks an account out after repeated failures."""

from __future__ import annotations

import concurrent.futures
import re

import pytest
from support.gkserver import GKServer
from test_dav_caldav import ALICE, ALICE_PW, BOB, BOB_PW, NO_MAIL, PRINCIPAL_PROPFIND, event, request

from gk import claim
from gk.config import load
from gk.context import open_accounts

pytestmark = pytest.mark.filterwarnings("ignore:Unverified HTTPS request")


def started(srv: GKServer, app_password: str = "", bob: bool = False) -> GKServer:
    """Alice (and her app password; Bob), the wizard marked complete, then ``gk serve``."""
    srv.write_config()
    srv.add_user(ALICE, ALICE_PW)
    if bob:
        srv.add_user(BOB, BOB_PW)
    if app_password:
        open_accounts(load(srv.data_dir), srv.data_dir).add_app_password(ALICE, "phone", app_password)
    claim.claim(srv.data_dir, "test")
    claim.complete(srv.data_dir)
    return srv.start()


def invitation(i: int) -> str:
    """Event ``k<i>`` organized by Alice; every fourth one invites Bob (a user of the box)."""
    text = event(f"k{i}", 1 + i % 28, f"durable {i}")
    if i % 4 == 0:
        text = text.replace(
            "END:VEVENT", f"ORGANIZER:mailto:{ALICE}\nATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:{BOB}\nEND:VEVENT"
        )
    return text


def test_acknowledged_puts_survive_kill9(make_server):
    """And so do the invitations they carry to another user of the box (RFC 6638 implicit
    scheduling commits with the organizer's PUT): Bob's calendar copy and inbox item, and the
    Schedule-Tags the responses gave (§3.2.10: a client's If-Schedule-Tag-Match after a restart)."""
    srv = started(make_server(overrides=NO_MAIL), bob=True)
    cal = f"/dav/{ALICE}/calendar/"

    def put(i: int) -> tuple[int, str, str | None]:
        status, headers, _ = request(srv, "PUT", f"{cal}k{i}.ics", invitation(i))
        return status, headers.get("etag", ""), headers.get("schedule-tag")

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        acked = dict(zip(range(40), pool.map(put, range(40)), strict=True))
    assert all(status == 201 for status, _, _ in acked.values()), acked
    assert all((tag is not None) == (i % 4 == 0) for i, (_, _, tag) in acked.items()), acked
    # an invitation's PUT answers no ETag: the server wrote its SCHEDULE-STATUS into the stored copy
    # (RFC 4791 §5.3.4); the client reads it, and what it read must survive too
    assert all((etag == "") == (tag is not None) for _, etag, tag in acked.values()), acked
    bob_tags = {}
    for i in range(0, 40, 4):
        _, headers, _ = request(srv, "GET", f"/dav/{BOB}/calendar/k{i}.ics", user=BOB, password=BOB_PW)
        bob_tags[i] = headers["schedule-tag"]
        _, headers, body = request(srv, "GET", f"{cal}k{i}.ics")
        assert "SCHEDULE-STATUS=1.2" in body.replace("\r\n ", ""), body
        acked[i] = (acked[i][0], headers["etag"], acked[i][2])
    srv.kill9()
    srv.start()
    for i, (_, etag, tag) in acked.items():
        status, headers, body = request(srv, "GET", f"{cal}k{i}.ics")
        assert status == 200 and f"durable {i}" in body and headers["etag"] == etag, i
        assert headers.get("schedule-tag") == tag, i
    for i in range(0, 40, 4):
        status, headers, body = request(srv, "GET", f"/dav/{BOB}/calendar/k{i}.ics", user=BOB, password=BOB_PW)
        assert status == 200 and f"durable {i}" in body and headers["schedule-tag"] == bob_tags[i], (i, status)
    status, _, listing = request(
        srv, "PROPFIND", f"/dav/{BOB}/schedule-inbox/", user=BOB, password=BOB_PW, headers={"Depth": "1"}
    )
    assert status == 207 and listing.count(".ics</") == 10, listing
    # bob accepts them from his client: alice's copies and her scheduling inbox (the REPLYs)
    # commit with each of his PUTs

    def accept(i: int) -> int:
        path = f"/dav/{BOB}/calendar/k{i}.ics"
        _, _, body = request(srv, "GET", path, user=BOB, password=BOB_PW)
        body = body.replace("\r\n ", "").replace(
            f"PARTSTAT=NEEDS-ACTION:mailto:{BOB}", f"PARTSTAT=ACCEPTED:mailto:{BOB}"
        )
        match = {"If-Schedule-Tag-Match": bob_tags[i]}
        status, _, _ = request(srv, "PUT", path, body, user=BOB, password=BOB_PW, headers=match)
        return status

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert set(pool.map(accept, range(0, 40, 4))) == {204}
    srv.kill9()
    srv.start()
    for i in range(0, 40, 4):
        _, headers, body = request(srv, "GET", f"{cal}k{i}.ics")
        # (the server's SCHEDULE-STATUS of its invitation, written with it: gk.dav.itip)
        assert f"PARTSTAT=ACCEPTED;SCHEDULE-STATUS=1.2:mailto:{BOB}" in body.replace("\r\n ", ""), (i, body)
        assert headers["schedule-tag"] == acked[i][2], i  # an answer is no new Schedule-Tag
    status, _, listing = request(srv, "REPORT", f"/dav/{ALICE}/schedule-inbox/", INBOX_QUERY, headers={"Depth": "1"})
    assert status == 207 and listing.count("METHOD:REPLY") == 10, listing


INBOX_QUERY = (
    '<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
    '<D:prop><C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>'
)


def test_app_password_works_and_failures_lock_the_account(make_server):
    overrides = {**NO_MAIL, "auth": {"lockout_failures_account": 3, "delay_after_failures": 10}}
    started_srv = started(make_server(overrides=overrides), app_password="phone app password 42")
    status, _, _ = request(
        started_srv, "PROPFIND", f"/dav/{ALICE}/", PRINCIPAL_PROPFIND, password="phone app password 42"
    )
    assert status == 207
    for _ in range(3):
        status, _, _ = request(started_srv, "PROPFIND", f"/dav/{ALICE}/", PRINCIPAL_PROPFIND, password="nope")
        assert status == 401
    # locked out now: even the right password is refused, as for IMAP and SMTP
    status, _, _ = request(started_srv, "PROPFIND", f"/dav/{ALICE}/", PRINCIPAL_PROPFIND)
    assert status == 401
    assert re.search(r"dav login refused \([^)]*locked out", started_srv.log())
