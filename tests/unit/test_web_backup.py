"""The admin's Backup page in-process: the page lists the archives on the box, "Download a backup
now" streams an archive that ``gk backup restore`` accepts, a kept archive downloads by its listed
name only, and both downloads are security events."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

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
