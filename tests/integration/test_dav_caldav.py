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
import xml.etree.ElementTree as ET
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
SYNC_PAGE = 7
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
    # a small sync page: the caldav library below goes through RFC 6578 truncation by itself
    srv = GKServer(tmp_path_factory.mktemp("dav") / "gk", {**NO_MAIL, "dav": {"sync_page_size": SYNC_PAGE}})
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


def propfind(srv: GKServer, path: str, props: str, depth: str = "0") -> tuple[int, dict[str, str], str]:
    """A PROPFIND of the DAV: ``props`` (e.g. ``<D:sync-token/>``) as Alice."""
    body = f'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>{props}</D:prop></D:propfind>'
    return request(srv, "PROPFIND", path, body, headers={"Depth": depth})


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
    status, _, body = propfind(server, book, "<D:resourcetype/>")
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
    status, _, body = request(server, "PUT", cal + "broken.ics", "BEGIN:VCALENDAR\nthis is not\n")
    assert status == 403 and "valid-calendar-data" in body  # RFC 4791 §5.3.2.1 (Radicale: 400)
    status, _, _ = request(server, "PUT", cal + "..%2f..%2fescape.ics", event("escape", 4))
    assert status in (201, 400, 403, 404)
    status, _, _ = request(server, "GET", f"/dav/{ALICE}/calendar/escape.ics")
    assert status in (200, 404)
    # the server is still answering
    status, _, _ = request(server, "PROPFIND", cal, PRINCIPAL_PROPFIND, headers={"Depth": "0"})
    assert status == 207
    assert Path(server.data_dir / "dav.sqlite3").exists()


CALDAV_NS, CARDDAV_NS = "urn:ietf:params:xml:ns:caldav", "urn:ietf:params:xml:ns:carddav"
CAL_HEAD = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//GK//dav test//EN\r\n"
VTIMEZONE = (
    "BEGIN:VTIMEZONE\r\nTZID:Europe/Paris\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"
    "TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
)


def component(kind: str, uid: str, extra: str = "") -> str:
    when = "DTSTART:20260310T090000Z\r\n" + ("DTEND:20260310T100000Z\r\n" if kind == "VEVENT" else "")
    return f"BEGIN:{kind}\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n{when}SUMMARY:x\r\n{extra}END:{kind}\r\n"


def calendar_of(*parts: str) -> str:
    return CAL_HEAD + "".join(parts) + "END:VCALENDAR\r\n"


def dav_error(body: str) -> list[str]:
    """The preconditions a DAV:error body names, as {namespace}name."""
    root = ET.fromstring(body)
    assert root.tag == "{DAV:}error", body
    return [child.tag for child in root]


def collection_token(srv: GKServer, path: str) -> str:
    status, _, body = propfind(srv, path, "<D:sync-token/>")
    assert status == 207
    token = ET.fromstring(body).find(".//{DAV:}sync-token")
    assert token is not None and token.text
    return token.text


