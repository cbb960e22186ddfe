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


# -- the free-space check of a gzipped backup ------------------------------------------------------


def mixed_data_dir(tmp_path: Path, text_mb: int = 6, binary_mb: int = 2) -> Path:
    """Text mail (deflates to a fraction), already-compressed attachments (do not), a database."""
    import os
    import random
    import sqlite3

    rnd = random.Random(7)
    words = [f"w{rnd.randrange(5000)}" for _ in range(20_000)]
    data = tmp_path / "data"
    cur = data / "mail" / "a@example.test" / "Maildir" / "cur"
    cur.mkdir(parents=True)
    for i in range(text_mb * 8):  # ~128 KB of text each
        body = " ".join(rnd.choices(words, k=20_000))
        (cur / f"{i}.box:2,S").write_text(f"Subject: m{i}\n\n{body}\n")
    for i in range(binary_mb * 4):  # ~256 KB of random bytes: a JPEG, a ZIP
        (cur / f"b{i}.box:2,S").write_bytes(os.urandom(256 * 1024))
    db = sqlite3.connect(data / "accounts.sqlite3")
    db.execute("CREATE TABLE t (x TEXT)")
    db.executemany("INSERT INTO t VALUES (?)", [(f"user{i}@example.test hash{i:08d}",) for i in range(20_000)])
    db.commit()
    db.close()
    return data


def estimate(data: Path, compress: bool, seed: int = 1) -> archive.Estimate:
    import random

    est = archive.Estimate(data, compress=compress, rng=random.Random(seed))
    while est.step():
        pass
    return est


@pytest.mark.parametrize("seed", range(4))
def test_the_gzip_estimate_covers_the_archive_and_is_not_the_uncompressed_size(tmp_path: Path, seed: int) -> None:
    data = mixed_data_dir(tmp_path)
    packed = archive.create(data, tmp_path / "out", "box.test.example", compress=True).stat().st_size
    plain = estimate(data, compress=False)
    est = estimate(data, compress=True, seed=seed)
    assert packed <= est.archive_size() < packed * 1.3  # covers it, within 30 %
    assert est.archive_size() < plain.archive_size() * 0.75  # the old check counted this
    assert est.sample_ratio < est.ratio < 1.0


def test_the_gzip_estimate_of_data_that_does_not_compress_is_its_size(tmp_path: Path) -> None:
    data = mixed_data_dir(tmp_path, text_mb=0, binary_mb=6)
    packed = archive.create(data, tmp_path / "out", "box.test.example", compress=True).stat().st_size
    est = estimate(data, compress=True)
    assert est.ratio > 0.99 and packed <= est.archive_size()


def test_a_gzipped_backup_that_fits_compressed_is_not_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, the check counted the uncompressed size: a USB stick with room for the .tar.gz
    (but not the .tar) refused every run. Still refused: one with room for neither."""
    import os

    MIB = 1024 * 1024

    def fake_statvfs(free: int) -> Any:
        return lambda path: os.statvfs_result((4096, 1, 10**12, free, free, 10**5, 10**5, 10**5, 0, 255))

    data = mixed_data_dir(tmp_path, text_mb=16, binary_mb=1)
    plain = archive.Estimate(data)
    while plain.step():
        pass
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(os, "statvfs", fake_statvfs(plain.needed() - 4 * MIB))  # room for the .tar.gz only
    made = archive.create(data, out, "box.test.example", compress=True)
    gz = estimate(data, compress=True)
    assert made.name.endswith(".tar.gz") and made.stat().st_size < gz.archive_size() < plain.archive_size() * 0.7
    made.unlink()
    monkeypatch.setattr(os, "statvfs", fake_statvfs(gz.needed() // 2))
    with pytest.raises(archive.NoSpace, match="gzipped to about [0-9]+% of its size"):
        archive.create(data, out, "box.test.example", compress=True)
    assert list(out.iterdir()) == []
