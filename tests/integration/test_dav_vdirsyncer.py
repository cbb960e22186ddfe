"""CalDAV and CardDAV round trips with vdirsyncer (PyPI), the synchroniser many Linux users run
between their server and a local directory (khal, khard): a calendar and an address book synced
both ways between a ``gk serve`` and the filesystem, new items, deletions on either side, and a
conflict (the same item changed on both sides between two syncs) settled by the pair's
``conflict_resolution``. The server side is checked with the python ``caldav`` client, the local
side by the files on disk. vdirsyncer verifies the server's certificate against the test CA
(its ``verify`` option), as it would a box with a real certificate.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import caldav
import pytest
from support.gkserver import NO_MAIL, GKServer
from support.testca import make_ca

ALICE, ALICE_PW = "alice@test.example", "alice password 1"
VDIRSYNCER = Path(sys.executable).parent / "vdirsyncer"

EVENT = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//GK//vdirsyncer test//EN\r
BEGIN:VEVENT\r
UID:{uid}\r
DTSTAMP:20260101T000000Z\r
DTSTART:20260310T090000Z\r
DTEND:20260310T100000Z\r
SUMMARY:{summary}\r
END:VEVENT\r
END:VCALENDAR\r
"""
CARD = """BEGIN:VCARD\r
VERSION:3.0\r
UID:{uid}\r
FN:{name}\r
N:{name};;;;\r
EMAIL;TYPE=INTERNET:{uid}@example.org\r
END:VCARD\r
"""

CONFIG = """[general]
status_path = "{root}/status/"

[pair cal]
a = "cal_local"
b = "cal_gk"
collections = null
conflict_resolution = "b wins"

[storage cal_local]
type = "filesystem"
path = "{root}/calendar/"
fileext = ".ics"

[storage cal_gk]
type = "caldav"
url = "{base}/dav/{user}/calendar/"
username = "{user}"
password = "{password}"
verify = "{ca}"

[pair book]
a = "book_local"
b = "book_gk"
collections = null
conflict_resolution = "a wins"

[storage book_local]
type = "filesystem"
path = "{root}/contacts/"
fileext = ".vcf"

[storage book_gk]
type = "carddav"
url = "{base}/dav/{user}/contacts/"
username = "{user}"
password = "{password}"
verify = "{ca}"
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("vdirsyncer")
    ca = make_ca(root / "ca")
    cert, key = ca.issue("127.0.0.1")
    srv = GKServer(root / "gk", {**NO_MAIL, "tls": {"cert_file": str(cert), "key_file": str(key)}})
    srv.claimed({ALICE: ALICE_PW}).start()
    base = f"https://127.0.0.1:{srv.port('http.https_port')}"
    for d in ("calendar", "contacts", "status"):
        (root / d).mkdir()
    config = root / "config"
    config.write_text(CONFIG.format(root=root, base=base, user=ALICE, password=ALICE_PW, ca=ca.ca_file))
    client = caldav.DAVClient(
        url=base + "/dav/", username=ALICE, password=ALICE_PW, ssl_verify_cert=str(ca.ca_file), enable_rfc6764=False
    )
    yield root, config, client, base
    srv.stop()


def vdirsyncer(config: Path, *args: str) -> str:
    out = subprocess.run(
        [str(VDIRSYNCER), "-c", str(config), *args], input="", capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout + out.stderr


def server_events(client: caldav.DAVClient) -> dict[str, str]:
    """UID -> SUMMARY of every event on the server, as the caldav client reads them."""
    cal = client.calendar(url=f"/dav/{ALICE}/calendar/")
    found: dict[str, str] = {}
    for e in cal.events():
        comp = e.icalendar_component
        found[str(comp["UID"])] = str(comp["SUMMARY"])
    return found


def server_cards(client: caldav.DAVClient, base: str) -> str:
    """The whole address book as the server exports it (a GET on the collection)."""
    resp = client.request(f"{base}/dav/{ALICE}/contacts/", "GET")
    assert resp.status == 200
    return str(resp.raw)


def local(root: Path, kind: str) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((root / kind).iterdir())}


def test_round_trips_deletions_and_conflicts(setup):  # type: ignore[no-untyped-def]
    root, config, client, base = setup
    cal = client.calendar(url=f"/dav/{ALICE}/calendar/")
    # one item on each side of each pair before the first sync
    cal.save_event(EVENT.format(uid="from-gk", summary="Dentist (made on the server)"))
    put = client.put(f"{base}/dav/{ALICE}/contacts/gk-card.vcf", CARD.format(uid="gk-card", name="Server Sam"),
                     {"Content-Type": "text/vcard; charset=utf-8"})  # fmt: skip
    assert put.status in (201, 204)
    (root / "calendar" / "from-disk.ics").write_text(EVENT.format(uid="from-disk", summary="Piano (made on disk)"))
    (root / "contacts" / "disk-card.vcf").write_text(CARD.format(uid="disk-card", name="Disk Dana"))

    vdirsyncer(config, "discover")
    vdirsyncer(config, "sync")
    assert server_events(client) == {"from-gk": "Dentist (made on the server)", "from-disk": "Piano (made on disk)"}
    on_disk = local(root, "calendar")
    assert len(on_disk) == 2 and any("UID:from-gk" in text for text in on_disk.values())
    cards = server_cards(client, base)
    assert "FN:Disk Dana" in cards and "FN:Server Sam" in cards
    on_disk = local(root, "contacts")
    assert len(on_disk) == 2 and any("FN:Server Sam" in text for text in on_disk.values())

    # deletions: an event deleted on disk goes from the server, a card deleted on the server from disk
    (root / "calendar" / "from-disk.ics").unlink()
    gone = client.delete(f"{base}/dav/{ALICE}/contacts/gk-card.vcf")
    assert gone.status in (200, 204)
    vdirsyncer(config, "sync")
    assert server_events(client) == {"from-gk": "Dentist (made on the server)"}
    assert "FN:Server Sam" not in server_cards(client, base)
    assert not any("Server Sam" in text for text in local(root, "contacts").values())
    assert len(local(root, "calendar")) == 1

    # a conflict on each pair: the calendar's server side wins ("b wins"), the contacts' disk side ("a wins")
    [event_file] = (root / "calendar").iterdir()
    event_file.write_text(EVENT.format(uid="from-gk", summary="Dentist (moved on disk)"))
    event = cal.event_by_uid("from-gk")
    event.icalendar_component["SUMMARY"] = "Dentist (moved on the server)"
    event.save()
    [card_file] = (root / "contacts").iterdir()
    card_file.write_text(CARD.format(uid="disk-card", name="Dana (renamed on disk)"))
    put = client.put(f"{base}/dav/{ALICE}/contacts/disk-card.vcf",  # vdirsyncer names it by its UID
                     CARD.format(uid="disk-card", name="Dana (renamed on the server)"),
                     {"Content-Type": "text/vcard; charset=utf-8"})  # fmt: skip
    assert put.status == 204
    vdirsyncer(config, "sync")
    assert server_events(client) == {"from-gk": "Dentist (moved on the server)"}
    assert "SUMMARY:Dentist (moved on the server)" in event_file.read_text()
    cards = server_cards(client, base)
    assert "FN:Dana (renamed on disk)" in cards and "renamed on the server" not in cards
    assert "FN:Dana (renamed on disk)" in card_file.read_text()

    # and a sync with nothing changed changes nothing
    vdirsyncer(config, "sync")
    assert server_events(client) == {"from-gk": "Dentist (moved on the server)"}
    assert len(local(root, "calendar")) == 1 and len(local(root, "contacts")) == 1