def test_put_of_an_object_the_collection_may_not_hold_is_403_with_its_precondition(server):
    """RFC 4791 §5.3.2.1 and RFC 6352 §6.3.2.1: 403 and a DAV:error naming the precondition;
    nothing stored (the collections' sync tokens do not move). Radicale stores an empty VCALENDAR
    and a VTODO in an events-only calendar with 201, and answers the rest with a bare 400."""
    client(server).principal()
    cal, tasks, book = f"/dav/{ALICE}/calendar/", f"/dav/{ALICE}/tasks/", f"/dav/{ALICE}/contacts/"
    two_cards = VCARD + VCARD.replace("carol-1", "dave-1").replace("Carol", "Dave")
    cases = [
        (cal, "empty.ics", CAL_HEAD + "END:VCALENDAR\r\n", CALDAV_NS, "valid-calendar-object-resource"),
        (cal, "tz-only.ics", calendar_of(VTIMEZONE), CALDAV_NS, "valid-calendar-object-resource"),
        (
            cal,
            "two-uids.ics",
            calendar_of(component("VEVENT", "one"), component("VEVENT", "two")),
            CALDAV_NS,
            "valid-calendar-object-resource",
        ),
        (
            cal,
            "mixed.ics",
            calendar_of(component("VEVENT", "same"), component("VTODO", "same")),
            CALDAV_NS,
            "valid-calendar-object-resource",
        ),
        (
            cal,
            "no-uid.ics",
            calendar_of(component("VEVENT", "x").replace("UID:x\r\n", "")),
            CALDAV_NS,
            "valid-calendar-object-resource",
        ),
        (cal, "todo.ics", calendar_of(component("VTODO", "todo-1")), CALDAV_NS, "supported-calendar-component"),
        (tasks, "event.ics", event("ev-in-tasks", 3), CALDAV_NS, "supported-calendar-component"),
        (cal, "card.ics", VCARD, CALDAV_NS, "valid-calendar-data"),
        (cal, "two-cals.ics", event("a", 3) + event("b", 4), CALDAV_NS, "valid-calendar-data"),
        (
            cal,
            "bad-rule.ics",
            calendar_of(component("VEVENT", "rule", "RRULE:FREQ=SOMETIMES\r\n")),
            CALDAV_NS,
            "valid-calendar-data",
        ),
        (book, "two.vcf", two_cards, CARDDAV_NS, "valid-address-data"),
        (book, "event.vcf", event("ev-in-book", 3), CARDDAV_NS, "valid-address-data"),
        (book, "empty.vcf", "", CARDDAV_NS, "valid-address-data"),
        (book, "no-uid.vcf", VCARD.replace("UID:carol-1\r\n", ""), CARDDAV_NS, "valid-address-data"),
        (book, "garbage.vcf", "BEGIN:VCARD\r\nnot a card\r\n", CARDDAV_NS, "valid-address-data"),
    ]
    before = {path: collection_token(server, path) for path in (cal, tasks, book)}
    for collection, name, body, ns, precondition in cases:
        kind = "text/vcard" if collection == book else "text/calendar"
        status, headers, answer = request(server, "PUT", collection + name, body, headers={"Content-Type": kind})
        assert status == 403, (name, status, answer)
        assert headers.get("content-type", "").startswith("application/xml"), name
        assert dav_error(answer) == ["{" + ns + "}" + precondition], (name, answer)
        assert "etag" not in headers, name
        assert request(server, "GET", collection + name)[0] == 404, name
    assert {path: collection_token(server, path) for path in (cal, tasks, book)} == before
    # what each collection does take still goes in, and a refused PUT replaces nothing
    status, _, _ = request(server, "PUT", cal + "kept.ics", event("kept", 6), headers={"Content-Type": "text/calendar"})
    assert status == 201
    status, _, answer = request(server, "PUT", cal + "kept.ics", CAL_HEAD + "END:VCALENDAR\r\n")
    assert status == 403 and "valid-calendar-object-resource" in answer
    status, _, answer = request(server, "GET", cal + "kept.ics")
    assert status == 200 and "UID:kept" in answer
    status, _, _ = request(server, "PUT", tasks + "todo.ics", calendar_of(component("VTODO", "todo-2")))
    assert status == 201
    assert request(server, "DELETE", cal + "kept.ics")[0] in (200, 204)
    assert request(server, "DELETE", tasks + "todo.ics")[0] in (200, 204)
    # someone who may not write there learns nothing from a precondition: Radicale's own refusal
    status, _, answer = request(
        server, "PUT", cal + "empty.ics", CAL_HEAD + "END:VCALENDAR\r\n", user=BOB, password=BOB_PW
    )
    assert status in (403, 404) and "valid-calendar" not in answer


def test_caldav_library_sees_the_refusals(server):
    """The ``caldav`` client: its save of an object the calendar may not hold fails with the 403
    (the library names it ``AuthorizationError``, "Forbidden"), and nothing is in the calendar."""
    principal = client(server).principal()
    calendar = next(c for c in principal.calendars() if c.url.path.rstrip("/").endswith("/calendar"))
    for text in (
        calendar_of(component("VTODO", "lib-todo")),
        calendar_of(component("VEVENT", "lib-one"), component("VEVENT", "lib-two")),
    ):
        with pytest.raises(caldav_error.AuthorizationError) as refused:
            calendar.save_object(caldav.Event, text)
        assert "Forbidden" in str(refused.value), text
    assert [e for e in calendar.events() if "lib-" in str(e.url)] == []
    assert [t for t in calendar.todos() if "lib-" in str(t.url)] == []


