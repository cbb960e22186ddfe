"""The owner's time zone, end to end over HTTP: chosen in the wizard, published for the image's
root helper (DATA_DIR/timezone), changed on /admin/settings (admin only, CSRF, validated), and
used where the UI shows a time (the dashboard's security events)."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo

from support.gkserver import GKServer
from test_web_http import ADMIN, ADMIN_PW, NO_MAIL, Client, run_wizard


def event_times(page: str) -> list[str]:
    return re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", page)


def test_time_zone_from_wizard_then_admin_settings(make_server):  # type: ignore[no-untyped-def]
    srv: GKServer = make_server(overrides=NO_MAIL).start()
    c = run_wizard(srv)  # chooses Europe/Paris
    assert (srv.data_dir / "timezone").read_text() == "Europe/Paris\n"

    _, page = c.get("/admin/settings")
    assert "<option selected>Europe/Paris</option>" in page

    # unknown zone: 400, the error next to the field, nothing changed
    resp, page = c.post("/admin/settings", {"timezone": "Mars/Olympus_Mons"})
    assert resp.status == 400 and "unknown time zone" in page
    assert (srv.data_dir / "timezone").read_text() == "Europe/Paris\n"
    # without the CSRF token: refused, nothing changed
    resp, _ = c.post("/admin/settings", {"timezone": "Asia/Tokyo"}, csrf=False)
    assert resp.status == 403
    assert (srv.data_dir / "timezone").read_text() == "Europe/Paris\n"

    resp, page = c.post("/admin/settings", {"timezone": "Asia/Tokyo"})
    assert resp.status == 303 and "Time zone saved." in c.get("/admin/settings")[1]
    assert (srv.data_dir / "timezone").read_text() == "Asia/Tokyo\n"

    # the dashboard shows the newest security event (this change) in Tokyo time
    before = dt.datetime.now(zoneinfo.ZoneInfo("Asia/Tokyo")).replace(microsecond=0, tzinfo=None)
    _, page = c.get("/dashboard")
    shown = [dt.datetime.strptime(t, "%Y-%m-%d %H:%M:%S") for t in event_times(page)]
    assert shown and abs((max(shown) - before).total_seconds()) < 120, (before, shown[:3])


def test_settings_are_admin_only(make_server):  # type: ignore[no-untyped-def]
    srv: GKServer = make_server(overrides=NO_MAIL).start()
    run_wizard(srv)
    bob = Client(srv)
    bob.login("bob@test.example", "bob password 1")
    resp, _ = bob.get("/admin/settings")
    assert resp.status == 403
    resp, _ = bob.post("/admin/settings", {"timezone": "UTC"})
    assert resp.status == 403
    assert (srv.data_dir / "timezone").read_text() == "Europe/Paris\n"
    admin = Client(srv)
    admin.login(ADMIN, ADMIN_PW)
    resp, _ = admin.get("/admin/settings")
    assert resp.status == 200
