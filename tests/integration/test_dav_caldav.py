"""CalDAV and CardDAV against a real ``gk serve`` over HTTPS: the python ``caldav`` library for
discovery, events in a time range and sync tokens; raw HTTP for CardDAV, well-known redirects,
refusals (another user's collections, wrong password) and bad input (oversize PUT, XML with a
DTD, malformed iCalendar, path tricks).
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import re
import ssl
import urllib.parse
from pathlib import Path

import caldav
import pytest
from caldav.lib import error as caldav_error
from support.gkserver import GKServer

from gk import claim

ALICE, ALICE_PW = "alice@test.example", "alice password 1"
BOB, BOB_PW = "bob@test.example", "bob password 1"
# the device certificate is self-signed: TLS is real, its verification is not the point here
pytestmark = pytest.mark.filterwarnings("ignore:Unverified HTTPS request")
NO_MAIL = {"smtp": {"port": 0, "submission_port": 0, "submissions_port": 0}, "imap": {"port": 0, "tls_port": 0}}

EVENT = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//GK//dav test//EN
BEGIN:VEVENT
UID:{uid}
DTSTAMP:20260101T000000Z
DTSTART:{start}
DTEND:{end}
SUMMARY:{summary}
END:VEVENT
END:VCALENDAR
"""

VCARD = """BEGIN:VCARD\r
VERSION:3.0\r
UID:carol-1\r
FN:Carol Example\r
N:Example;Carol;;;\r
EMAIL;TYPE=INTERNET:carol@example.org\r
TEL;TYPE=CELL:+33 6 12 34 56 78\r
END:VCARD\r
"""


def event(uid: str, day: int, summary: str = "meeting") -> str:
    return EVENT.format(uid=uid, start=f"202603{day:02d}T090000Z", end=f"202603{day:02d}T100000Z", summary=summary)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = GKServer(tmp_path_factory.mktemp("dav") / "gk", NO_MAIL)
    srv.write_config()
    srv.add_user(ALICE, ALICE_PW)
    srv.add_user(BOB, BOB_PW)
    claim.claim(srv.data_dir, "test")
    claim.complete(srv.data_dir)
    srv.start()
    yield srv
    srv.stop()


def base(srv: GKServer) -> str:
    return f"https://127.0.0.1:{srv.port('http.https_port')}"


def client(srv: GKServer, user: str = ALICE, password: str = ALICE_PW, path: str = "/dav/") -> caldav.DAVClient:
    return caldav.DAVClient(
        url=base(srv) + path, username=user, password=password, ssl_verify_cert=False, enable_rfc6764=False
    )


