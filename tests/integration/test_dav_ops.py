"""DAV operations against a real ``gk serve``: default collections for every user (made at start,
without importing Radicale), shared calendars found by members with the python ``caldav`` library
in their own home set, and ``gk dav list|export|import|share`` beside the running server.
"""

from __future__ import annotations

import datetime as dt
import json
import tarfile
import time
import urllib.parse

import caldav
import pytest
from caldav.lib import error as caldav_error
from support.gkserver import GKServer, gk

from gk import claim

ALICE, ALICE_PW = "alice@ops.example", "alice password 1"
BOB, BOB_PW = "bob@ops.example", "bob password 1"
CAROL, CAROL_PW = "carol@ops.example", "carol password 1"
pytestmark = pytest.mark.filterwarnings("ignore:Unverified HTTPS request")
NO_MAIL = {"smtp": {"port": 0, "submission_port": 0, "submissions_port": 0}, "imap": {"port": 0, "tls_port": 0}}

EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//GK//dav ops test//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
    "DTSTAMP:20260101T000000Z\r\nDTSTART:202604{day:02d}T090000Z\r\nDTEND:202604{day:02d}T100000Z\r\n"
    "SUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
VCARD = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\nEND:VCARD\r\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = GKServer(tmp_path_factory.mktemp("davops") / "gk", NO_MAIL)
    srv.write_config()
    for address, password in ((ALICE, ALICE_PW), (BOB, BOB_PW), (CAROL, CAROL_PW)):
        srv.add_user(address, password)
    claim.claim(srv.data_dir, "test")
    claim.complete(srv.data_dir)
    srv.start()
    yield srv
    srv.stop()


def client(srv: GKServer, user: str, password: str) -> caldav.DAVClient:
    return caldav.DAVClient(
        url=f"https://127.0.0.1:{srv.port('http.https_port')}/dav/",
        username=user,
        password=password,
        ssl_verify_cert=False,
        enable_rfc6764=False,
    )


def dav(srv: GKServer, *args: str, check: bool = True):  # type: ignore[no-untyped-def]
    return gk(srv.data_dir, "dav", *args, check=check)


def test_defaults_exist_at_start_without_loading_radicale(server):
    deadline = time.monotonic() + 60
    while True:
        out = dav(server, "list", CAROL).stdout
        if "calendar" in out or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    names = sorted(line.split("\t")[0] for line in out.splitlines())
    assert names == ["calendar", "contacts", "tasks"], out
    assert "Tasks" in out and "address book" in out
    # made in plain SQL by gk serve: Radicale is still not imported (its ~18 MB only on first use)
    assert "loading Radicale" not in server.log()
    assert dav(server, "list", "nobody@ops.example", check=False).returncode == 1


def test_shared_calendar_is_found_by_members_only(server):
    alice = client(server, ALICE, ALICE_PW).principal()
    alice.calendar(name="Calendar").save_event(EVENT.format(uid="alice-1", day=3, summary="dentist"))
    out = dav(server, "share", ALICE, "calendar", f"{BOB}=rw").stdout
    assert f"{BOB} (rw)" in out
    assert f"shared with {BOB} (rw)" in dav(server, "list", ALICE).stdout
    assert f"{ALICE}/calendar\tshared with you (rw)" in dav(server, "list", BOB).stdout
    # bob's client finds alice's calendar in his own home set, next to his own ones
    bob = client(server, BOB, BOB_PW).principal()
    urls = {urllib.parse.unquote(str(c.url)).split("/dav/", 1)[1]: c for c in bob.calendars()}
    assert set(urls) == {f"{BOB}/calendar/", f"{BOB}/tasks/", f"{ALICE}/calendar/"}, urls
    shared = urls[f"{ALICE}/calendar/"]
    assert [str(e.icalendar_component["SUMMARY"]) for e in shared.events()] == ["dentist"]
    shared.save_event(EVENT.format(uid="bob-in-alice", day=4, summary="added by bob"))
    assert str(alice.calendar(name="Calendar").event_by_uid("bob-in-alice").icalendar_component["SUMMARY"]) == (
        "added by bob"
    )
    # a member writes items, never deletes the owner's calendar
    with pytest.raises(caldav_error.DAVError):
        shared.delete()
    assert alice.calendar(name="Calendar").event_by_uid("alice-1")
    # carol, not a member, neither sees nor reads it
    carol = client(server, CAROL, CAROL_PW).principal()
    assert all(ALICE not in urllib.parse.unquote(str(c.url)) for c in carol.calendars())
    with pytest.raises(caldav_error.DAVError):
        caldav.Calendar(client=client(server, CAROL, CAROL_PW), url=shared.url).events()
    # read-only: bob reads, cannot write; then no share at all
    dav(server, "share", ALICE, "calendar", f"{BOB}=r")
    assert [e.icalendar_component["UID"] for e in shared.events()]
    with pytest.raises(caldav_error.DAVError):
        shared.save_event(EVENT.format(uid="bob-2", day=5, summary="refused"))
    dav(server, "share", ALICE, "calendar")
    assert all(ALICE not in urllib.parse.unquote(str(c.url)) for c in bob.calendars())
    with pytest.raises(caldav_error.DAVError):
        shared.events()
    assert dav(server, "share", ALICE, "nope", f"{BOB}=rw", check=False).returncode == 1
    assert dav(server, "share", ALICE, "calendar", "ghost@ops.example=rw", check=False).returncode == 1


