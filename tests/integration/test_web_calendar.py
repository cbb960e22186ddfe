"""The web calendar and contacts against a real ``gk serve`` over HTTPS, checked with the python
``caldav`` client at ``/dav/``: an event or contact made in the web is what CalDAV/CardDAV
clients see, and one PUT by a client is on the web page; recurrence, all-day, time zones,
reminders; another user's event or contact is a 404; forms need the CSRF token; import of
.ics/.vcf (malformed files refused and nothing changed) and export.
"""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse

import caldav
import pytest
from support.gkserver import NO_MAIL, GKServer
from test_web_http import Client

ALICE, ALICE_PW = "alice@test.example", "alice password 1"
BOB, BOB_PW = "bob@test.example", "bob password 1"
pytestmark = pytest.mark.filterwarnings("ignore:Unverified HTTPS request")

ICS = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//test//EN\r
BEGIN:VEVENT\r
UID:imported-1@test\r
DTSTAMP:20260101T000000Z\r
DTSTART:20260310T140000Z\r
DTEND:20260310T150000Z\r
SUMMARY:Imported meeting\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:imported-2@test\r
DTSTAMP:20260101T000000Z\r
DTSTART;VALUE=DATE:20260312\r
DTEND;VALUE=DATE:20260313\r
SUMMARY:Imported holiday\r
END:VEVENT\r
END:VCALENDAR\r
"""

VCF = """BEGIN:VCARD\r
VERSION:3.0\r
UID:dave-1\r
FN:Dave Imported\r
N:Imported;Dave;;;\r
EMAIL;TYPE=INTERNET:dave@example.org\r
X-PHONE-SPECIFIC:kept\r
END:VCARD\r
BEGIN:VCARD\r
VERSION:4.0\r
UID:erin-1\r
FN:Erin Four\r
TEL;TYPE=cell:+1 555 0100\r
END:VCARD\r
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = GKServer(tmp_path_factory.mktemp("webcal") / "gk", NO_MAIL)
    srv.claimed({ALICE: ALICE_PW, BOB: BOB_PW}, timezone="Europe/Paris").start()
    yield srv
    srv.stop()


def web(srv: GKServer, user: str = ALICE, password: str = ALICE_PW) -> Client:
    c = Client(srv, https=True)
    c.login(user, password)
    c.get("/calendar")  # the session's CSRF token (a new session at login)
    return c


def dav(srv: GKServer, user: str = ALICE, password: str = ALICE_PW) -> caldav.DAVClient:
    return caldav.DAVClient(
        url=f"https://127.0.0.1:{srv.port('http.https_port')}/dav/",
        username=user,
        password=password,
        ssl_verify_cert=False,
        enable_rfc6764=False,
    )


def calendar_of(srv: GKServer, user: str = ALICE, password: str = ALICE_PW) -> caldav.Calendar:
    return dav(srv, user, password).calendar(url=f"/dav/{user}/calendar/")


def event_links(page: str) -> list[tuple[str, str]]:
    out = []
    for m in re.findall(r'href="/calendar/event\?cal=([^&"]+)&amp;href=([^"]+)"', page):
        out.append((urllib.parse.unquote(m[0]), urllib.parse.unquote(m[1])))
    return out


def new_event(c: Client, **fields: str):
    form = {
        "cal": f"{ALICE}/calendar",
        "href": "",
        "etag": "",
        "title": "x",
        "start_date": "2026-03-16",
        "start_time": "09:00",
        "end_date": "2026-03-16",
        "end_time": "10:00",
        "timezone": "Europe/Paris",
        "location": "",
        "description": "",
        "repeat": "",
        "repeat_end": "never",
        "count": "",
        "until": "",
        "reminder": "",
        "attendees": "",
        "custom_rule": "",
    }
    form.update(fields)
    return c.post("/calendar/event", form)