def test_move_or_copy_into_a_collection_that_may_not_hold_the_object_is_403(server):
    """RFC 4791 §5.3.2.1 (and RFC 6352 §6.3.2.1) apply the PUT preconditions to COPY and MOVE: an
    event moved into the tasks-only calendar (Radicale moved it), a vCard into a calendar and an
    event into the address book (Radicale: a bare 403) get 403 with the precondition; nothing is
    moved or copied, no sync token moves. (The caldav library has no MOVE: raw HTTP.)"""
    client(server).principal()
    cal, tasks, book = f"/dav/{ALICE}/calendar/", f"/dav/{ALICE}/tasks/", f"/dav/{ALICE}/contacts/"
    assert (
        request(server, "PUT", cal + "mv-ev.ics", event("mv-ev", 7), headers={"Content-Type": "text/calendar"})[0]
        == 201
    )
    assert request(server, "PUT", book + "mv-card.vcf", VCARD.replace("carol-1", "mv-card"))[0] == 201
    cases = [
        (cal + "mv-ev.ics", tasks + "mv-ev.ics", CALDAV_NS, "supported-calendar-component"),
        (book + "mv-card.vcf", cal + "mv-card.ics", CALDAV_NS, "valid-calendar-data"),
        (cal + "mv-ev.ics", book + "mv-ev.vcf", CARDDAV_NS, "valid-address-data"),
    ]
    before = {path: collection_token(server, path) for path in (cal, tasks, book)}
    for source, target, ns, precondition in cases:
        for method, destination in (("MOVE", target), ("MOVE", base(server) + target), ("COPY", target)):
            status, headers, answer = request(server, method, source, headers={"Destination": destination})
            assert status == 403, (method, source, destination, status, answer)
            assert dav_error(answer) == ["{" + ns + "}" + precondition], (method, source, answer)
            assert request(server, "GET", target)[0] == 404, (method, target)
            assert request(server, "GET", source)[0] == 200, (method, source)
    assert {path: collection_token(server, path) for path in (cal, tasks, book)} == before
    # a move the destination may hold still goes through, and a rename within one calendar
    assert request(server, "MKCALENDAR", f"/dav/{ALICE}/mv-other/")[0] == 201
    status, _, _ = request(server, "MOVE", cal + "mv-ev.ics", headers={"Destination": f"/dav/{ALICE}/mv-other/a.ics"})
    assert status == 201
    status, _, _ = request(
        server, "MOVE", f"/dav/{ALICE}/mv-other/a.ics", headers={"Destination": f"/dav/{ALICE}/mv-other/b.ics"}
    )
    assert status == 201
    status, _, answer = request(server, "GET", f"/dav/{ALICE}/mv-other/b.ics")
    assert status == 200 and "UID:mv-ev" in answer
    # who may not write the destination learns nothing of the object: Radicale's own answer
    status, _, answer = request(
        server, "MOVE", book + "mv-card.vcf", user=BOB, password=BOB_PW, headers={"Destination": cal + "x.ics"}
    )
    assert status in (403, 404) and "valid-" not in answer
    assert request(server, "DELETE", f"/dav/{ALICE}/mv-other/")[0] in (200, 204)
    assert request(server, "DELETE", book + "mv-card.vcf")[0] in (200, 204)


def test_an_object_with_a_method_property_is_refused(server):
    """RFC 4791 §4.1: a calendar object resource MUST NOT specify METHOD (an iTIP message is not a
    stored event). Radicale stored it with 201; now 403 ``valid-calendar-object-resource``, nothing
    stored, no sync token moves, through raw HTTP and the ``caldav`` library alike."""
    principal = client(server).principal()
    cal = f"/dav/{ALICE}/calendar/"
    before = collection_token(server, cal)
    for method in ("REQUEST", "PUBLISH"):
        body = event(f"with-{method}", 9).replace("VERSION:2.0\n", f"VERSION:2.0\nMETHOD:{method}\n")
        status, headers, answer = request(server, "PUT", cal + f"with-{method}.ics", body)
        assert status == 403, (method, status, answer)
        assert dav_error(answer) == ["{" + CALDAV_NS + "}valid-calendar-object-resource"], answer
        assert request(server, "GET", cal + f"with-{method}.ics")[0] == 404
    calendar = next(c for c in principal.calendars() if c.url.path.rstrip("/").endswith("/calendar"))
    with pytest.raises(caldav_error.AuthorizationError):
        calendar.save_object(
            caldav.Event, event("lib-method", 9).replace("VERSION:2.0\n", "VERSION:2.0\nMETHOD:PUBLISH\n")
        )
    assert collection_token(server, cal) == before
    # the same event without it goes in
    status, _, _ = request(server, "PUT", cal + "no-method.ics", event("no-method", 9))
    assert status == 201
    assert request(server, "DELETE", cal + "no-method.ics")[0] in (200, 204)


def uid_conflict(answer: str, name: str = "no-uid-conflict", ns: str = CALDAV_NS) -> str:
    """The href a 403 ``no-uid-conflict`` (RFC 4791 §5.3.2.1) names."""
    root = ET.fromstring(answer)
    element = root.find("{" + ns + "}" + name)
    assert root.tag == "{DAV:}error" and element is not None, answer
    return urllib.parse.unquote(element.findtext("{DAV:}href") or "")