def test_export_import_round_trip_is_idempotent(server, tmp_path):
    alice = client(server, ALICE, ALICE_PW).principal()
    cal = alice.calendar(name="Calendar")
    for day in range(10, 15):
        cal.save_event(EVENT.format(uid=f"trip-{day}", day=day, summary=f"trip {day}"))
    conn = client(server, ALICE, ALICE_PW)
    for i in range(3):  # the address book through plain PUTs
        resp = conn.put(
            f"https://127.0.0.1:{server.port('http.https_port')}/dav/{ALICE}/contacts/c{i}.vcf",
            VCARD.format(uid=f"card-{i}", name=f"Person {i}"),
            {"Content-Type": "text/vcard"},
        )
        assert resp.status == 201
    archive = tmp_path / "alice.tar.gz"
    out = dav(server, "export", ALICE, str(archive)).stdout
    assert "exported 3 collection(s)" in out
    with tarfile.open(archive) as tar:
        files = {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers()}  # type: ignore[union-attr]
    assert set(files) == {"calendar.ics", "tasks.ics", "contacts.vcf", "collections.json"}
    assert files["calendar.ics"].count("BEGIN:VEVENT") >= 5 and files["calendar.ics"].count("BEGIN:VCALENDAR") == 1
    assert files["contacts.vcf"].count("BEGIN:VCARD") == 3
    assert json.loads(files["collections.json"])["tasks"]["C:supported-calendar-component-set"] == "VTODO"
    # into carol's account: the same objects, found by her client; a second import changes nothing
    out = dav(server, "import", CAROL, str(archive)).stdout
    assert "0 replaced" in out and "added" in out
    again = dav(server, "import", CAROL, str(archive)).stdout
    assert "0 added, 0 replaced" in again, again
    carol = client(server, CAROL, CAROL_PW).principal()
    week = carol.calendar(name="Calendar").search(
        start=dt.datetime(2026, 4, 10), end=dt.datetime(2026, 4, 15), event=True, expand=False
    )
    assert sorted(str(e.icalendar_component["UID"]) for e in week) == [f"trip-{d}" for d in range(10, 15)]
    # a changed event in the source replaces carol's copy in place (same UID, same href)
    directory = tmp_path / "dir"
    dav(server, "export", ALICE, str(directory))
    text = (directory / "calendar.ics").read_text().replace("SUMMARY:trip 12", "SUMMARY:trip twelve")
    (directory / "calendar.ics").write_text(text)
    out = dav(server, "import", CAROL, str(directory)).stdout
    assert "0 added, 1 replaced" in out, out
    ev = carol.calendar(name="Calendar").event_by_uid("trip-12")
    assert str(ev.icalendar_component["SUMMARY"]) == "trip twelve"
    assert str(ev.url).endswith("trip-12.ics")
    # broken input: an error message, nothing half-imported
    (tmp_path / "broken.ics").write_text("BEGIN:VCALENDAR\nthis is not\n")
    result = dav(server, "import", CAROL, str(tmp_path / "broken.ics"), check=False)
    assert result.returncode == 1 and "not valid iCalendar" in result.stderr
    assert "broken" not in dav(server, "list", CAROL).stdout


