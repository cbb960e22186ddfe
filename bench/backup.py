"""Backup: ``gk backup create`` of a data dir holding the IMAP bench's corpus, while ``gk serve``
runs, against GNU ``tar cf`` of the same data dir in the same run.

The corpus is ``bench.imap``'s Maildir (5,000 realistic messages, ~92 MB), times
``BENCH_BACKUP_COPIES`` users (1 by default; more to show that memory stays flat as the mailbox
grows), indexed by one IMAP SELECT + FETCH per user before the backup. Measured, ``REPEAT``
times each: wall time and the peak RSS of the backup process (its ``VmHWM``) for
``gk backup create`` (SQLite online-backup snapshots, sha256 of every file, a manifest, fsync)
and for ``tar cf`` (a plain copy: no snapshot, no checksum, no fsync); then ``gk backup restore``
of the archive (verifies every sha256, unpacks, one sync) against ``tar xf`` of it, and what
``gzip -1`` would cost
(time and size of compressing the archive), to decide whether the archive should be .tar.gz.
Run: ``flock /work/bench.lock .venv/bin/python -m bench backup``.
"""

from __future__ import annotations

import imaplib
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.imap import GK, PASSWORD, USER, make_maildir

COPIES = int(os.environ.get("BENCH_BACKUP_COPIES", "1"))
REPEAT = int(os.environ.get("BENCH_BACKUP_REPEAT", "3"))
GK_CMD = [sys.executable, "-m", "gk"]


def timed(cmd: list[str], ok: tuple[int, ...] = (0,), **kw: object) -> tuple[float, int]:
    """(wall seconds, peak RSS in MB) of ``cmd``, which must exit with a code in ``ok``.

    The peak is the program's own ``VmHWM`` (read every 10 ms until it exits): ``wait4``'s
    ``ru_maxrss`` keeps the high-water mark of the forked Python parent across the exec."""
    kw.setdefault("stdout", subprocess.DEVNULL)
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, **kw)  # type: ignore[call-overload]
    peak = 0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    wall = time.perf_counter() - t
    if proc.returncode not in ok:
        raise RuntimeError(f"{cmd} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return wall, peak // 1024


def index(srv: GK, users: list[str]) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    for user in users:
        m = imaplib.IMAP4_SSL("127.0.0.1", srv.port, ssl_context=ctx, timeout=300)
        m.login(user, PASSWORD)
        m.select("INBOX")
        m.fetch("1:*", "(FLAGS ENVELOPE)")
        m.logout()


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="gk-bench-backup-"))
    try:
        corpus = root / "corpus"
        make_maildir(corpus)
        srv = GK(root, corpus)
        users = [USER]
        try:
            for i in range(1, COPIES):
                user = f"bench{i}@bench.example"
                subprocess.run(
                    [*GK_CMD, "user", "add", user, "--password-stdin", "--data-dir", str(srv.data)],
                    input=PASSWORD + "\n",
                    text=True,
                    check=True,
                    capture_output=True,
                )
                shutil.copytree(corpus, srv.data / "mail" / user / "Maildir", dirs_exist_ok=True)
                users.append(user)
            index(srv, users)
            files = sum(1 for u in users for _ in (srv.data / "mail" / u / "Maildir" / "cur").iterdir())
            size = sum(p.stat().st_size for p in srv.data.rglob("*") if p.is_file())
            print(f"data dir: {len(users)} user(s), {files} messages, {size / 1e6:.0f} MB; gk serve running")
            rows: dict[str, list[tuple[float, int]]] = {"gk backup create": [], "tar cf": []}
            out = root / "out"
            archive = None
            for _ in range(REPEAT):
                shutil.rmtree(out, ignore_errors=True)
                rows["gk backup create"].append(
                    timed([*GK_CMD, "backup", "create", "--to", str(out), "--data-dir", str(srv.data)])
                )
                archive = next(out.glob("gk-backup-*.tar"))
                # GNU tar exits 1 on "file changed as we read it" (the live index and its WAL:
                # what makes a file copy of a running server's databases unusable)
                peer = ["tar", "cf", str(root / "peer.tar"), "-C", str(srv.data), "."]
                rows["tar cf"].append(timed(peer, ok=(0, 1)))
        finally:
            srv.stop()
        assert archive is not None
        restored = root / "restored"
        rows["gk backup restore"] = []
        for _ in range(REPEAT):
            shutil.rmtree(restored, ignore_errors=True)
            rows["gk backup restore"].append(
                timed([*GK_CMD, "backup", "restore", str(archive), "--data-dir", str(restored)])
            )
        rows["tar xf (restore's peer)"] = []
        for _ in range(REPEAT):
            shutil.rmtree(restored, ignore_errors=True)
            restored.mkdir()
            rows["tar xf (restore's peer)"].append(timed(["tar", "xf", str(archive), "-C", str(restored)]))
        rows["gzip -1 of the archive"] = []
        for _ in range(REPEAT):
            with open(root / "a.tar.gz", "wb") as gz:
                rows["gzip -1 of the archive"].append(timed(["gzip", "-1", "-c", str(archive)], stdout=gz))
        a_size, gz_size = archive.stat().st_size, (root / "a.tar.gz").stat().st_size
        import tarfile

        with tarfile.open(archive) as tar:
            big = sorted(((m.size, m.name) for m in tar.getmembers()), reverse=True)[:3]
        print("largest members: " + ", ".join(f"{n} {s / 1e6:.1f} MB" for s, n in big))
        print(f"tar cf: {(root / 'peer.tar').stat().st_size / 1e6:.1f} MB")
        print(f"archive {a_size / 1e6:.1f} MB; gzip -1: {gz_size / 1e6:.1f} MB ({gz_size / a_size:.2f} of it)")
        print(f"{'run':26} {'wall s (each run)':>28} {'peak RSS MB':>12}")
        for name, runs in rows.items():
            walls = " ".join(f"{w:.2f}" for w, _ in runs)
            print(f"{name:26} {walls:>28} {max(r for _, r in runs):>12}")
        gk_best = min(w for w, _ in rows["gk backup create"])
        tar_best = min(w for w, _ in rows["tar cf"])
        print(f"gk backup create / tar cf (best of {REPEAT}): {gk_best / tar_best:.2f}")
        print(f"throughput: gk backup create {a_size / 1e6 / gk_best:.0f} MB/s")
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)