def sync_changes(srv: GKServer, path: str, token: str) -> dict[str, int]:
    """href name -> status of the changes since ``token`` (one page)."""
    return sync_page(srv, path, token, None)[1]


def test_put_of_a_uid_held_under_another_name_is_403_naming_it(server):
    """RFC 4791 §5.3.2.1 / RFC 6352 §6.3.2.1 ``no-uid-conflict`` on a PUT, as on a MOVE or COPY: 403
    with the ``DAV:href`` of the object that holds the UID, or of the object of another UID it
    would overwrite (Radicale: a bare 409 without it); nothing stored."""
    client(server).principal()
    cal, book = f"/dav/{ALICE}/calendar/", f"/dav/{ALICE}/contacts/"
    assert request(server, "PUT", cal + "held.ics", event("held", 15))[0] == 201
    assert request(server, "PUT", cal + "other.ics", event("other", 15))[0] == 201
    assert request(server, "PUT", book + "held.vcf", VCARD.replace("carol-1", "held-card"))[0] == 201
    token = collection_token(server, cal)
    status, _, answer = request(server, "PUT", cal + "again.ics", event("held", 16))
    assert status == 403 and uid_conflict(answer) == cal + "held.ics", (status, answer)
    status, _, answer = request(server, "PUT", cal + "other.ics", event("held", 16))
    assert status == 403 and uid_conflict(answer) == cal + "other.ics", (status, answer)
    status, _, answer = request(server, "PUT", book + "again.vcf", VCARD.replace("carol-1", "held-card"))
    assert status == 403 and uid_conflict(answer, ns=CARDDAV_NS) == book + "held.vcf", (status, answer)
    assert request(server, "GET", cal + "again.ics")[0] == 404
    assert "UID:other" in request(server, "GET", cal + "other.ics")[2]
    assert collection_token(server, cal) == token
    for path in (cal + "held.ics", cal + "other.ics", book + "held.vcf"):
        assert request(server, "DELETE", path)[0] in (200, 204), path


def test_move_within_and_between_calendars_follows_rfc_4918_and_4791(server):
    """RFC 4918 §9.9 and §10.6, RFC 4791 §5.3.2.1 for MOVE, a rename within one calendar included:
    ``Overwrite: F`` onto an existing object is 412; no Overwrite means T, and overwriting an
    object of another UID is 403 ``no-uid-conflict`` naming it (Radicale took a missing Overwrite
    as F: 412, and answered the conflicts with a bare 409); the object onto itself is 403; a rename
    moves the sync token (the old name deleted, the new one changed); onto an object of the same UID
    in another calendar, no Overwrite replaces it (204)."""
    client(server).principal()
    cal, other = f"/dav/{ALICE}/calendar/", f"/dav/{ALICE}/ren-other/"
    assert request(server, "MKCALENDAR", other)[0] == 201
    for path, uid in ((cal + "ren-a.ics", "ren-a"), (cal + "ren-b.ics", "ren-b"), (other + "x.ics", "ren-b")):
        assert request(server, "PUT", path, event(uid, 11))[0] == 201, path
    token = collection_token(server, cal)

    def move(source: str, destination: str, **headers: str) -> tuple[int, str]:
        status, _, answer = request(server, "MOVE", source, headers={"Destination": destination, **headers})
        return status, answer

    assert move(cal + "ren-a.ics", cal + "ren-b.ics", Overwrite="F")[0] == 412
    for headers in ({}, {"Overwrite": "T"}):
        status, answer = move(cal + "ren-a.ics", cal + "ren-b.ics", **headers)
        assert status == 403 and uid_conflict(answer) == cal + "ren-b.ics", (headers, status, answer)
    status, answer = move(cal + "ren-a.ics", base(server) + cal + "ren-a.ics")
    assert status == 403, (status, answer)
    assert move(cal + "ren-a.ics", cal + "ren-c.ics", Overwrite="maybe")[0] == 400
    assert "UID:ren-a" in request(server, "GET", cal + "ren-a.ics")[2]
    assert "UID:ren-b" in request(server, "GET", cal + "ren-b.ics")[2]
    assert collection_token(server, cal) == token  # nothing refused moved it
    # the rename itself
    assert move(cal + "ren-a.ics", cal + "ren-c.ics")[0] == 201
    assert request(server, "GET", cal + "ren-a.ics")[0] == 404
    assert "UID:ren-a" in request(server, "GET", cal + "ren-c.ics")[2]
    assert sync_changes(server, cal, token) == {"ren-a.ics": 404, "ren-c.ics": 200}
    # between calendars: the UID under another name in the destination, then the same UID replaced
    status, answer = move(other + "x.ics", cal + "ren-y.ics")
    assert status == 403 and uid_conflict(answer) == cal + "ren-b.ics", (status, answer)
    other_token = collection_token(server, other)
    assert move(other + "x.ics", cal + "ren-b.ics")[0] == 204
    assert request(server, "GET", other + "x.ics")[0] == 404
    assert sync_changes(server, other, other_token) == {"x.ics": 404}
    for path in (cal + "ren-b.ics", cal + "ren-c.ics", other):
        assert request(server, "DELETE", path)[0] in (200, 204), path


