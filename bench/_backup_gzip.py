"""``python -m bench._backup_gzip``: a plain and a gzipped archive of a generated ~50 MB data dir
(``bench.imap.make_maildir``, ``BENCH_IMAP_MESSAGES``, default 2700 here), 3 runs each, each
create + restore in a fresh process: CPU (``time.process_time``), wall, size, peak RSS; and the
free-space estimate's walk (``archive.Estimate``, plain and gzip: its sampled ratio) against the
archive it predicts. Run it under
``flock /work/bench.lock`` (docs/performance.md "Compressed archives", "Backup safeguards")."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 3


def _one(root: Path, mode: str) -> None:
    from gk.backup import archive

    data = root / "data"
    c, t = time.process_time(), time.perf_counter()
    p = archive.create(data, root / "out", "bench", compress=mode == "gzip")
    cpu, wall = time.process_time() - c, time.perf_counter() - t
    c, t = time.process_time(), time.perf_counter()
    archive.restore(p, root / "restored")
    rcpu, rwall = time.process_time() - c, time.perf_counter() - t
    shutil.rmtree(root / "restored")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{mode:5}: archive {p.stat().st_size / 1e6:.1f} MB, create cpu {cpu:.2f}s wall {wall:.2f}s; "
        f"restore cpu {rcpu:.2f}s wall {rwall:.2f}s; peak RSS {rss:.0f} MB",
        flush=True,
    )
    p.unlink()


def main() -> int:
    os.environ.setdefault("BENCH_IMAP_MESSAGES", "2700")
    from bench.imap import make_maildir
    from gk.backup import archive

    with tempfile.TemporaryDirectory(prefix="gk-bench-backup-") as tmp:
        root = Path(tmp)
        data = root / "data"
        make_maildir(data / "mail" / "u@example.test" / "Maildir")
        (data / "gk.toml").write_text("[server]\n")
        total = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
        print(f"data dir: {total / 1e6:.1f} MB")
        packed = archive.create(data, root / "out", "bench", compress=True)
        packed_size = packed.stat().st_size
        packed.unlink()
        print(f"gzip archive: {packed_size / 1e6:.1f} MB")
        for _ in range(RUNS):
            for compress in (False, True):
                t, c = time.perf_counter(), time.process_time()
                est = archive.Estimate(data, compress=compress)
                steps = 1
                while est.step():
                    steps += 1
                gz = (
                    f", ratio sampled {est.sample_ratio:.3f} bound {est.ratio:.3f}, "
                    f"{est.archive_size() / packed_size - 1:+.1%} over the .tar.gz"
                    if compress
                    else ""
                )
                print(
                    f"estimate{' gzip' if compress else ''}: {est.entries} entries in {steps} steps, "
                    f"{time.perf_counter() - t:.3f}s wall {time.process_time() - c:.3f}s cpu: archive "
                    f"{est.archive_size() / 1e6:.1f} MB, needs {est.needed() / 1e6:.1f} MB free{gz}"
                )
        for _ in range(RUNS):
            for mode in ("plain", "gzip"):
                subprocess.run([sys.executable, "-m", "bench._backup_gzip", mode, str(root)], check=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3:
        _one(Path(sys.argv[2]), sys.argv[1])
    else:
        sys.exit(main())
