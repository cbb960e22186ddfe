"""The admin's Backup page in-process: the page lists the archives on the box, "Download a backup
now" streams an archive that ``gk backup restore`` accepts, a kept archive downloads by its listed
name only, and both downloads are security events."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pytest
from support.wsgiclient import ADMIN, ADMIN_PW, USER, USER_PW, set_up_web, signed_in

from gk.backup import archive


def test_backup_page_download_now_and_kept_archives(tmp_path: Path) -> None:
    web = set_up_web(tmp_path / "box")
    c = signed_in(web, ADMIN, ADMIN_PW)
    page = c.get("/admin/backup")
    assert page.status == 200 and 'id="no-archives"' in page.text and "gk backup restore" in page.text

    resp = c.post("/admin/backup/download")
    assert resp.status == 200 and resp.header("Content-Type") == "application/x-tar"
    assert 'filename="gk-backup-' in resp.header("Content-Disposition")
    with tarfile.open(fileobj=io.BytesIO(resp.body)) as tar:
        names = tar.getnames()
    assert names[0] == archive.INFO and names[-1] == archive.MANIFEST and "data/accounts.sqlite3" in names
    assert not list((tmp_path / "box" / "backup").glob(".gk-backup-*")), "scratch files left behind"
    downloaded = tmp_path / "download.tar"
    downloaded.write_bytes(resp.body)
    archive.restore(downloaded, tmp_path / "restored")
    from gk.config import load
    from gk.context import open_accounts

    restored = open_accounts(load(tmp_path / "restored"), tmp_path / "restored")
    assert {u.address for u in restored.list_users()} == {ADMIN, USER}

    kept = archive.create(web.data_dir, web.data_dir / "backup", "box.test.example")
    page = c.get("/admin/backup")
    assert f'href="/admin/backup/files/{kept.name}"' in page.text
    resp = c.get(f"/admin/backup/files/{kept.name}")
    assert resp.status == 200 and resp.body == kept.read_bytes()
    assert c.get("/admin/backup/files/gk.toml").status == 404  # only the listed archives
    events = [e["kind"] for e in web.ctx.accounts.recent_events(10)]
    assert events.count("backup_downloaded") == 2

    user = signed_in(web, USER, USER_PW)
    assert user.get("/admin/backup").status == 403
    assert user.get(f"/admin/backup/files/{kept.name}").status == 403


def test_the_schedule_is_set_on_the_backup_page(tmp_path: Path) -> None:
    """An admin sets the automatic backup (CSRF-checked): gk.toml's [backup] and the running
    config change, the page shows the next run and the target; bad values are refused with the
    field named; a target inside the data dir warns; a user may not."""
    import tomllib

    web = set_up_web(tmp_path / "box")
    c = signed_in(web, ADMIN, ADMIN_PW)
    page = c.get("/admin/backup")
    assert 'id="warn-none"' in page.text and 'id="warn-on-box"' in page.text
    assert "none scheduled" in page.text

    usb = tmp_path / "usb"
    form = {"schedule": "weekly", "time": "04:15", "weekday": "sat", "target": str(usb), "keep": "5"}
    bad = c.post("/admin/backup/schedule", form)
    assert bad.status == 400 and 'id="e-target"' in bad.text  # the drive is not there
    usb.mkdir()
    assert c.post("/admin/backup/schedule", {**form, "time": "25:00"}).status == 400
    assert c.post("/admin/backup/schedule", {**form, "keep": "0"}).status == 400
    assert c.post("/admin/backup/schedule", form, csrf=False).status == 403
    resp = c.post("/admin/backup/schedule", form)
    assert resp.status == 303 and resp.location.endswith("/admin/backup#schedule")
    saved = tomllib.loads((web.data_dir / "gk.toml").read_text())["backup"]
    assert saved == {"schedule": "weekly", "time": "04:15", "weekday": "sat", "target": str(usb), "keep": 5}
    assert web.ctx.config.backup.schedule == "weekly" and web.ctx.config.backup.target == str(usb)
    page = c.get("/admin/backup")
    assert "Saved: the automatic backup settings." in page.text
    assert "none scheduled" not in page.text and "04:15" in page.text
    assert str(usb) in page.text and 'id="warn-on-box"' not in page.text
    assert any(e["kind"] == "backup_schedule" for e in web.ctx.accounts.recent_events(5))

    user = signed_in(web, USER, USER_PW)
    assert user.post("/admin/backup/schedule", {**form, "schedule": "off"}).status == 403
    assert web.ctx.config.backup.schedule == "weekly"


def test_back_up_now_writes_into_the_target_and_the_page_shows_it(tmp_path: Path) -> None:
    import gevent

    from gk.backup.service import start

    web = set_up_web(tmp_path / "box")
    c = signed_in(web, ADMIN, ADMIN_PW)
    assert c.post("/admin/backup/now").status == 503  # no service: said, not hidden
    svc = start(web.ctx)
    web.ctx.services.register("backup", svc)
    try:
        resp = c.post("/admin/backup/now")
        assert resp.status == 303
        for _ in range(300):
            if svc.runs:
                break
            gevent.sleep(0.1)
        assert svc.runs == 1 and svc.next_at is None  # the schedule is off: only the asked one
        made = archive.archives(web.data_dir / "backup")
        assert len(made) == 1
        page = c.get("/admin/backup").text
        assert "is being made into" in page
        assert f"({made[0][0].name})" in page and 'id="warn-none"' not in page
    finally:
        svc.stop(1.0)


def test_download_now_is_refused_when_the_box_has_no_room_for_its_scratch_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The download writes its database snapshots in DATA_DIR/backup: with too little room there
    (a free-space figure below the biggest database + the margin) it answers 507 with the page
    saying so, in the admin's language, and writes nothing; with room, it streams as before."""
    import os

    web = set_up_web(tmp_path / "box")
    c = signed_in(web, ADMIN, ADMIN_PW)
    c.get("/admin/backup")
    real_statvfs = os.statvfs
    mib = 1024 * 1024

    def statvfs_free(free: int) -> Any:
        return lambda path: os.statvfs_result((4096, 1, 10**12, free, free, 10**5, 10**5, 10**5, 0, 255))

    monkeypatch.setattr(os, "statvfs", statvfs_free(20 * mib))
    resp = c.post("/admin/backup/download")
    assert resp.status == 507 and resp.header("Content-Type").startswith("text/html")
    assert 'id="download-no-space"' in resp.text and "Not enough free space on the box" in resp.text
    assert f"{20 * mib / 1e6:.0f} MB are free there" in resp.text and str(web.data_dir / "backup") in resp.text
    backup_dir = web.data_dir / "backup"
    assert not backup_dir.exists() or list(backup_dir.iterdir()) == []  # no snapshot, no partial file
    assert "backup_downloaded" not in [e["kind"] for e in web.ctx.accounts.recent_events(10)]

    c.post("/account/language", {"language": "fr"})
    c.get("/admin/backup")
    resp = c.post("/admin/backup/download")
    assert resp.status == 507 and "espace libre sur le boîtier pour faire la sauvegarde" in resp.text

    monkeypatch.setattr(os, "statvfs", real_statvfs)
    resp = c.post("/admin/backup/download")
    assert resp.status == 200 and resp.header("Content-Type") == "application/x-tar"