def test_copy_makes_a_new_object_at_the_destination(server):
    """RFC 4918 §9.8 for calendar objects and vCards (Radicale answered 405 to every COPY): a new
    resource at the destination (201; 204 over an object of the same UID; 412 with
    ``Overwrite: F``), the destination's sync token moves and the source's does not; a UID already
    in the destination collection (always so within one collection) is 403 ``no-uid-conflict``
    naming the object that holds it (RFC 4791 §5.3.2.1, RFC 6352 §6.3.2.1); a scheduling object
    copied into its owner's calendars is 403 ``unique-scheduling-object-resource`` (RFC 6638
    §3.2.4.1); another user's calendar is refused as a PUT there is; the caldav library sees the
    copy."""
    principal = client(server).principal()
    cal, other, book = f"/dav/{ALICE}/calendar/", f"/dav/{ALICE}/cp-other/", f"/dav/{ALICE}/contacts/"
    assert request(server, "MKCALENDAR", other)[0] == 201
    assert request(server, "PUT", cal + "cp-a.ics", event("cp-a", 12, "copied"))[0] == 201
    tokens = {path: collection_token(server, path) for path in (cal, other)}

    def copy(source: str, destination: str, **headers: str) -> tuple[int, dict[str, str], str]:
        return request(server, "COPY", source, headers={"Destination": destination, **headers})

    status, headers, answer = copy(cal + "cp-a.ics", other + "cp-b.ics")
    assert status == 201, (status, answer)
    assert headers.get("etag")
    assert "UID:cp-a" in request(server, "GET", other + "cp-b.ics")[2]
    assert "UID:cp-a" in request(server, "GET", cal + "cp-a.ics")[2]
    assert collection_token(server, cal) == tokens[cal]
    assert sync_changes(server, other, tokens[other]) == {"cp-b.ics": 200}
    copied = caldav.Calendar(client=client(server), url=base(server) + other)
    assert [str(e.icalendar_component["SUMMARY"]) for e in copied.events()] == ["copied"]
    # again: Overwrite F refuses, none (T) replaces the object of the same UID
    assert copy(cal + "cp-a.ics", other + "cp-b.ics", Overwrite="F")[0] == 412
    assert copy(cal + "cp-a.ics", base(server) + other + "cp-b.ics")[0] == 204
    # a UID the destination collection holds under another name; the source onto itself
    status, _, answer = copy(cal + "cp-a.ics", other + "cp-c.ics")
    assert status == 403 and uid_conflict(answer) == other + "cp-b.ics", (status, answer)
    status, _, answer = copy(cal + "cp-a.ics", cal + "cp-c.ics")
    assert status == 403 and uid_conflict(answer) == cal + "cp-a.ics", (status, answer)
    assert copy(cal + "cp-a.ics", cal + "cp-a.ics")[0] == 403
    assert request(server, "GET", cal + "cp-c.ics")[0] == 404
    assert request(server, "GET", other + "cp-c.ics")[0] == 404
    # an object of another UID under the destination name is not overwritten
    assert request(server, "PUT", cal + "cp-d.ics", event("cp-d", 13))[0] == 201
    status, _, answer = copy(cal + "cp-d.ics", other + "cp-b.ics")
    assert status == 403 and uid_conflict(answer) == other + "cp-b.ics", (status, answer)
    # missing source, missing collection, no Destination, another server
    assert copy(cal + "cp-none.ics", other + "cp-e.ics")[0] == 404
    assert copy(cal + "cp-d.ics", f"/dav/{ALICE}/no-such/cp-e.ics")[0] == 409
    assert request(server, "COPY", cal + "cp-d.ics")[0] == 400
    assert copy(cal + "cp-d.ics", "https://elsewhere.example" + other + "cp-e.ics")[0] == 502
    # another user's calendar: refused, nothing told, nothing written
    status, _, answer = copy(cal + "cp-d.ics", f"/dav/{BOB}/calendar/cp-d.ics")
    assert status == 403 and "uid" not in answer
    assert request(server, "GET", f"/dav/{BOB}/calendar/cp-d.ics", user=BOB, password=BOB_PW)[0] == 404
    status, _, _ = request(
        server,
        "COPY",
        cal + "cp-d.ics",
        user=BOB,
        password=BOB_PW,
        headers={"Destination": f"/dav/{BOB}/calendar/x.ics"},
    )
    assert status == 403
    # a scheduling object: one per UID in its owner's calendars
    organized = event("cp-org", 14).replace("SUMMARY:", f"ORGANIZER:mailto:{ALICE}\nSUMMARY:")
    assert request(server, "PUT", cal + "cp-org.ics", organized)[0] == 201
    status, _, answer = copy(cal + "cp-org.ics", other + "cp-org.ics")
    assert status == 403, (status, answer)
    assert uid_conflict(answer, "unique-scheduling-object-resource") == cal + "cp-org.ics"
    # a vCard within its address book: the UID is taken
    assert request(server, "PUT", book + "cp-card.vcf", VCARD.replace("carol-1", "cp-card"))[0] == 201
    status, _, answer = request(server, "COPY", book + "cp-card.vcf", headers={"Destination": book + "cp-card2.vcf"})
    assert status == 403 and uid_conflict(answer, ns=CARDDAV_NS) == book + "cp-card.vcf", (status, answer)
    assert principal
    for path in (cal + "cp-a.ics", cal + "cp-d.ics", cal + "cp-org.ics", book + "cp-card.vcf", other):
        assert request(server, "DELETE", path)[0] in (200, 204), path