def test_first_visit_creates_defaults_and_shows_today(server):
    c = web(server)
    resp, page = c.get("/calendar")
    assert resp.status == 200, page
    assert 'aria-current="date"' in page  # today is highlighted
    assert "Times in Europe/Paris" in page
    # the default collections exist for DAV clients too
    names = {cal.get_display_name() for cal in dav(server).principal().calendars()}
    assert {"Calendar", "Tasks"} <= names
    for view in ("week", "agenda"):
        resp, page = c.get(f"/calendar?view={view}&date=2026-03-16")
        assert resp.status == 200
    # odd URLs get a page, never an error: the last month there is, year 1, garbage
    for query in ("date=9999-12-31", "view=week&date=0001-01-01", "date=2026-13-45&view=<script>"):
        resp, page = c.get(f"/calendar?{query}")
        assert resp.status == 200 and "<script>" not in page
    # a second visit is idempotent (no duplicate collections)
    c.get("/calendar")
    assert len(dav(server).principal().calendars()) == 2


def test_web_event_is_seen_by_caldav_with_zone_recurrence_and_alarm(server):
    c = web(server)
    c.get("/calendar/event?date=2026-03-16")
    resp, page = new_event(
        c,
        title="Piano lesson",
        location="Music school",
        repeat="WEEKLY",
        repeat_end="count",
        count="4",
        reminder="15",
        attendees="bob@test.example",
    )
    assert resp.status == 303, page
    cal = calendar_of(server)
    found = cal.search(start=dt.datetime(2026, 3, 1), end=dt.datetime(2026, 5, 1), event=True, expand=True)
    starts = sorted(
        e.icalendar_component["dtstart"].dt for e in found if "Piano" in str(e.icalendar_component["summary"])
    )
    # four weekly occurrences at 09:00 Paris time (08:00 UTC before 29 March, 07:00 after)
    assert [s.astimezone(dt.UTC).strftime("%m-%d %H:%M") for s in starts] == [
        "03-16 08:00",
        "03-23 08:00",
        "03-30 07:00",
        "04-06 07:00",
    ]
    raw = [e for e in cal.events() if "Piano" in e.data][0].data
    assert "TZID=Europe/Paris" in raw and "BEGIN:VTIMEZONE" in raw
    assert "TRIGGER:-PT15M" in raw and "mailto:bob@test.example" in raw and "LOCATION:Music school" in raw
    # with attendees, the user organizes it: the DAV scheduler mails invitations only then
    assert f"ORGANIZER:mailto:{ALICE}" in raw.replace("\r\n ", "")
    # the web month view shows all occurrences (expanded), at the local time; the first view
    # after the save says it once
    assert "Saved “Piano lesson” (" in c.get("/calendar")[1]
    _, page = c.get("/calendar?view=month&date=2026-03-16")
    assert page.count("Piano lesson") == 3  # 16, 23, 30 March
    _, page = c.get("/calendar?view=month&date=2026-04-01")
    assert page.count("Piano lesson") >= 1 and "09:00" in page
    # one occurrence deleted from the web: an EXDATE, the three others stay for CalDAV
    _, page = c.get("/calendar?view=agenda&date=2026-03-23")
    link = re.search(r'href="(/calendar/event\?[^"]*occ=20260323T080000Z)"', page).group(1).replace("&amp;", "&")
    _, form = c.get(link)
    assert "whole series" in form and 'id="skip-occurrence"' in form
    fields = dict(
        re.findall(r'<input type="hidden" name="(cal|href|etag|occ)" value="([^"]*)"', form.split("/event/skip")[1])
    )
    fields["etag"] = fields["etag"].replace("&#34;", '"')
    resp, _ = c.post("/calendar/event/skip", fields)
    assert resp.status == 303
    found = cal.search(start=dt.datetime(2026, 3, 1), end=dt.datetime(2026, 5, 1), event=True, expand=True)
    days = sorted(
        e.icalendar_component["dtstart"].dt.day for e in found if "Piano" in str(e.icalendar_component["summary"])
    )
    assert days == [6, 16, 30]  # 16 and 30 March, 6 April
    # one occurrence moved from the web: an override (RECURRENCE-ID) the CalDAV expansion shows
    _, page = c.get("/calendar?view=agenda&date=2026-03-30")
    link = re.search(r'href="(/calendar/event\?[^"]*occ=20260330T070000Z)"', page).group(1).replace("&amp;", "&")
    _, form = c.get(link)
    assert 'id="occurrence-note"' in form and 'value="2026-03-30"' in form and 'name="repeat"' not in form
    etag = re.search(r'name="etag" value="([^"]+)"', form).group(1).replace("&#34;", '"')
    href = re.search(r'name="href" value="([^"]+)"', form).group(1)
    resp, page = new_event(
        c,
        href=href,
        etag=etag,
        occ="20260330T070000Z",
        title="Piano lesson (moved)",
        location="Music school",
        start_date="2026-03-31",
        end_date="2026-03-31",
        start_time="17:00",
        end_time="18:00",
        reminder="15",
        attendees="bob@test.example",
    )
    assert resp.status == 303, page
    found = cal.search(start=dt.datetime(2026, 3, 1), end=dt.datetime(2026, 5, 1), event=True, expand=True)
    got = sorted(
        (
            e.icalendar_component["dtstart"].dt.astimezone(dt.UTC).strftime("%m-%d %H:%M"),
            str(e.icalendar_component["summary"]),
        )
        for e in found
        if "Piano" in str(e.icalendar_component["summary"])
    )
    assert got == [
        ("03-16 08:00", "Piano lesson"),
        ("03-31 15:00", "Piano lesson (moved)"),
        ("04-06 07:00", "Piano lesson"),
    ]
    raw = [e for e in cal.events() if "Piano" in e.data][0].data
    assert "RECURRENCE-ID;TZID=Europe/Paris:20260330T090000" in raw and "RRULE:FREQ=WEEKLY;COUNT=4" in raw
    _, page = c.get("/calendar?view=week&date=2026-03-30")
    assert "Piano lesson (moved)" in page and "17:00" in page


