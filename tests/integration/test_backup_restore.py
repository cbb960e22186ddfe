"""``gk backup create`` while ``gk serve`` runs, ``gk backup restore`` into a new data dir, and a
server started there: the mail (with its flags), the calendar event, the chat message and the
users' logins are all back. Restore refuses a damaged archive and a data dir in use."""

from __future__ import annotations

import re
import tarfile
import urllib.parse
from pathlib import Path

import pytest
from support.gkserver import GKServer, gk
from support.imap import ALICE, BOB, PASSWORD, imaps, simple_message
from support.irc import connect
from test_dav_caldav import event, request
from test_web_http import Client

pytestmark = pytest.mark.filterwarnings("ignore:Unverified HTTPS request")

FAST_AUTH = {"auth": {"argon2_time_cost": 1, "argon2_memory_kib": 8192}}


def filled(srv: GKServer) -> GKServer:
    """A claimed box with Alice and Bob, two messages (one \\Seen and $Work), an event, a chat line."""
    srv.claimed({ALICE: PASSWORD, BOB: PASSWORD}, admins=(ALICE,)).start()
    m = imaps(srv)
    assert m.append("INBOX", "(\\Seen $Work)", None, simple_message("kept flags"))[0] == "OK"
    assert m.append("INBOX", None, None, simple_message("unread one"))[0] == "OK"
    m.create("Archive")
    assert m.append("Archive", "(\\Flagged)", None, simple_message("archived"))[0] == "OK"
    m.logout()
    status, _, _ = request(
        srv, "PUT", f"/dav/{ALICE}/calendar/backup1.ics", event("backup1", 12, "dentist"), ALICE, PASSWORD
    )
    assert status == 201
    c = connect(srv.port("chat.irc_port"), ALICE, "echo-message")
    c.until(r" 366 \S+ #general ")
    c.send("PRIVMSG #general :remember the milk")
    c.expect(r"PRIVMSG #general :remember the milk")
    c.close()
    return srv


def backup_of(srv: GKServer) -> Path:
    out = gk(srv.data_dir, "backup", "create")
    archive = Path(out.stdout.split("\t")[0])
    assert archive.parent == srv.data_dir / "backup" and archive.name.startswith("gk-backup-mx.test.example-")
    assert archive.name.endswith(".tar")
    from gk.config import load
    from gk.context import open_accounts

    store = open_accounts(load(srv.data_dir), srv.data_dir)
    try:
        assert any(e["kind"] == "backup_made" and e["detail"] == archive.name for e in store.recent_events(5))
    finally:
        store.db.close()
    return archive


def test_backup_while_serving_restores_mail_flags_event_chat_and_logins(make_server, tmp_path):  # type: ignore[no-untyped-def]
    srv = filled(make_server("orig", FAST_AUTH))
    archive = backup_of(srv)  # while it runs
    listed = gk(srv.data_dir, "backup", "list").stdout
    assert archive.name in listed
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names[0] == "gk-backup/info.json" and names[-1] == "gk-backup/manifest.jsonl"
    assert "data/accounts.sqlite3" in names and "data/gk.toml" in names
    assert not [n for n in names if n.endswith(("-wal", "-shm", "serve.lock"))], names
    downloaded = download_now(srv, tmp_path / "web.tar")
    srv.stop()
    gk(tmp_path / "from-web", "backup", "restore", str(downloaded))  # verified against its manifest
    assert (tmp_path / "from-web" / "dav.sqlite3").exists() and (tmp_path / "from-web" / "chat.sqlite3").exists()

    new_dir = tmp_path / "restored"
    out = gk(new_dir, "backup", "restore", str(archive))
    assert "restored" in out.stdout
    restored = make_server("restored", FAST_AUTH)
    restored.ports = dict(srv.ports)  # the same gk.toml came back; the server starts on its ports
    assert restored.data_dir == new_dir
    restored.start()

    m = imaps(restored)
    m.select("INBOX")
    typ, data = m.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK"
    found = {
        re.search(rb"Subject: (.*?)\r\n", d[1]).group(1): d[0]  # type: ignore[union-attr]
        for d in data
        if isinstance(d, tuple)
    }
    assert set(found) == {b"kept flags", b"unread one"}
    assert b"\\Seen" in found[b"kept flags"] and b"$Work" in found[b"kept flags"]
    assert b"\\Seen" not in found[b"unread one"]
    m.select("Archive")
    typ, data = m.fetch("1", "(FLAGS)")
    assert b"\\Flagged" in data[0]
    m.logout()
    imaps(restored, BOB).logout()  # Bob's password came back too

    status, _, body = request(restored, "GET", f"/dav/{ALICE}/calendar/backup1.ics", None, ALICE, PASSWORD)
    assert status == 200 and "SUMMARY:dentist" in body

    c = connect(restored.port("chat.irc_port"), ALICE, "message-tags batch")
    c.until(r" 366 \S+ #general ")
    c.send("CHATHISTORY LATEST #general * 100")
    lines = c.until(r"BATCH -")
    assert any("remember the milk" in ln for ln in lines), lines
    c.close()