SYNC_REPORT = (
    '<?xml version="1.0" encoding="utf-8"?><D:sync-collection xmlns:D="DAV:">'
    "<D:sync-token>{token}</D:sync-token><D:sync-level>1</D:sync-level>{limit}"
    "<D:prop><D:getetag/></D:prop></D:sync-collection>"
)


def sync_page(srv: GKServer, path: str, token: str, nresults: int | None) -> tuple[str, dict[str, int], bool]:
    """One raw sync-collection REPORT: (new token, href name -> status, truncated with a 507)."""
    limit = f"<D:limit><D:nresults>{nresults}</D:nresults></D:limit>" if nresults is not None else ""
    status, _, body = request(srv, "REPORT", path, SYNC_REPORT.format(token=token, limit=limit), headers={"Depth": "1"})
    assert status == 207, (status, body)
    root = ET.fromstring(body)
    new_token = root.findtext("{DAV:}sync-token") or ""
    found: dict[str, int] = {}
    truncated = False
    for response in root.findall("{DAV:}response"):
        href = urllib.parse.unquote(response.findtext("{DAV:}href") or "")
        statuses = [int(s.text.split()[1]) for s in response.iter("{DAV:}status") if s.text]
        if href.rstrip("/") == urllib.parse.unquote(path).rstrip("/"):
            assert statuses == [507] and response.find("{DAV:}error/{DAV:}number-of-matches-within-limits") is not None
            truncated = True
            continue
        found[href.rsplit("/", 1)[1]] = statuses[0]
    return new_token, found, truncated


def test_sync_collection_is_paged_with_507_and_continues_from_its_token(server):
    """RFC 6578 §3.6/§3.7 over raw HTTP: DAV:limit cuts an initial sync and a delta into pages, each
    but the last with a 507 for the request-URI and a token the next request continues from;
    following the tokens yields every member and every change exactly once. nresults 0: 403."""
    path = f"/dav/{ALICE}/paging/"
    status, _, _ = request(server, "MKCALENDAR", path)
    assert status == 201
    for i in range(12):
        status, _, _ = request(
            server, "PUT", f"{path}p{i}.ics", event(f"p{i}", i + 1), headers={"Content-Type": "text/calendar"}
        )
        assert status == 201
    token, seen, pages = "", [], 0
    while True:
        token, found, truncated = sync_page(server, path, token, 5)
        assert len(found) <= 5 and all(s == 200 for s in found.values())
        seen += list(found)
        pages += 1
        if not truncated:
            break
    assert sorted(seen) == sorted(f"p{i}.ics" for i in range(12)) and pages == 3, (seen, pages)
    # changes after the last token: one deleted, one changed, two added; pages of 3 (server page 7)
    assert request(server, "DELETE", f"{path}p3.ics")[0] in (200, 204)
    request(server, "PUT", f"{path}p4.ics", event("p4", 5, "changed"), headers={"Content-Type": "text/calendar"})
    for name in ("q1", "q2"):
        request(server, "PUT", f"{path}{name}.ics", event(name, 20), headers={"Content-Type": "text/calendar"})
    changes: dict[str, int] = {}
    token, found, truncated = sync_page(server, path, token, 3)
    assert truncated and len(found) == 3
    changes.update(found)
    token, found, truncated = sync_page(server, path, token, 3)
    assert not truncated and len(found) == 1
    changes.update(found)
    assert changes == {"p3.ics": 404, "p4.ics": 200, "q1.ics": 200, "q2.ics": 200}, changes
    assert sync_page(server, path, token, 3)[1:] == ({}, False)
    # without DAV:limit the server's own page (7) applies
    _, found, truncated = sync_page(server, path, "", None)
    assert truncated and len(found) == SYNC_PAGE
    status, _, body = request(
        server,
        "REPORT",
        path,
        SYNC_REPORT.format(token="", limit="<D:limit><D:nresults>0</D:nresults></D:limit>"),
        headers={"Depth": "1"},
    )
    assert status == 403 and "number-of-matches-within-limits" in body