def raw(
    srv: GKServer, method: str, path: str, body: str = "", user: str | None = None, password: str = "", **headers: str
):  # type: ignore[no-untyped-def]
    import base64
    import http.client
    import ssl

    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # the self-signed device certificate
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port("http.https_port"), context=ctx, timeout=60)
    hdrs = {k.replace("_", "-"): v for k, v in headers.items()}
    if body:
        hdrs.setdefault("Content-Type", "application/xml; charset=utf-8")
    if user:
        hdrs["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    try:
        conn.request(method, path, body=body.encode() if body else None, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def responses(body: str) -> dict[str, str]:
    """href -> that response's XML, of a 207 multistatus."""
    import xml.etree.ElementTree as ET

    out = {}
    for resp in ET.fromstring(body).iter("{DAV:}response"):
        out[urllib.parse.unquote(resp.findtext("{DAV:}href") or "")] = ET.tostring(resp, encoding="unicode")
    return out


# what DAVx5 4.x sends (DavResourceFinder, then the collection list of its account refresh)
DAVX5_START = (
    '<?xml version="1.0" encoding="UTF-8"?><propfind xmlns="DAV:" xmlns:CAL="urn:ietf:params:xml:ns:caldav" '
    'xmlns:CARD="urn:ietf:params:xml:ns:carddav"><prop><resourcetype/><displayname/><current-user-principal/>'
    "<CAL:calendar-home-set/><CARD:addressbook-home-set/></prop></propfind>"
)
DAVX5_HOME = (
    '<?xml version="1.0" encoding="UTF-8"?><propfind xmlns="DAV:" xmlns:CAL="urn:ietf:params:xml:ns:caldav" '
    'xmlns:CARD="urn:ietf:params:xml:ns:carddav" xmlns:A="http://apple.com/ns/ical/" '
    'xmlns:CS="http://calendarserver.org/ns/"><prop><resourcetype/><displayname/><owner/>'
    "<current-user-privilege-set/><A:calendar-color/><CAL:calendar-description/><CAL:calendar-timezone/>"
    "<CAL:supported-calendar-component-set/><CARD:addressbook-description/><CARD:supported-address-data/>"
    "<CS:getctag/><sync-token/></prop></propfind>"
)
# iOS/macOS (accountsd): the server root first, then the principal
IOS_ROOT = (
    '<?xml version="1.0" encoding="UTF-8"?><A:propfind xmlns:A="DAV:"><A:prop><A:current-user-principal/>'
    "<A:principal-URL/><A:resourcetype/></A:prop></A:propfind>"
)
IOS_PRINCIPAL = (
    '<?xml version="1.0" encoding="UTF-8"?><A:propfind xmlns:A="DAV:" xmlns:B="urn:ietf:params:xml:ns:caldav" '
    'xmlns:C="http://calendarserver.org/ns/"><A:prop><B:calendar-home-set/><B:calendar-user-address-set/>'
    "<A:current-user-principal/><A:displayname/><C:dropbox-home-URL/><C:email-address-set/>"
    "<B:schedule-inbox-URL/><B:schedule-outbox-URL/><A:principal-collection-set/></A:prop></A:propfind>"
)
# Thunderbird 115 (CalDavDetector): the URL it was given, Depth 0
THUNDERBIRD = (
    '<?xml version="1.0" encoding="UTF-8"?><D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" '
    'xmlns:CS="http://calendarserver.org/ns/"><D:prop><D:resourcetype/><D:owner/><D:displayname/>'
    "<D:current-user-principal/><D:current-user-privilege-set/><D:supported-report-set/>"
    "<C:supported-calendar-component-set/><CS:getctag/><C:calendar-home-set/></D:prop></D:propfind>"
)


def test_discovery_as_davx5_ios_and_thunderbird_do(server):
    dav(server, "share", ALICE, "calendar", f"{BOB}=r")
    # DAVx5: well-known, unauthenticated first (a redirect, then 401 asking for Basic)
    for well_known in ("/.well-known/caldav", "/.well-known/carddav"):
        status, headers, _ = raw(server, "PROPFIND", well_known, DAVX5_START, Depth="0")
        assert status == 301 and headers["location"].endswith("/dav/")
    status, headers, _ = raw(server, "PROPFIND", "/dav/", DAVX5_START, Depth="0")
    assert status == 401 and "basic" in headers["www-authenticate"].lower()
    status, _, body = raw(server, "PROPFIND", "/dav/", DAVX5_START, BOB, BOB_PW, Depth="0")
    assert (
        status == 207
        and f"<D:href>/dav/{BOB.replace('@', '%40')}/</D:href>" in body.replace("ns0:", "D:")
        or (f"/dav/{BOB}/" in urllib.parse.unquote(body))
    )
    status, _, body = raw(server, "PROPFIND", f"/dav/{BOB}/", DAVX5_START, BOB, BOB_PW, Depth="0")
    found = urllib.parse.unquote(body)
    # both home sets on the one principal URL
    assert status == 207 and found.count(f"/dav/{BOB}/") >= 3 and "calendar-home-set" in found
    assert "addressbook-home-set" in found
    status, _, body = raw(server, "PROPFIND", f"/dav/{BOB}/", DAVX5_HOME, BOB, BOB_PW, Depth="1")
    assert status == 207
    listed = responses(body)
    assert set(listed) == {
        f"/dav/{BOB}/",
        f"/dav/{BOB}/calendar/",
        f"/dav/{BOB}/tasks/",
        f"/dav/{BOB}/contacts/",
        f"/dav/{ALICE}/calendar/",
    }, sorted(listed)
    assert "VTODO" in listed[f"/dav/{BOB}/tasks/"] and "addressbook" in listed[f"/dav/{BOB}/contacts/"]
    assert "sync-token" in listed[f"/dav/{BOB}/calendar/"] and "getctag" in listed[f"/dav/{BOB}/calendar/"]
    own, shared = listed[f"/dav/{BOB}/calendar/"], listed[f"/dav/{ALICE}/calendar/"]
    # DAVx5 shows a calendar shared read-only as read-only: no write privilege on it
    privileges = shared.split("current-user-privilege-set")[1]  # between its start and end tags
    assert "read" in privileges and "write" not in privileges, privileges
    assert "write" in own.split("current-user-privilege-set")[1]
    # iOS: the server root, then the principal
    status, headers, _ = raw(server, "PROPFIND", "/", IOS_ROOT, BOB, BOB_PW, Depth="0")
    assert status == 301 and headers["location"].endswith("/dav/")
    status, _, body = raw(server, "PROPFIND", "/dav/", IOS_ROOT, BOB, BOB_PW, Depth="0")
    assert status == 207 and f"/dav/{BOB}/" in urllib.parse.unquote(body)
    status, _, body = raw(server, "PROPFIND", f"/dav/{BOB}/", IOS_PRINCIPAL, BOB, BOB_PW, Depth="0")
    found = urllib.parse.unquote(body)
    assert status == 207 and f"/dav/{BOB}/" in found.split("calendar-home-set", 1)[1]
    # the principal's href, its calendar home set and its calendar-user-address-set (Radicale gives
    # the principal URL there, no mailto: iOS then offers no invitations, a known Radicale limit)
    assert found.count(f"/dav/{BOB}/") >= 3
    # Thunderbird: Depth 0 on the URL it was given, then its calendars
    status, _, body = raw(server, "PROPFIND", f"/dav/{BOB}/calendar/", THUNDERBIRD, BOB, BOB_PW, Depth="0")
    found = urllib.parse.unquote(body)
    assert status == 207 and "VEVENT" in found and "calendar-query" in found and f"/dav/{BOB}/" in found
    status, _, body = raw(server, "PROPFIND", f"/dav/{ALICE}/calendar/", THUNDERBIRD, CAROL, CAROL_PW, Depth="0")
    assert status in (403, 404) and "dentist" not in body
    dav(server, "share", ALICE, "calendar")


MULTIGET = (
    '<?xml version="1.0"?><C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
    "<D:prop><D:getetag/><C:calendar-data/></D:prop>{hrefs}</C:calendar-multiget>"
)


def test_bad_input_never_crashes_nor_leaks(server):
    alice_cal, bob_cal = f"/dav/{ALICE}/calendar/", f"/dav/{BOB}/calendar/"
    status, _, _ = raw(
        server,
        "PUT",
        alice_cal + "secret.ics",
        EVENT.format(uid="secret-1", day=20, summary="alice secret"),
        ALICE,
        ALICE_PW,
        Content_Type="text/calendar",
    )
    assert status == 201
    # malformed vCard, a vCard in a calendar, an event without UID-bearing component: 400/403/415
    status, _, answer = raw(
        server, "PUT", f"/dav/{BOB}/contacts/x.vcf", "BEGIN:VCARD\r\nFN:x\r\n", BOB, BOB_PW, Content_Type="text/vcard"
    )
    assert status == 403 and "valid-address-data" in answer  # RFC 6352 §6.3.2.1
    status, _, _ = raw(
        server,
        "PUT",
        bob_cal + "card.ics",
        VCARD.format(uid="c", name="n"),
        BOB,
        BOB_PW,
        Content_Type="text/vcard",
    )
    assert status in (400, 403, 409, 415)
    # external entities and entity expansion in request bodies: refused before any parsing
    for body in (
        '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        '<D:propfind xmlns:D="DAV:"><D:prop><D:displayname>&x;</D:displayname></D:prop></D:propfind>',
        '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><C:calendar-query xmlns:D="DAV:" '
        'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop>&c;</D:prop></C:calendar-query>',
        '<?xml version="1.0" encoding="UTF-16"?>\0<\0!\0D\0O\0C\0T\0Y\0P\0E\0 x []>',
    ):
        status, _, answer = raw(server, "REPORT", bob_cal, body, BOB, BOB_PW, Depth="1")
        assert status == 400 and "root:" not in answer
    # hrefs naming another user's objects inside bob's own REPORT: no data of alice's
    hrefs = "".join(
        f"<D:href>{h}</D:href>"
        for h in (
            alice_cal + "secret.ics",
            bob_cal + "../../" + ALICE + "/calendar/secret.ics",
            f"/dav/{BOB}/calendar/%2e%2e/%2e%2e/{ALICE}/calendar/secret.ics",
            f"https://evil.example/dav/{ALICE}/calendar/secret.ics",
        )
    )
    status, _, answer = raw(server, "REPORT", bob_cal, MULTIGET.format(hrefs=hrefs), BOB, BOB_PW, Depth="1")
    assert status in (207, 400, 403) and "alice secret" not in answer and "secret-1" not in answer
    # path tricks in the request line and in MOVE/COPY destinations
    for path in (
        f"/dav/{BOB}/calendar/../../{ALICE}/calendar/secret.ics",
        f"/dav/{BOB}/calendar/%2e%2e/%2e%2e/{ALICE}/calendar/secret.ics",
        f"/dav/{BOB}/calendar/..%2f..%2f{ALICE}%2fcalendar%2fsecret.ics",
        f"/dav//{ALICE}/calendar/secret.ics",
        f"/dav/{ALICE.upper()}/calendar/secret.ics",
    ):
        status, _, answer = raw(server, "GET", path, "", BOB, BOB_PW)
        assert status in (400, 403, 404) and "alice secret" not in answer, (path, status)
    status, _, _ = raw(
        server,
        "PUT",
        bob_cal + "mine.ics",
        EVENT.format(uid="bob-mine", day=21, summary="bob's"),
        BOB,
        BOB_PW,
        Content_Type="text/calendar",
    )
    assert status == 201
    for dest in (
        f"https://127.0.0.1:{server.port('http.https_port')}{alice_cal}planted.ics",
        f"{alice_cal}planted.ics",
        f"/dav/{BOB}/calendar/../../{ALICE}/calendar/planted.ics",
    ):
        status, _, _ = raw(server, "MOVE", bob_cal + "mine.ics", "", BOB, BOB_PW, Destination=dest)
        assert status in (400, 403, 404, 409, 502), (dest, status)
    status, _, _ = raw(server, "MOVE", alice_cal + "secret.ics", "", BOB, BOB_PW, Destination=bob_cal + "stolen.ics")
    assert status in (403, 404)
    status, _, answer = raw(server, "GET", alice_cal + "planted.ics", "", ALICE, ALICE_PW)
    assert status == 404
    status, _, answer = raw(server, "GET", alice_cal + "secret.ics", "", ALICE, ALICE_PW)
    assert status == 200 and "alice secret" in answer
    # a sync token of alice's calendar used on bob's: refused with the DAV precondition
    status, _, body = raw(
        server,
        "REPORT",
        alice_cal,
        '<?xml version="1.0"?><D:sync-collection xmlns:D="DAV:"><D:sync-token/><D:sync-level>1</D:sync-level>'
        "<D:prop><D:getetag/></D:prop></D:sync-collection>",
        ALICE,
        ALICE_PW,
        Depth="1",
    )
    token = body.split("sync-token>")[1].split("<")[0]
    status, _, body = raw(
        server,
        "REPORT",
        bob_cal,
        '<?xml version="1.0"?><D:sync-collection xmlns:D="DAV:"><D:sync-token>'
        + token
        + "</D:sync-token><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>",
        BOB,
        BOB_PW,
        Depth="1",
    )
    assert status in (403, 409) and "valid-sync-token" in body and "secret" not in body
    # still answering, and nothing above was an unhandled error
    status, _, _ = raw(server, "PROPFIND", bob_cal, DAVX5_HOME, BOB, BOB_PW, Depth="0")
    assert status == 207
    # (Radicale logs refused input as warnings with their traceback: those are answered errors)
    assert '" 500 ' not in server.log() and "An exception occurred" not in server.log()


def test_move_and_copy_into_another_users_calendar_only_when_shared_writable(server):
    """RFC 4918 §9.8/§9.9 with the rights of a PUT at the destination: Bob's MOVE or COPY of his
    event into Alice's calendar is 403 unless she shares it with him read-write; shared so, the
    COPY (Radicale had none: 405) and the MOVE land there and her calendar's sync token moves;
    read-only, both are refused and nothing moves."""
    alice = client(server, ALICE, ALICE_PW).principal()
    alice.make_calendar(name="Shared trips", cal_id="cp-shared")
    shared, mine = f"/dav/{ALICE}/cp-shared/", f"/dav/{BOB}/calendar/"
    for name in ("bob-cp", "bob-mv"):
        status, _, _ = raw(
            server, "PUT", mine + f"{name}.ics", EVENT.format(uid=name, day=20, summary=name), BOB, BOB_PW
        )
        assert status == 201, name

    def bob(method: str, name: str) -> int:
        return raw(server, method, mine + f"{name}.ics", "", BOB, BOB_PW, Destination=shared + f"{name}.ics")[0]

    def alice_has(name: str) -> bool:
        return raw(server, "GET", shared + f"{name}.ics", "", ALICE, ALICE_PW)[0] == 200

    for rights in ("", f"{BOB}=r"):
        dav(server, "share", ALICE, "cp-shared", *([rights] if rights else []))
        assert bob("COPY", "bob-cp") == 403, rights
        assert bob("MOVE", "bob-mv") == 403, rights
        assert not alice_has("bob-cp") and not alice_has("bob-mv")
    assert raw(server, "GET", mine + "bob-mv.ics", "", BOB, BOB_PW)[0] == 200
    dav(server, "share", ALICE, "cp-shared", f"{BOB}=rw")
    assert bob("COPY", "bob-cp") == 201
    assert bob("MOVE", "bob-mv") == 201
    assert alice_has("bob-cp") and alice_has("bob-mv")
    assert raw(server, "GET", mine + "bob-cp.ics", "", BOB, BOB_PW)[0] == 200  # a copy leaves the source
    assert raw(server, "GET", mine + "bob-mv.ics", "", BOB, BOB_PW)[0] == 404
    uids = sorted(str(e.icalendar_component["UID"]) for e in alice.calendar(cal_id="cp-shared").events())
    assert uids == ["bob-cp", "bob-mv"]
    dav(server, "share", ALICE, "cp-shared")
