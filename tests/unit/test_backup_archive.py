"""``gk.backup.archive`` without a server: what goes in (SQLite through the online backup API,
WAL content included, an open transaction not; Maildir tmp/ and models/ left out), the newest
``keep`` archives kept, and a backup killed with SIGKILL leaves nothing that looks complete."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

from gk.backup import archive


def box(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    maildir = d / "mail" / "a@test.example" / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "cur" / "1.a,U=1:2,S").write_bytes(b"Subject: kept\r\n\r\nbody\r\n")
    (maildir / "tmp" / "2.half").write_bytes(b"half delivered")
    (d / "models").mkdir()
    (d / "models" / "m.gguf").write_bytes(b"GGUF" * 100)
    (d / "gk.toml").write_text("[server]\n")
    (d / "dkim").mkdir()
    (d / "dkim" / "key.pem").write_text("secret")
    (d / "dkim" / "key.pem").chmod(0o600)
    return d


def members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_wal_content_is_in_and_an_open_transaction_is_not(tmp_path: Path) -> None:
    d = box(tmp_path)
    db = sqlite3.connect(d / "chat.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")  # committed rows stay in the -wal file
    db.execute("CREATE TABLE m(t TEXT)")
    db.execute("INSERT INTO m VALUES ('committed')")
    db.execute("BEGIN")
    db.execute("INSERT INTO m VALUES ('not yet')")  # a writer in the middle of its transaction
    made = archive.create(d, tmp_path / "out", "box.test.example")
    db.execute("ROLLBACK")
    names = members(made)
    assert "data/chat.sqlite3" in names and not [n for n in names if n.endswith(("-wal", "-shm"))]
    assert names["data/mail/a@test.example/Maildir/tmp"].isdir()  # the directory, not its files
    assert not [n for n in names if "/tmp/2.half" in n or n.startswith("data/models")]
    assert names["data/dkim/key.pem"].mode == 0o600
    archive.restore(made, tmp_path / "restored")
    rows = sqlite3.connect(tmp_path / "restored" / "chat.sqlite3").execute("SELECT t FROM m").fetchall()
    assert rows == [("committed",)]
    assert (tmp_path / "restored" / "mail/a@test.example/Maildir/tmp").is_dir()
    with_models = archive.create(d, tmp_path / "out2", "box.test.example", with_models=True)
    assert "data/models/m.gguf" in members(with_models)


def test_the_newest_keep_archives_stay(tmp_path: Path) -> None:
    d = box(tmp_path)
    out = d / "backup"
    made = [archive.create(d, out, "box.test.example", keep=3) for _ in range(5)]
    assert [p for p, _ in archive.archives(out)] == made[:-4:-1]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in made[2:])
    # the backup dir itself is never in an archive
    assert not [n for n in members(made[-1]) if n.startswith("data/backup")]


def test_a_backup_killed_mid_write_leaves_no_archive_that_looks_complete(tmp_path: Path) -> None:
    d = box(tmp_path)
    out = tmp_path / "out"
    code = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from gk.backup import archive
        def killed(self):
            os.kill(os.getpid(), signal.SIGKILL)  # after every member was written, before the end
            yield b""
        archive._Writer.end = killed
        archive.create(Path({str(d)!r}), Path({str(out)!r}), "box.test.example")
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    assert archive.archives(out) == []
    left = [p.name for p in out.iterdir()]  # the partial archive and the manifest's scratch file
    assert left and all(n.startswith(".gk-backup-") for n in left), left
    assert [n for n in left if n.endswith(".partial")]


def test_a_message_renamed_or_expunged_during_the_copy(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Between the listing of a Maildir directory and the copy of a file, the store renames one
    message (a flag change: new name, same unique part), moves a new one from new/ to cur/ (cur/
    was copied already) and deletes another (EXPUNGE): the first two go in once each under their
    new names, the third is absent, and the archive still verifies."""
    d = box(tmp_path)
    cur = d / "mail" / "a@test.example" / "Maildir" / "cur"
    (cur / "2.b,U=2:2,").write_bytes(b"Subject: expunged\r\n\r\n")
    (cur.parent / "new" / "3.c").write_bytes(b"Subject: just delivered\r\n\r\n")
    real_walk = archive._walk
    walks = []

    def racing_walk(*args, **kw):  # type: ignore[no-untyped-def]
        walks.append(1)
        for rel, entry in real_walk(*args, **kw):
            if len(walks) == 1:  # the first pass looks for databases only
                yield rel, entry
                continue
            renamed = entry is not None and entry.name == "1.a,U=1:2,S"
            if renamed:
                Path(entry.path).rename(cur / "1.a,U=1:2,FS")  # flagged meanwhile
            if entry is not None and entry.name == "2.b,U=2:2,":
                Path(entry.path).unlink()  # expunged meanwhile
            if entry is not None and entry.name == "3.c":
                Path(entry.path).rename(cur / "3.c,U=3:2,S")  # picked up by a client, read
            yield rel, entry
            if renamed:  # readdir may list the new name later in the same directory
                with os.scandir(cur) as it:
                    new = next(e for e in it if e.name == "1.a,U=1:2,FS")
                yield rel.replace("1.a,U=1:2,S", "1.a,U=1:2,FS"), new

    monkeypatch.setattr(archive, "_walk", racing_walk)
    made = archive.create(d, tmp_path / "out", "box.test.example")
    with tarfile.open(made) as tar:
        messages = sorted(n.rsplit("/", 2)[-2] + "/" + n.rsplit("/", 1)[1] for n in tar.getnames() if "/Maildir/" in n)
    assert [n for n in messages if n.startswith(("cur/", "new/"))] == ["cur/1.a,U=1:2,FS", "cur/3.c,U=3:2,S"]
    archive.restore(made, tmp_path / "restored")
    restored = tmp_path / "restored" / "mail" / "a@test.example" / "Maildir"
    assert sorted(p.name for p in (restored / "cur").iterdir()) == ["1.a,U=1:2,FS", "3.c,U=3:2,S"]
    assert not list((restored / "new").iterdir())