def test_caldav_library_follows_truncated_sync_pages(server):
    """The python caldav library (3.6) follows the 507 pages by itself: an initial sync of 17 events
    (server page 7) and a delta of 9 changes come back whole."""
    cal = client(server, BOB, BOB_PW).principal().make_calendar(name="Many", cal_id="many")
    for i in range(17):
        cal.save_event(event(f"many-{i}", i % 28 + 1))
    first = cal.objects_by_sync_token(load_objects=False)
    assert len({str(o.url) for o in first}) == 17 and not getattr(first, "truncated", False)
    for i in range(8):
        cal.event_by_uid(f"many-{i}").delete()
    cal.save_event(event("many-new", 27))
    delta = cal.objects_by_sync_token(sync_token=first.sync_token, load_objects=False)
    deleted = {str(u).rsplit("/", 1)[1] for u in delta.deleted_urls}
    changed = {str(o.url).rsplit("/", 1)[1] for o in delta} - deleted
    assert deleted == {f"many-{i}.ics" for i in range(8)} and changed == {"many-new.ics"}, (deleted, changed)
    again = cal.objects_by_sync_token(sync_token=delta.sync_token, load_objects=False)
    assert len(again) == 0 and not again.deleted_urls


FREEBUSY = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//GK//dav test//EN\r
METHOD:REQUEST\r
BEGIN:VFREEBUSY\r
UID:fb-1\r
DTSTAMP:20260101T000000Z\r
DTSTART:20260420T000000Z\r
DTEND:20260427T000000Z\r
ORGANIZER:mailto:{organizer}\r
{attendees}END:VFREEBUSY\r
END:VCALENDAR\r
"""
CAL = "{urn:ietf:params:xml:ns:caldav}"


def freebusy(
    srv: GKServer, organizer: str, attendees: list[str], user: str = ALICE, pw: str = ALICE_PW, box: str = ALICE
):
    body = FREEBUSY.format(organizer=organizer, attendees="".join(f"ATTENDEE:mailto:{a}\r\n" for a in attendees))
    return request(
        srv,
        "POST",
        f"/dav/{box}/schedule-outbox/",
        body,
        user=user,
        password=pw,
        headers={"Content-Type": "text/calendar; charset=utf-8"},
    )


def test_principal_names_its_scheduling_inbox_and_outbox(server):
    """RFC 6638 §2.1/§2.2: schedule-inbox-URL and schedule-outbox-URL on the principal, through the
    caldav library (as iOS/macOS ask); the inbox and outbox answer PROPFIND as scheduling
    collections, the inbox with schedule-default-calendar-URL; another user's are refused."""
    principal = client(server).principal()
    inbox, outbox = principal.schedule_inbox(), principal.schedule_outbox()
    assert urllib.parse.unquote(str(inbox.url)).endswith(f"/dav/{ALICE}/schedule-inbox/")
    assert urllib.parse.unquote(str(outbox.url)).endswith(f"/dav/{ALICE}/schedule-outbox/")
    status, _, body = request(
        server,
        "PROPFIND",
        f"/dav/{ALICE}/schedule-inbox/",
        '<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        "<D:prop><D:resourcetype/><C:schedule-default-calendar-URL/><D:getlastmodified/></D:prop></D:propfind>",
        headers={"Depth": "0"},
    )
    assert status == 207, body
    root = ET.fromstring(body)
    assert root.find(f".//{{DAV:}}resourcetype/{CAL}schedule-inbox") is not None
    default = root.findtext(f".//{CAL}schedule-default-calendar-URL/{{DAV:}}href") or ""
    assert urllib.parse.unquote(default).endswith(f"/dav/{ALICE}/calendar/"), body
    missing = [p for p in root.iter("{DAV:}propstat") if "404" in (p.findtext("{DAV:}status") or "")]
    assert missing and missing[0].find("{DAV:}prop/{DAV:}getlastmodified") is not None
    status, _, body = request(server, "PROPFIND", f"/dav/{ALICE}/schedule-outbox/", headers={"Depth": "0"})
    assert status == 207 and "schedule-outbox" in body
    for path in (f"/dav/{BOB}/schedule-inbox/", f"/dav/{BOB}/schedule-outbox/"):
        assert request(server, "PROPFIND", path, headers={"Depth": "0"})[0] == 403
    assert request(server, "PROPFIND", f"/dav/{ALICE}/schedule-inbox/", user=None)[0] == 401
    status, headers, _ = request(server, "OPTIONS", f"/dav/{ALICE}/calendar/")
    assert status == 200 and "calendar-auto-schedule" in headers["dav"] and "calendar-access" in headers["dav"]


