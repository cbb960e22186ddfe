"""The DAV feature's web side in process: default collections for a user created while the
server runs, the wizard's "Family" calendar step and ``/sharing`` (an owner picks members)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.wsgiclient import Client, complete_setup, web_with_dav

from gk import claim
from gk.dav import defaults
from gk.web import wizard, wizardsteps
from gk.web.wizardsteps import FAMILY_STEP

ADMIN, ADMIN_PW = "owner@test.example", "correct horse battery"
BOB, BOB_PW = "bob@test.example", "bob password 12"
CAROL, CAROL_PW = "carol@test.example", "carol password 12"


@pytest.fixture
def web_and_dav(tmp_path: Path):  # type: ignore[no-untyped-def]
    # the order gk serve builds (gk.features: the dav entry comes before the ai one)
    web, svc = web_with_dav(
        tmp_path, wizardsteps.with_step(wizardsteps.with_step(wizardsteps.CORE_STEPS, FAMILY_STEP), wizardsteps.AI_STEP)
    )
    yield web, svc
    svc.stop(0)


def test_users_created_while_running_get_their_defaults(web_and_dav) -> None:  # type: ignore[no-untyped-def]
    web, svc = web_and_dav
    web.ctx.accounts.add_user(BOB, BOB_PW)
    assert [(n, t) for n, t, _ in defaults.collections_of(svc.db, BOB)] == [
        ("calendar", "VCALENDAR"),
        ("contacts", "VADDRESSBOOK"),
        ("tasks", "VCALENDAR"),
    ]
    # idempotent: a deleted default stays deleted, nothing is duplicated
    svc.db.execute("DELETE FROM collections WHERE path = ?", (f"{BOB}/tasks",))
    assert svc.ensure_user(BOB) is False and svc.ensure_all() == []
    assert [n for n, _, _ in defaults.collections_of(svc.db, BOB)] == ["calendar", "contacts"]


def test_wizard_family_step_shares_with_the_ticked_users(web_and_dav) -> None:  # type: ignore[no-untyped-def]
    web, svc = web_and_dav
    code = claim.ensure_setup_code(web.data_dir)
    c = Client(web)
    c.get("/wizard/claim")
    c.post("/wizard/claim", {"code": str(code)})
    c.get("/wizard/admin")
    c.post("/wizard/admin", {"address": ADMIN, "password": ADMIN_PW, "password2": ADMIN_PW})
    web.ctx.accounts.add_user(BOB, BOB_PW)
    web.ctx.accounts.add_user(CAROL, CAROL_PW)
    for step in ("host", "timezone", "tls", "users", "dns"):
        wizard.mark(web, step)
    c.get("/wizard/outgoing")
    assert c.post("/wizard/outgoing", {"mode": "direct"}).location.endswith("/wizard/family")
    page = c.get("/wizard/family")
    assert page.status == 200 and f'value="{BOB}" checked' in page.text and f'value="{CAROL}" checked' in page.text
    resp = c.post("/wizard/family", {"create": "1", "member": BOB})
    assert resp.status == 303 and resp.location.endswith("/wizard/ai")
    assert svc.shares.members(ADMIN, "family") == {BOB: "rw"}
    assert ("family", "VCALENDAR", "Family") in defaults.collections_of(svc.db, ADMIN)
    assert svc.shares.rights(BOB, ADMIN, "family") == "rw" and svc.shares.rights(CAROL, ADMIN, "family") == ""


def test_sharing_page_owner_picks_members(web_and_dav) -> None:  # type: ignore[no-untyped-def]
    web, svc = web_and_dav
    complete_setup(web)
    for address, password in ((ADMIN, ADMIN_PW), (BOB, BOB_PW), (CAROL, CAROL_PW)):
        web.ctx.accounts.add_user(address, password)
    owner = Client(web)
    owner.login(ADMIN, ADMIN_PW)
    page = owner.get("/sharing")
    assert page.status == 200 and 'action="/sharing/calendar"' in page.text and f'name="rights:{BOB}"' in page.text
    resp = owner.post("/sharing/calendar", {f"rights:{BOB}": "rw", f"rights:{CAROL}": "r", "rights:x@y.z": "rw"})
    assert resp.status == 200
    assert svc.shares.members(ADMIN, "calendar") == {BOB: "rw", CAROL: "r"}
    assert owner.post("/sharing/nope", {f"rights:{BOB}": "rw"}).status == 404
    assert owner.post("/sharing/calendar", {f"rights:{BOB}": "rw"}, csrf=False).status == 403
    bob = Client(web)
    bob.login(BOB, BOB_PW)
    page = bob.get("/sharing")
    assert "Shared with you" in page.text and f"<li>Calendar — {ADMIN} (Read and write)</li>" in page.text
    # bob's own page changes only bob's collections
    assert bob.post("/sharing/calendar", {f"rights:{CAROL}": "rw"}).status == 200
    assert svc.shares.members(ADMIN, "calendar") == {BOB: "rw", CAROL: "r"}
    assert svc.shares.members(BOB, "calendar") == {CAROL: "rw"}
    owner.post("/sharing/calendar", {})
    assert svc.shares.members(ADMIN, "calendar") == {}
    assert Client(web).get("/sharing").status in (302, 303)


def test_apple_profile_and_devices_page_set_up_calendars_and_contacts(web_and_dav) -> None:  # type: ignore[no-untyped-def]
    import plistlib

    web, _ = web_and_dav
    complete_setup(web)
    web.ctx.accounts.add_user(BOB, BOB_PW)
    bob = Client(web)
    bob.login(BOB, BOB_PW)
    resp = bob.request("GET", "/devices/gk.mobileconfig")
    assert resp.status == 200
    profile = plistlib.loads(resp.text.encode())
    by_type = {p["PayloadType"]: p for p in profile["PayloadContent"]}
    port = web.ctx.config.http.https_port
    for kind in ("CalDAV", "CardDAV"):
        payload = by_type[f"com.apple.{kind.lower()}.account"]
        assert payload[f"{kind}PrincipalURL"] == f"/dav/{BOB}/" and payload[f"{kind}Username"] == BOB
        assert payload[f"{kind}Port"] == port and payload[f"{kind}UseSSL"] is True
        assert payload[f"{kind}HostName"] == "gk.test.example"
    uuids = [p["PayloadUUID"] for p in profile["PayloadContent"]]
    assert len(set(uuids)) == len(uuids)
    page = bob.get("/devices").text
    assert 'id="calendars"' in page and f"https://gk.test.example:{port}/dav/" in page
    assert "DAVx⁵" in page and "Thunderbird" in page and 'href="/sharing"' in page


def test_avahi_announces_caldav_and_carddav_on_the_lan() -> None:
    import xml.etree.ElementTree as ET

    repo = Path(__file__).resolve().parents[2]
    root = ET.parse(repo / "overlays/common/etc/avahi/services/gk.service").getroot()
    services = {s.findtext("type"): (s.findtext("port"), s.findtext("txt-record")) for s in root.iter("service")}
    for kind in ("_caldavs._tcp", "_carddavs._tcp"):  # RFC 6764 §6: the HTTPS port and the path
        assert services[kind] == (services["_https._tcp"][0], "path=/dav/"), services
    assert services["_https._tcp"][0] == "443"