def test_caldav_event_shown_in_web_and_edit_keeps_unknown_properties(server):
    cal = calendar_of(server)
    cal.save_event(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//phone//EN\r\nBEGIN:VEVENT\r\nUID:phone-1@test\r\n"
        "DTSTAMP:20260101T000000Z\r\nDTSTART:20260318T170000Z\r\nDTEND:20260318T180000Z\r\n"
        "SUMMARY:From the phone\r\nX-PHONE-COLOR:teal\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    c = web(server)
    _, page = c.get("/calendar?view=week&date=2026-03-18")
    assert "From the phone" in page and "18:00" in page  # 17:00 UTC is 18:00 in Paris
    cal_path, href = [link for link in event_links(page) if "phone-1" in link[1]][0]
    resp, form = c.get(f"/calendar/event?cal={urllib.parse.quote(cal_path)}&href={urllib.parse.quote(href)}")
    assert resp.status == 200 and 'value="From the phone"' in form
    etag = re.search(r'name="etag" value="([^"]+)"', form).group(1).replace("&#34;", '"')
    resp, _ = new_event(
        c,
        href=href,
        etag=etag,
        title="From the phone, renamed",
        start_date="2026-03-18",
        end_date="2026-03-18",
        start_time="18:00",
        end_time="19:30",
    )
    assert resp.status == 303
    raw = cal.event_by_uid("phone-1@test").data
    assert "SUMMARY:From the phone\\, renamed" in raw and "X-PHONE-COLOR:teal" in raw
    # a stale etag (the phone changed it meanwhile) is refused, nothing overwritten
    resp, page = new_event(c, href=href, etag='"stale"', title="Lost update")
    assert resp.status == 200 and "changed elsewhere" in page
    assert "Lost update" not in cal.event_by_uid("phone-1@test").data
    # delete from the web: gone for CalDAV
    etag = [e for e in cal.events() if "phone-1" in e.data]
    resp, _ = c.get(f"/calendar/event?cal={urllib.parse.quote(cal_path)}&href={urllib.parse.quote(href)}")
    _, form = c.get(f"/calendar/event?cal={urllib.parse.quote(cal_path)}&href={urllib.parse.quote(href)}")
    etag = re.search(r'name="etag" value="([^"]+)"', form).group(1).replace("&#34;", '"')
    resp, _ = c.post("/calendar/event/delete", {"cal": cal_path, "href": href, "etag": etag})
    assert resp.status == 303
    assert not [e for e in cal.events() if "phone-1" in e.data]


def _skip_or_delete_fields(form: str, action: str) -> dict[str, str]:
    fields = dict(re.findall(r'<input type="hidden" name="(cal|href|etag|occ)" value="([^"]*)"', form.split(action)[1]))
    fields["etag"] = fields["etag"].replace("&#34;", '"')
    return fields


def test_an_invitation_deleted_in_the_web_is_declined(server):
    """Bob deletes from his web calendar one occurrence of alice's weekly invitation, then the
    whole event: as from a CalDAV client (RFC 6638 §3.2.2), alice's copy gets bob DECLINED for
    that occurrence, then for the series. The Accept/Decline buttons are not the only answer."""
    alice = web(server)
    resp, _ = new_event(
        alice, title="Standup", start_date="2026-05-04", end_date="2026-05-04", repeat="WEEKLY",
        repeat_end="count", count="3", attendees=BOB,
    )  # fmt: skip
    assert resp.status == 303
    uid = [e for e in calendar_of(server).events() if "Standup" in e.data][0].icalendar_component["uid"]
    _, page = alice.get("/calendar?view=agenda&date=2026-05-04")
    own = re.search(r'href="(/calendar/event\?[^"]*occ=20260504T070000Z)"', page).group(1).replace("&amp;", "&")
    assert 'id="invitation-note"' not in alice.get(own)[1]  # her own event
    assert "Standup" in calendar_of(server, BOB, BOB_PW).event_by_uid(uid).data  # bob's copy
    bob = web(server, BOB, BOB_PW)
    _, page = bob.get("/calendar?view=agenda&date=2026-05-11")
    link = re.search(r'href="(/calendar/event\?[^"]*occ=20260511T070000Z)"', page).group(1).replace("&amp;", "&")
    _, form = bob.get(link)
    assert 'id="invitation-note"' in form and f"An invitation from {ALICE}" in form  # he is told
    resp, _ = bob.post("/calendar/event/skip", _skip_or_delete_fields(form, "/event/skip"))
    assert resp.status == 303
    data = calendar_of(server).event_by_uid(uid).data.replace("\r\n ", "")
    series, _, override = data.partition("RECURRENCE-ID")
    bob_in = [line for line in override.splitlines() if BOB in line and line.startswith("ATTENDEE")]
    assert "20260511T070000Z" in override and bob_in and "PARTSTAT=DECLINED" in bob_in[0], data
    assert "PARTSTAT=DECLINED" not in "".join(line for line in series.splitlines() if BOB in line)
    _, form = bob.get(link.split("&occ=")[0])
    resp, _ = bob.post("/calendar/event/delete", _skip_or_delete_fields(form, "/event/delete"))
    assert resp.status == 303
    data = calendar_of(server).event_by_uid(uid).data.replace("\r\n ", "")
    series = data.partition("RECURRENCE-ID")[0]
    assert "PARTSTAT=DECLINED" in "".join(line for line in series.splitlines() if BOB in line), data


def test_all_day_event_and_bad_form(server):
    c = web(server)
    resp, page = new_event(c, title="Holiday", all_day="1", start_date="2026-03-20", end_date="2026-03-22")
    assert resp.status == 303, page
    raw = [e for e in calendar_of(server).events() if "Holiday" in e.data][0].data
    assert "DTSTART;VALUE=DATE:20260320" in raw and "DTEND;VALUE=DATE:20260323" in raw
    assert "Saved “Holiday” (" in c.get("/calendar")[1]  # all day: no time said
    _, page = c.get("/calendar?view=week&date=2026-03-20")
    assert page.count("Holiday") == 3  # Friday to Sunday, the exclusive DTEND not shown
    resp, page = new_event(c, title="", start_date="2026-03-20")
    assert resp.status == 200 and "Give the event a title." in page
    resp, page = new_event(c, title="Backwards", end_date="2026-03-15")
    assert resp.status == 200 and "ends before it starts" in page
    resp, page = new_event(c, title="Bad zone", timezone="Mars/Olympus")
    assert resp.status == 200 and "Unknown time zone." in page


def test_other_users_event_and_contact_are_404(server):
    alice = web(server)
    new_event(alice, title="Alice private")
    _, page = alice.get("/calendar?view=week&date=2026-03-16")
    cal_path, href = [link for link in event_links(page)][0]
    bob = web(server, BOB, BOB_PW)
    q = f"cal={urllib.parse.quote(cal_path)}&href={urllib.parse.quote(href)}"
    resp, page = bob.get(f"/calendar/event?{q}")
    assert resp.status == 404 and "Alice private" not in page
    resp, _ = bob.post("/calendar/event/delete", {"cal": cal_path, "href": href, "etag": ""})
    assert resp.status == 404
    resp, _ = new_event(bob, cal=cal_path, title="Bob writes into Alice")
    assert resp.status == 404
    resp, page = bob.get(f"/calendar/export?cal={urllib.parse.quote(cal_path)}")
    assert resp.status == 404 and "Alice private" not in page
    _, page = bob.get("/calendar?view=week&date=2026-03-16")
    assert "Alice private" not in page
    assert [e for e in calendar_of(server).events() if "Alice private" in e.data]
    # contacts: Alice's card is not Bob's to see, edit or delete
    resp, _ = alice.post("/contacts/edit", contact_form(given="Secret", family="Friend"))
    assert resp.status == 303
    loc = urllib.parse.urlparse(resp.headers["Location"])
    resp, page = bob.get(f"/contacts/contact?{loc.query}")
    assert resp.status == 404 and "Secret" not in page
    resp, page = bob.get(f"/contacts/edit?{loc.query}")
    assert resp.status == 404
    args = urllib.parse.parse_qs(loc.query)
    resp, _ = bob.post("/contacts/delete", {"book": args["book"][0], "href": args["href"][0], "etag": ""})
    assert resp.status == 404
    _, page = bob.get("/contacts?q=Secret")
    assert "Secret Friend" not in page
    _, page = alice.get("/contacts?q=secret")
    assert "Secret Friend" in page


def test_forms_need_the_csrf_token(server):
    c = web(server)
    c.get("/calendar")
    token = c.csrf
    c.csrf = "forged"
    resp, _ = new_event(c, title="Forged")
    assert resp.status == 403
    c.csrf = "forged"  # (the error page carried the real token)
    resp, _ = c.post("/contacts/edit", contact_form(given="Forged"))
    assert resp.status == 403
    c.csrf = token
    assert not [e for e in calendar_of(server).events() if "Forged" in e.data]


def contact_form(**fields: str) -> dict[str, str]:
    form = {
        "book": f"{ALICE}/contacts",
        "href": "",
        "etag": "",
        "given": "",
        "family": "",
        "org": "",
        "email_type": "home",
        "email": "",
        "phone_type": "cell",
        "phone": "",
        "street": "",
        "code": "",
        "city": "",
        "region": "",
        "country": "",
        "birthday": "",
        "note": "",
    }
    form.update(fields)
    return form


def carddav_get(srv: GKServer, path: str) -> str:
    client = dav(srv)
    resp = client.request(f"https://127.0.0.1:{srv.port('http.https_port')}{path}")
    return resp.raw if isinstance(resp.raw, str) else resp.raw.decode()


def test_contact_created_in_web_is_a_vcard_for_carddav(server):
    c = web(server)
    c.get("/contacts/edit")
    resp, page = c.post(
        "/contacts/edit",
        contact_form(
            given="Carol",
            family="Martin",
            email="carol@example.org",
            phone="+33 6 12 34 56 78",
            street="1 rue de la Paix",
            code="75002",
            city="Paris",
            country="France",
            birthday="1990-05-17",
            note="Met at the conference",
        ),
    )
    assert resp.status == 303, page
    args = urllib.parse.parse_qs(urllib.parse.urlparse(resp.headers["Location"]).query)
    card = carddav_get(server, f"/dav/{args['book'][0]}/{args['href'][0]}")
    assert "FN:Carol Martin" in card and "N:Martin;Carol" in card and "carol@example.org" in card
    assert "VERSION:3.0" in card and "BDAY:1990-05-17" in card and "Paris" in card and "TEL;TYPE=CELL" in card
    _, page = c.get("/contacts?q=carol")
    assert "Carol Martin" in page
    _, page = c.get("/contacts?q=612345")  # digits of the phone number, spaces ignored
    assert "Carol Martin" in page
    _, page = c.get("/contacts?q=nobody-like-this")
    assert "Carol Martin" not in page
    resp, page = c.post("/contacts/edit", contact_form(given="Bad", email="not an address"))
    assert resp.status == 200 and "is not an email address" in page


def test_import_and_export(server):
    c = web(server)
    _, page = c.get("/calendar")
    resp, page = c.post_multipart("/calendar/import", {"cal": f"{ALICE}/calendar"}, [("file", "cal.ics", ICS.encode())])
    assert resp.status == 303, page
    assert "imported=2" in resp.headers["Location"]
    raws = [e.data for e in calendar_of(server).events()]
    assert any("Imported meeting" in r for r in raws) and any("Imported holiday" in r for r in raws)
    # the same file again updates, it does not duplicate
    resp, _ = c.post_multipart("/calendar/import", {"cal": f"{ALICE}/calendar"}, [("file", "cal.ics", ICS.encode())])
    assert "imported=0&updated=2" in resp.headers["Location"]
    before = sorted(e.data for e in calendar_of(server).events())
    # a malformed file is refused with a message, and nothing is written (not even its good half)
    bad = ICS.replace("imported-1", "half-1").replace(
        "SUMMARY:Imported holiday\r\n", "SUMMARY:x\r\nDTSTART:garbage\r\n"
    )
    resp, page = c.post_multipart("/calendar/import", {"cal": f"{ALICE}/calendar"}, [("file", "bad.ics", bad.encode())])
    assert resp.status == 400 and "not imported" in page and "Nothing was changed." in page
    resp, page = c.post_multipart(
        "/calendar/import", {"cal": f"{ALICE}/calendar"}, [("file", "c.ics", b"\x00\x01 not a calendar")]
    )
    assert resp.status == 400
    resp, page = c.post_multipart("/calendar/import", {"cal": f"{ALICE}/calendar"}, [("file", "c.ics", VCF.encode())])
    assert resp.status == 400 and "not an iCalendar" in page
    # events into the task list: refused (its supported component set is VTODO)
    resp, page = c.post_multipart("/calendar/import", {"cal": f"{ALICE}/tasks"}, [("file", "c.ics", ICS.encode())])
    assert resp.status == 400 and "does not hold this kind of entry (VEVENT)" in page
    assert sorted(e.data for e in calendar_of(server).events()) == before
    # export: one VCALENDAR with every event
    resp, text = c.get(f"/calendar/export?cal={urllib.parse.quote(ALICE + '/calendar')}")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/calendar")
    assert text.startswith("BEGIN:VCALENDAR") and "Imported meeting" in text and "Imported holiday" in text
    # contacts
    resp, page = c.post_multipart("/contacts/import", {"book": f"{ALICE}/contacts"}, [("file", "c.vcf", VCF.encode())])
    assert resp.status == 303, page
    _, page = c.get("/contacts")
    assert "Dave Imported" in page and "Erin Four" in page
    resp, page = c.post_multipart("/contacts/import", {"book": f"{ALICE}/contacts"}, [("file", "c.vcf", ICS.encode())])
    assert resp.status == 400 and "not a vCard" in page
    resp, text = c.get(f"/contacts/export?book={urllib.parse.quote(ALICE + '/contacts')}")
    assert resp.status == 200 and "Dave Imported" in text and "X-PHONE-SPECIFIC:kept" in text


def test_upload_size_is_limited(make_server):
    srv = make_server(overrides={**NO_MAIL, "dav": {"max_request_size": 8192}})
    srv.claimed({ALICE: ALICE_PW}).start()
    c = web(srv)
    c.get("/calendar")
    big = ICS.replace("SUMMARY:Imported meeting", "SUMMARY:" + "x" * 20000)
    resp, page = c.post_multipart("/calendar/import", {"cal": f"{ALICE}/calendar"}, [("file", "big.ics", big.encode())])
    assert resp.status == 400 and "larger than the limit" in page
    assert not calendar_of(srv).events()


def test_tasks(server):
    c = web(server)
    _, page = c.get("/calendar/tasks")
    assert "No tasks." in page
    resp, _ = c.post("/calendar/tasks", {"cal": f"{ALICE}/tasks", "title": "Buy milk", "due": "2026-03-20"})
    assert resp.status == 303
    todos = dav(server).calendar(url=f"/dav/{ALICE}/tasks/").todos()
    assert [t for t in todos if "Buy milk" in t.data]
    _, page = c.get("/calendar/tasks")
    href = re.search(r'name="href" value="([^"]+)"', page).group(1)
    etag = re.search(r'name="etag" value="([^"]+)"', page).group(1).replace("&#34;", '"')
    resp, _ = c.post("/calendar/tasks/toggle", {"cal": f"{ALICE}/tasks", "href": href, "etag": etag})
    assert resp.status == 303
    todo = dav(server).calendar(url=f"/dav/{ALICE}/tasks/").todos(include_completed=True)
    assert any("STATUS:COMPLETED" in t.data for t in todo)


def test_pages_in_french_have_no_english_left(server):
    from test_web_french import FR, assert_french, catalog_english

    known = catalog_english()
    c = web(server)
    new_event(c, title="Réunion", repeat="DAILY", repeat_end="count", count="2")
    _, page = c.get("/calendar?view=agenda&date=2026-03-16", headers=FR)
    link = re.search(r'href="(/calendar/event\?[^"]*occ=[^"]+)"', page).group(1).replace("&amp;", "&")
    pages = {
        "/calendar": ("Nouvel événement", "Mois"),
        "/calendar?view=week&date=2026-03-16": ("Semaine",),
        "/calendar?view=agenda&date=2026-03-16": ("Réunion",),
        "/calendar/event?date=2026-03-16": ("Titre", "Répétition", "Rappel"),
        link: ("Supprimer seulement cette occurrence",),
        "/calendar/tasks": ("Nouvelle tâche",),
        "/contacts": ("Nouveau contact",),
        "/contacts/edit": ("Prénom", "Code postal"),
    }
    for path, expected in pages.items():
        resp, page = c.get(path, headers=FR)
        assert resp.status == 200, path
        assert_french(page, *expected, known=known)


def test_contact_put_over_carddav_is_shown_and_edited_in_web(server):
    url = f"https://127.0.0.1:{server.port('http.https_port')}/dav/{ALICE}/contacts/frank.vcf"
    card = (
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:frank-1\r\nFN:Frank Phone\r\nN:Phone;Frank;;;\r\n"
        "TEL;TYPE=CELL:+33 7 00 00 00 01\r\nX-SOCIALPROFILE;TYPE=mastodon:https://example.social/@frank\r\nEND:VCARD\r\n"
    )
    resp = dav(server).put(url, card, {"Content-Type": "text/vcard; charset=utf-8"})
    assert resp.status in (201, 204)
    c = web(server)
    _, page = c.get("/contacts?q=frank")
    assert "Frank Phone" in page and "+33 7 00 00 00 01" in page
    _, view = c.get(f"/contacts/contact?book={urllib.parse.quote(ALICE + '/contacts')}&href=frank.vcf")
    etag = re.search(r'name="etag" value="([^"]+)"', view).group(1).replace("&#34;", '"')
    resp, _ = c.post(
        "/contacts/edit",
        contact_form(href="frank.vcf", etag=etag, given="Frank", family="Phone", phone="+33 7 00 00 00 02"),
    )
    assert resp.status == 303
    stored = carddav_get(server, f"/dav/{ALICE}/contacts/frank.vcf")
    assert "+33 7 00 00 00 02" in stored and "X-SOCIALPROFILE" in stored and "UID:frank-1" in stored
    resp, _ = c.post("/contacts/delete", {"book": f"{ALICE}/contacts", "href": "frank.vcf", "etag": ""})
    assert resp.status == 303
    assert dav(server).request(url).status == 404