def test_outbox_answers_free_busy_for_local_users(server):
    """RFC 6638 §5: a VFREEBUSY REQUEST POSTed to the organizer's outbox gets a schedule-response
    with each local attendee's busy time in the asked week (a recurring event expanded, a
    transparent one left out), 3.7 for an address outside the box; wrong organizer, another user's
    outbox, a non-freebusy message and malformed iCalendar are refused with their preconditions."""
    bob_cal = client(server, BOB, BOB_PW).principal().calendar(name="Calendar")
    bob_cal.save_event(EVENT.format(uid="fb-busy", start="20260421T090000Z", end="20260421T103000Z", summary="dentist"))
    bob_cal.save_event(
        EVENT.format(uid="fb-daily", start="20260401T070000Z", end="20260401T073000Z", summary="standup").replace(
            "SUMMARY:standup", "SUMMARY:standup\nRRULE:FREQ=WEEKLY;COUNT=10"
        )
    )
    bob_cal.save_event(
        EVENT.format(uid="fb-free", start="20260422T120000Z", end="20260422T130000Z", summary="lunch?").replace(
            "SUMMARY:lunch?", "SUMMARY:lunch?\nTRANSP:TRANSPARENT"
        )
    )
    status, headers, body = freebusy(server, ALICE, [BOB, "nobody@elsewhere.example"])
    assert status == 200 and headers["content-type"].startswith("application/xml"), body
    root = ET.fromstring(body)
    answers = {
        urllib.parse.unquote(r.findtext(f"{CAL}recipient/{{DAV:}}href") or ""): r
        for r in root.findall(f"{CAL}response")
    }
    assert set(answers) == {f"mailto:{BOB}", "mailto:nobody@elsewhere.example"}
    assert (answers["mailto:nobody@elsewhere.example"].findtext(f"{CAL}request-status") or "").startswith("3.7")
    bob = answers[f"mailto:{BOB}"]
    assert (bob.findtext(f"{CAL}request-status") or "").startswith("2.0")
    reply = (bob.findtext(f"{CAL}calendar-data") or "").replace("\r\n", "\n")
    busy = sorted(line for line in reply.splitlines() if line.startswith("FREEBUSY"))
    assert busy == [
        "FREEBUSY;FBTYPE=BUSY:20260421T090000Z/20260421T103000Z",
        "FREEBUSY;FBTYPE=BUSY:20260422T070000Z/20260422T073000Z",  # the weekly standup, 4th week
    ], reply
    assert "METHOD:REPLY" in reply and f"ATTENDEE:mailto:{BOB}" in reply and "UID:fb-1" in reply
    assert "dentist" not in reply  # busy times only, never what
    status, _, body = freebusy(server, BOB, [ALICE])
    assert status == 403 and "organizer-allowed" in body
    status, _, body = freebusy(server, BOB, [ALICE], user=BOB, pw=BOB_PW)
    assert status == 403  # Bob asking through Alice's outbox
    status, _, body = request(
        server,
        "POST",
        f"/dav/{ALICE}/schedule-outbox/",
        "BEGIN:VCALENDAR\r\nthis is not\r\n",
        headers={"Content-Type": "text/calendar"},
    )
    assert status == 400 and "valid-calendar-data" in body
    invite = event("not-fb", 3).replace("VERSION:2.0", "VERSION:2.0\nMETHOD:REQUEST")
    status, _, body = request(
        server, "POST", f"/dav/{ALICE}/schedule-outbox/", invite, headers={"Content-Type": "text/calendar"}
    )
    assert status == 403 and "valid-scheduling-message" in body, body
