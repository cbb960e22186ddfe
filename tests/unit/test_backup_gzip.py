"""``[backup] compress = "gzip"``: the archive is gzipped as it is written (a stream: the same
~256 KiB pool calls), named ``.tar.gz``, listed, pruned and restored like a ``.tar``; an
uncompressed archive still restores; a disk full mid-write leaves nothing behind either."""

from __future__ import annotations

import errno
import gzip
from pathlib import Path
from typing import Any

import pytest

from gk.backup import archive


def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    cur = data / "mail" / "a@example.test" / "Maildir" / "cur"
    cur.mkdir(parents=True)
    for i in range(40):  # text mail: compresses well
        body = "".join(f"Line {j} of message {i}: the quick brown fox jumps over the lazy dog.\n" for j in range(500))
        (cur / f"{i}.box:2,S").write_text(f"Subject: m{i}\n\n{body}")
    (data / "gk.toml").write_text("[server]\n")
    return data


def test_a_gzipped_archive_is_written_as_a_stream_and_restores(tmp_path: Path) -> None:
    data = data_dir(tmp_path)
    out = tmp_path / "out"
    calls: list[str] = []

    def run(fn: Any, *args: Any) -> Any:  # what gk serve's pool sees: one call per step
        calls.append(getattr(fn, "__name__", repr(fn)))
        return fn(*args)

    plain = archive.create(data, out, "box.test.example")
    packed = archive.create(data, out, "box.test.example", run=run, compress=True)
    assert packed.name.endswith(".tar.gz") and packed.read_bytes()[:2] == b"\x1f\x8b"
    assert packed.stat().st_size < plain.stat().st_size / 5  # the same line again and again
    assert calls.count("_write_step") > 5 and "_gzip" in calls  # ~256 KiB of tar per call, compressed there
    with gzip.open(packed) as g:
        assert g.read(512).startswith(archive.INFO.encode())  # a tar inside
    assert {p for p, _ in archive.archives(out)} == {plain, packed}
    _, moved = archive.restore(packed, tmp_path / "r1")
    assert moved is None
    assert sorted(
        p.name for p in (tmp_path / "r1" / "mail" / "a@example.test" / "Maildir" / "cur").iterdir()
    ) == sorted(p.name for p in (data / "mail" / "a@example.test" / "Maildir" / "cur").iterdir())
    archive.restore(plain, tmp_path / "r2")  # the uncompressed one as before
    assert (tmp_path / "r2" / "gk.toml").read_text() == "[server]\n"
    archive.prune(out, 1)
    assert len(archive.archives(out)) == 1  # both kinds count against keep


def test_a_cut_short_gzipped_archive_is_refused(tmp_path: Path) -> None:
    packed = archive.create(data_dir(tmp_path), tmp_path / "out", "box.test.example", compress=True)
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(packed.read_bytes()[: packed.stat().st_size // 2])
    with pytest.raises(archive.BackupError, match="cut short|damaged"):
        archive.restore(cut, tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_a_disk_full_while_gzipping_leaves_no_partial_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = data_dir(tmp_path)
    out = tmp_path / "out"
    older = archive.create(data, out, "box.test.example", compress=True)
    real_step = archive._write_step
    calls = []

    def full(chunks: Any, f: Any) -> bool:
        calls.append(1)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_step(chunks, f)

    monkeypatch.setattr(archive, "_write_step", full)
    with pytest.raises(archive.NoSpace, match="1 older archive"):
        archive.create(data, out, "box.test.example", compress=True)
    assert [p.name for p in out.iterdir()] == [older.name]


def test_the_backup_page_lists_and_serves_a_gzipped_archive(tmp_path: Path) -> None:
    from support.wsgiclient import ADMIN, ADMIN_PW, set_up_web, signed_in

    web = set_up_web(tmp_path / "box")
    kept = archive.create(web.data_dir, web.data_dir / "backup", "box.test.example", compress=True)
    c = signed_in(web, ADMIN, ADMIN_PW)
    assert f'href="/admin/backup/files/{kept.name}"' in c.get("/admin/backup").text
    resp = c.get(f"/admin/backup/files/{kept.name}")
    assert resp.status == 200 and resp.header("Content-Type") == "application/gzip"
    assert resp.body == kept.read_bytes()
