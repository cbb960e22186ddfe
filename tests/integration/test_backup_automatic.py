"""A running ``gk serve`` makes its backups by itself: with ``[backup] test_only_interval`` (a
schedule of a few seconds, for tests only) it writes a complete archive into a target directory
outside the data dir, keeps the newest ``keep``, and the Backup page shows the last backup, the
next one and the target with its free space."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from support.gkserver import GKServer
from support.imap import ALICE, PASSWORD
from test_web_http import Client

from gk.backup import archive

pytestmark = pytest.mark.filterwarnings("ignore:Unverified HTTPS request")

FAST_AUTH = {"argon2_time_cost": 1, "argon2_memory_kib": 8192}


def test_a_running_server_backs_up_by_itself_into_the_target(tmp_path: Path) -> None:
    usb = tmp_path / "usb"
    usb.mkdir()
    srv = GKServer(
        tmp_path / "data",
        overrides={"auth": FAST_AUTH, "backup": {"test_only_interval": 1.0, "target": str(usb), "keep": 2}},
    )
    srv.claimed({ALICE: PASSWORD}, admins=(ALICE,)).start()
    try:
        deadline = time.monotonic() + 30
        while len(archive.archives(usb)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        found = archive.archives(usb)
        assert len(found) == 2, srv.log()
        # a complete archive of this box, nothing of it left in the data dir
        archive.unpack(found[-1][0], tmp_path / "check")
        assert (tmp_path / "check" / "accounts.sqlite3").is_file()
        assert not (srv.data_dir / "backup").exists()
        time.sleep(2.5)  # a few more runs: keep = 2
        assert len(archive.archives(usb)) == 2

        c = Client(srv, https=True)
        c.login(ALICE, PASSWORD)
        _, page = c.get("/admin/backup")
        last = re.search(r'<dd id="last-backup">(.*?)</dd>', page, re.S)
        assert last and "done" in last.group(1) and "gk-backup-mx.test.example-" in last.group(1), page
        target = re.search(r'<dd id="target">(.*?)</dd>', page, re.S)
        assert target and str(usb) in target.group(1) and "GB free" in target.group(1)
        assert 'id="warn-on-box"' not in page and 'id="warn-none"' not in page
        assert "none scheduled" not in page
    finally:
        srv.stop()
    assert "the automatic backup to" not in srv.log()  # no run failed


def test_gk_backup_create_uses_the_target_and_records_its_result(tmp_path: Path) -> None:
    """``gk backup create`` writes into ``[backup] target``, refuses one that does not exist
    (never made: a drive not mounted), and both results are what the Backup page shows."""
    from support.gkserver import gk

    from gk.backup import schedule

    usb = tmp_path / "usb" / "gk"
    srv = GKServer(tmp_path / "data", overrides={"auth": FAST_AUTH, "backup": {"target": str(usb)}})
    srv.claimed({ALICE: PASSWORD}, admins=(ALICE,))
    failed = gk(srv.data_dir, "backup", "create", check=False)
    assert failed.returncode != 0 and "not plugged in or not mounted" in failed.stderr
    assert not usb.exists()
    st = schedule.read_status(srv.data_dir)
    assert not st.ok and "not mounted" in st.detail and st.target == str(usb)
    usb.mkdir(parents=True)
    out = gk(srv.data_dir, "backup", "create")
    made = Path(out.stdout.split("\t")[0])
    assert made.parent == usb
    st = schedule.read_status(srv.data_dir)
    assert st.ok and st.detail == made.name and st.last_good == st.last_run
    assert made.name in gk(srv.data_dir, "backup", "list").stdout