def test_a_download_needs_room_for_its_scratch_files_only(tmp_path: Path) -> None:
    """Not for the archive (it goes to the browser): a box whose disk is nearly full can still
    be backed up by download; the biggest database's snapshot and the file list must fit."""
    import sqlite3

    data = tmp_path / "data"
    cur = data / "mail" / "a@example.test" / "Maildir" / "cur"
    cur.mkdir(parents=True)
    for i in range(50):
        (cur / f"{i}.box:2,S").write_bytes(b"x" * 100_000)
    db = sqlite3.connect(data / "chat.sqlite3")
    db.execute("CREATE TABLE t (x BLOB)")
    db.execute("INSERT INTO t VALUES (zeroblob(3000000))")
    db.commit()
    db.close()
    est = archive.Estimate(data)
    while est.step():
        pass
    assert est.biggest_db >= 3_000_000 and est.archive_size() > 8_000_000
    assert est.biggest_db + archive.SPACE_SLACK < est.scratch_needed() < est.needed() - 5_000_000


def test_the_page_shows_the_next_run_after_the_slot_served_last(tmp_path: Path) -> None:
    """The clock stepped back after a run: the page must show the slot that will run (the one
    after the served one), not the one the clock suggests."""
    import datetime as dt
    import time

    from gk import settings
    from gk.backup import schedule

    web = set_up_web(tmp_path / "box")
    settings.of(web.data_dir).set_backup(
        {"schedule": "daily", "time": "03:30", "weekday": "mon", "target": "", "keep": 7}
    )
    zone = schedule.zone_of(web.data_dir)
    nxt = schedule.next_run(time.time(), zone, web.ctx.config.backup)
    assert nxt is not None
    served = schedule.slot_of(nxt, zone)  # as if served before the clock stepped back a day
    schedule.claim_slot(web.data_dir, served, nxt)
    page = signed_in(web, ADMIN, ADMIN_PW).get("/admin/backup").text
    shown = page.split('id="next-backup">', 1)[1].split("</dd>", 1)[0]
    day = dt.datetime.fromtimestamp(nxt, zone)
    assert shown == f"{(day + dt.timedelta(days=1)).date().isoformat()} 03:30"  # not {day.date()}