def download_now(srv: GKServer, dest: Path) -> Path:
    """The admin's "Download a backup now" over HTTPS, saved to ``dest``."""
    c = Client(srv, https=True)
    c.login(ALICE, PASSWORD)
    _, page = c.get("/admin/backup")
    assert "Download a backup now" in page
    conn = c.connection()
    conn.request(
        "POST",
        "/admin/backup/download",
        body=urllib.parse.urlencode({"csrf": c.csrf}),
        headers={"Cookie": c.cookie_header(), "Content-Type": "application/x-www-form-urlencoded"},
    )
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type") == "application/x-tar"
    assert resp.getheader("Transfer-Encoding") == "chunked"  # streamed as it is made, no length known ahead
    dest.write_bytes(resp.read())
    conn.close()
    return dest


def _flip_one_byte(archive: Path, member: str, out: Path) -> None:
    """A copy of ``archive`` with one byte changed inside ``member``'s content."""
    with tarfile.open(archive) as tar:
        offset = tar.getmember(member).offset_data
    data = bytearray(archive.read_bytes())
    data[offset] ^= 0x01
    out.write_bytes(bytes(data))


def test_restore_refuses_a_damaged_archive_and_a_data_dir_in_use(make_server, tmp_path):  # type: ignore[no-untyped-def]
    srv = make_server("src", {**FAST_AUTH, "http": {"https_port": 0}, "imap": {"port": 0}})
    srv.claimed({ALICE: PASSWORD}).start()
    m = imaps(srv)
    m.append("INBOX", None, None, simple_message("damaged later"))
    m.logout()
    archive = backup_of(srv)

    # the server holds its data dir: restore over it is refused, even with --force
    outside = tmp_path / archive.name
    outside.write_bytes(archive.read_bytes())
    out = gk(srv.data_dir, "backup", "restore", str(outside), "--force", check=False)
    assert out.returncode == 1 and "gk serve" in out.stderr and "stop it first" in out.stderr
    assert (srv.data_dir / "accounts.sqlite3").exists()
    # a second gk serve on the same data dir stops at once, saying why (serve.lock)
    second = gk(srv.data_dir, "serve", check=False)
    assert second.returncode == 1 and "another gk serve is running" in second.stderr + second.stdout

    with tarfile.open(archive) as tar:
        message = next(n for n in tar.getnames() if "/Maildir/cur/" in n)
    bad = tmp_path / "bad.tar"
    _flip_one_byte(archive, message, bad)
    target = tmp_path / "target"
    out = gk(target, "backup", "restore", str(bad), check=False)
    assert out.returncode == 1, out.stdout
    assert message in out.stderr and "damaged" in out.stderr
    assert not target.exists(), "a refused restore left files behind"
    assert not [p for p in tmp_path.iterdir() if "restoring" in p.name]

    # cut short (a backup killed, a download dropped): no manifest, refused
    cut = tmp_path / "cut.tar"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    out = gk(target, "backup", "restore", str(cut), check=False)
    assert out.returncode == 1 and str(cut) in out.stderr

    # a data dir that is not empty: refused without --force, moved aside with it
    target.mkdir()
    (target / "keep.txt").write_text("old")
    out = gk(target, "backup", "restore", str(archive), check=False)
    assert out.returncode == 1 and "--force" in out.stderr
    gk(target, "backup", "restore", str(archive), "--force")
    assert (target / "accounts.sqlite3").exists() and not (target / "keep.txt").exists()
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("target.before-restore-")]
    assert len(aside) == 1 and (aside[0] / "keep.txt").read_text() == "old"