def request(
    srv: GKServer,
    method: str,
    path: str,
    body: bytes | str | None = None,
    user: str | None = ALICE,
    password: str = ALICE_PW,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], str]:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # the self-signed device certificate
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port("http.https_port"), context=ctx, timeout=60)
    hdrs = dict(headers or {})
    if user is not None:
        hdrs["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    if isinstance(body, str):
        body = body.encode()
    try:
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read().decode("utf-8", "replace")
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def chunked_put(srv: GKServer, path: str, size: int) -> int:
    """A PUT with ``Transfer-Encoding: chunked`` (no Content-Length) of ``size`` bytes; its status."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port("http.https_port"), context=ctx, timeout=60)
    auth = "Basic " + base64.b64encode(f"{ALICE}:{ALICE_PW}".encode()).decode()
    chunk = b"z" * 65536
    try:
        try:
            conn.request(
                "PUT",
                path,
                body=(chunk for _ in range(size // len(chunk))),
                encode_chunked=True,
                headers={"Authorization": auth, "Content-Type": "text/calendar"},
            )
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered before the end of the body
        return conn.getresponse().status
    finally:
        conn.close()


PRINCIPAL_PROPFIND = (
    '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:current-user-principal/></D:prop></D:propfind>'
)


def test_radicale_is_imported_on_first_dav_request_only(make_server):
    srv = make_server(overrides=NO_MAIL)
    srv.write_config()
    srv.add_user(ALICE, ALICE_PW)
    claim.claim(srv.data_dir, "test")
    claim.complete(srv.data_dir)
    srv.start()
    status, _, _ = request(srv, "GET", "/login", user=None)
    assert status == 200
    assert "loading Radicale" not in srv.log()
    status, _, _ = request(srv, "PROPFIND", "/dav/", PRINCIPAL_PROPFIND, headers={"Depth": "0"})
    assert status == 207
    assert "loading Radicale" in srv.log()


def test_discovery_from_server_root_and_well_known(server):
    for path in ("/", "/.well-known/caldav", "/.well-known/carddav"):
        status, headers, _ = request(server, "PROPFIND", path, PRINCIPAL_PROPFIND, headers={"Depth": "0"})
        assert status == 301 and headers["location"].endswith("/dav/"), (path, status)
    status, headers, _ = request(server, "GET", "/.well-known/caldav", user=None)
    assert status == 301 and headers["location"].endswith("/dav/")
    # the caldav library follows the well-known redirect, finds the principal and its home set
    principal = client(server, path="/.well-known/caldav").principal()
    assert urllib.parse.unquote(str(principal.url)).endswith(f"/dav/{ALICE}/")
    names = sorted(c.get_display_name() for c in principal.calendars())
    assert names == ["Calendar", "Tasks"]
    status, _, body = request(
        server,
        "PROPFIND",
        f"/dav/{ALICE}/",
        '<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" '
        'xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:prop><C:calendar-home-set/><CR:addressbook-home-set/>'
        "</D:prop></D:propfind>",
        headers={"Depth": "0"},
    )
    assert status == 207
    assert urllib.parse.unquote(body).count(f"/dav/{ALICE}/") >= 3  # href + both home sets on the one principal


def test_principal_lists_the_users_mailto_addresses(server):
    """RFC 6638 calendar-user-address-set: the user's mailto: address first (iOS and macOS take it
    as "me" in invitations), then the principal URL; asked through the caldav library."""
    principal = client(server).principal()
    addresses = [str(a) for a in principal.calendar_user_address_set()]
    assert addresses[0] == f"mailto:{ALICE}", addresses
    assert any(urllib.parse.unquote(a).endswith(f"/dav/{ALICE}/") for a in addresses[1:]), addresses
    status, _, body = request(
        server,
        "PROPFIND",
        f"/dav/{ALICE}/",
        '<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        "<D:prop><C:calendar-user-address-set/><D:displayname/></D:prop></D:propfind>",
        headers={"Depth": "1"},
    )
    assert status == 207 and body.count("mailto:") == 1 and BOB not in body


def test_events_created_queried_updated_deleted(server):
    cal = client(server).principal().calendar(name="Calendar")
    for day in range(1, 29):
        cal.save_event(event(f"ev-{day}", day, f"day {day}"))
    week = cal.search(start=dt.datetime(2026, 3, 9), end=dt.datetime(2026, 3, 16), event=True, expand=False)
    summaries = sorted(str(e.icalendar_component["SUMMARY"]) for e in week)
    assert summaries == sorted(f"day {d}" for d in range(9, 16))
    ev = cal.event_by_uid("ev-10")
    ev.icalendar_component["SUMMARY"] = "moved meeting"
    ev.save()
    assert str(cal.event_by_uid("ev-10").icalendar_component["SUMMARY"]) == "moved meeting"
    cal.event_by_uid("ev-11").delete()
    week = cal.search(start=dt.datetime(2026, 3, 9), end=dt.datetime(2026, 3, 16), event=True, expand=False)
    uids = sorted(str(e.icalendar_component["UID"]) for e in week)
    assert "ev-11" not in uids and "ev-10" in uids and len(uids) == 6


def test_sync_collection_delta_after_delete(server):
    cal = client(server, BOB, BOB_PW).principal().calendar(name="Calendar")
    for i in range(5):
        cal.save_event(event(f"sync-{i}", i + 1))
    first = cal.objects_by_sync_token(load_objects=False)
    token = first.sync_token
    assert isinstance(token, str) and not token.startswith("fake-"), token
    assert len(first) == 5
    cal.event_by_uid("sync-2").delete()
    cal.save_event(event("sync-new", 20))
    delta = cal.objects_by_sync_token(sync_token=token, load_objects=False)
    assert delta.sync_token != token and not str(delta.sync_token).startswith("fake-")
    changed = {str(o.url).rsplit("/", 1)[1] for o in delta}
    deleted = {str(u).rsplit("/", 1)[1] for u in delta.deleted_urls}
    # the library lists the deleted href among the objects too (with a 404 status), and in deleted_urls
    assert deleted == {"sync-2.ics"} and changed - deleted == {"sync-new.ics"}, (changed, deleted)
    again = cal.objects_by_sync_token(sync_token=delta.sync_token, load_objects=False)
    assert len(again) == 0 and not again.deleted_urls


def test_carddav_vcard_round_trip(server):
    book = f"/dav/{ALICE}/contacts/"
    status, _, body = request(
        server,
        "PROPFIND",
        book,
        '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/></D:prop></D:propfind>',
        headers={"Depth": "0"},
    )
    assert status == 207 and "addressbook" in body
    status, headers, _ = request(server, "PUT", book + "carol.vcf", VCARD, headers={"Content-Type": "text/vcard"})
    assert status == 201 and headers.get("etag")
    status, _, body = request(server, "GET", book + "carol.vcf")
    assert status == 200 and "FN:Carol Example" in body and "carol@example.org" in body
    status, _, body = request(
        server,
        "REPORT",
        book,
        '<?xml version="1.0"?><CR:addressbook-query xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav">'
        "<D:prop><D:getetag/><CR:address-data/></D:prop>"
        '<CR:filter><CR:prop-filter name="EMAIL"><CR:text-match collation="i;unicode-casemap" '
        'match-type="contains">carol@</CR:text-match></CR:prop-filter></CR:filter></CR:addressbook-query>',
        headers={"Depth": "1"},
    )
    assert status == 207 and "Carol Example" in body
    status, _, _ = request(server, "DELETE", book + "carol.vcf")
    assert status in (200, 204)
    status, _, _ = request(server, "GET", book + "carol.vcf")
    assert status == 404


def test_other_users_collections_are_refused(server):
    client(server).principal()  # alice's collections exist
    for method, path, body in (
        ("PROPFIND", f"/dav/{ALICE}/", PRINCIPAL_PROPFIND),
        ("PROPFIND", f"/dav/{ALICE}/calendar/", PRINCIPAL_PROPFIND),
        ("GET", f"/dav/{ALICE}/calendar/", None),
        ("PUT", f"/dav/{ALICE}/calendar/intruder.ics", event("intruder", 3)),
        ("DELETE", f"/dav/{ALICE}/calendar/", None),
        ("PROPFIND", f"/dav/{BOB}/../{ALICE}/calendar/", PRINCIPAL_PROPFIND),
    ):
        status, _, answer = request(server, method, path, body, user=BOB, password=BOB_PW, headers={"Depth": "1"})
        assert status in (403, 404), (method, path, status)
        assert "ev-" not in answer
    # the root lists only bob's own principal
    status, _, answer = request(server, "PROPFIND", "/dav/", PRINCIPAL_PROPFIND, BOB, BOB_PW, {"Depth": "1"})
    assert status == 207 and ALICE not in answer
    status, _, _ = request(server, "GET", f"/dav/{ALICE}/calendar/intruder.ics")
    assert status == 404


def test_wrong_password_and_anonymous_are_refused(server):
    status, headers, _ = request(server, "PROPFIND", f"/dav/{ALICE}/", PRINCIPAL_PROPFIND, password="wrong")
    assert status == 401 and "basic" in headers.get("www-authenticate", "").lower()
    status, _, _ = request(server, "PROPFIND", f"/dav/{ALICE}/", PRINCIPAL_PROPFIND, user=None)
    assert status == 401
    with pytest.raises(caldav_error.AuthorizationError):
        client(server, ALICE, "wrong").principal()
    for bad in ("Basic !!!notbase64", "Basic " + base64.b64encode(b"no-colon").decode(), "Basic /w=="):
        status, _, _ = request(
            server, "PROPFIND", "/dav/", PRINCIPAL_PROPFIND, user=None, headers={"Authorization": bad}
        )
        assert status == 401, bad
    assert re.search(r"dav login failed ip=127\.0\.0\.1 account=alice@test\.example", server.log())


def test_bad_input_gets_protocol_errors(server):
    cal = f"/dav/{ALICE}/calendar/"
    client(server).principal()
    big = event("big", 5, "x" * (2 * 1024 * 1024))
    status, _, body = request(server, "PUT", cal + "big.ics", big, headers={"Content-Type": "text/calendar"})
    assert status == 403 and "max-resource-size" in body and "urn:ietf:params:xml:ns:caldav" in body
    status, _, body = request(
        server, "PUT", f"/dav/{ALICE}/contacts/big.vcf", VCARD.replace("FN:", "NOTE:" + "y" * 2_000_000 + "\r\nFN:")
    )
    assert status == 403 and "max-resource-size" in body and "urn:ietf:params:xml:ns:carddav" in body
    status, _, _ = request(server, "PUT", cal + "huge.ics", b"x" * (11 * 1024 * 1024))
    assert status == 413
    assert chunked_put(server, cal + "chunked.ics", 11 * 1024 * 1024) == 413
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        '<D:propfind xmlns:D="DAV:"><D:prop><D:displayname>&lol2;</D:displayname></D:prop></D:propfind>'
    )
    status, _, _ = request(server, "PROPFIND", cal, bomb, headers={"Depth": "0"})
    assert status == 400
    status, _, _ = request(server, "REPORT", cal, "<not xml", headers={"Depth": "1"})
    assert status == 400
    status, _, _ = request(server, "PUT", cal + "broken.ics", "BEGIN:VCALENDAR\nthis is not\n")
    assert status == 400
    status, _, _ = request(server, "PUT", cal + "..%2f..%2fescape.ics", event("escape", 4))
    assert status in (201, 400, 403, 404)
    status, _, _ = request(server, "GET", f"/dav/{ALICE}/calendar/escape.ics")
    assert status in (200, 404)
    # the server is still answering
    status, _, _ = request(server, "PROPFIND", cal, PRINCIPAL_PROPFIND, headers={"Depth": "0"})
    assert status == 207
    assert Path(server.data_dir / "dav.sqlite3").exists()
