"""Upgrade: a box set up by an older GK kept the owner's settings in the claim database; the
first ``gk serve`` after the upgrade moves them to gk.settings (the host name into gk.toml) and
uses them, and a restart still has them without moving anything again."""

from __future__ import annotations

import sqlite3
import tomllib

from test_web_http import Client

from gk import claim

OLD_ROWS = {
    "state": "complete",
    "claimed_by": "setup code",
    "recovery_until": "0",
    "setup_code": "",
    "opt:done:host": "1",
    "opt:mail_domain": "family.example",
    "opt:hostname": "mail.family.example",
    "opt:timezone": "Asia/Tokyo",
    "opt:https_redirect": "1",
    "opt:ai_model": "none",
}


def test_first_start_after_upgrade_moves_the_settings_out_of_claim(make_server):  # type: ignore[no-untyped-def]
    srv = make_server(overrides={"server": {"hostname": ""}})  # mid-upgrade: gk.toml names no host
    srv.write_config()
    with claim._db(srv.data_dir) as db, db.transaction():  # the claim database as the old GK wrote it
        for key, value in OLD_ROWS.items():
            claim._set(db, key, value)
    srv.add_user("owner@family.example", "owner passphrase 1", admin=True)
    srv.start()
    resp, _ = Client(srv).get("/")
    assert resp.status == 301 and resp.headers["Location"].startswith("https://")  # https_redirect kept
    c = Client(srv, https=True)
    c.login("owner@family.example", "owner passphrase 1")
    resp, page = c.get("/admin/settings")
    assert resp.status == 200 and "<option selected>Asia/Tokyo</option>" in page  # the time zone kept
    assert tomllib.loads((srv.data_dir / "gk.toml").read_text())["server"]["hostname"] == "mail.family.example"
    conn = sqlite3.connect(srv.data_dir / "claim.sqlite3")
    left = dict(conn.execute("SELECT key, value FROM settings").fetchall())
    conn.close()
    assert not [k for k in left if k.startswith("opt:") and not k.startswith("opt:done:")]
    assert left["state"] == "complete" and left["opt:done:host"] == "1"
    srv.stop()
    srv.start()  # the move ran once: the settings are read from their own store now
    assert srv.log().count("out of the claim database") == 1
    assert Client(srv).get("/")[0].status == 301
