"""In-process breakdown of a cold BODYSTRUCTURE FETCH (``bench imap``'s "older" row), no peer.

``python -m bench._imap_cold``: the bench's corpus in the real IMAP session of the in-process
harness (``tests/support/imapharness``; the background pass held off, ``BACKFILL_IDLE``), 20
distinct ranges of 100 never-parsed messages each fetched cold and then again (stored bytes),
and the parts of the cold work timed apart on 40 other sets of 100 files: the reads
(``_for_parse``), ``quick_wire`` alone, and ``_body_wires`` (both, with its overheads).
Not run by ``python -m bench`` (a name starting with ``_``): a tool for finding where the
row's time goes, used in docs/performance.md (sessions 29-30).
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.imap import make_maildir

REPO = Path(__file__).resolve().parents[1]


def _ms(samples: list[float]) -> str:
    return f"median {1e3 * statistics.median(samples):.2f} ms, min {1e3 * min(samples):.2f}"


def fetches(corpus: Path, root: Path) -> None:
    sys.path.insert(0, str(REPO / "tests"))
    import gevent
    from support.imapharness import USER, IMAPHarness

    import gk.mail.mailbox.store as st

    st.BACKFILL_IDLE = 3600.0  # as in the bench's workload: the mailbox is never idle
    h = IMAPHarness(root / "data")
    target = h.ctx.mail_root / USER / "Maildir"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(corpus, target)
    c = h.connect()
    c.login()
    c.cmd("SELECT INBOX")
    c.cmd("UID FETCH 1:* (UID FLAGS ENVELOPE)")
    gevent.sleep(1)  # the newest 200 made by the pass after the ENVELOPEs
    cold: list[float] = []
    again: list[float] = []
    for i in range(20):
        top = 4700 - 100 * i
        for out in (cold, again):
            t = time.perf_counter()
            c.cmd(f"FETCH {top - 99}:{top} (UID FLAGS BODYSTRUCTURE)")
            out.append(time.perf_counter() - t)
    print(f"FETCH of 100 cold BODYSTRUCTUREs: {_ms(cold)}")
    print(f"the same FETCH again (stored):    {_ms(again)}")
    c.close()


def parts(corpus: Path) -> None:
    import gk.mail.mailbox.store as st
    from gk.mail.mailbox.quickwire import quick_wire

    files = sorted(str(p) for p in (corpus / "cur").iterdir())

    def reads(batch: list[str]) -> None:
        for p in batch:
            st._for_parse(p).close()

    def quick(datas: list[bytes]) -> None:
        for d in datas:
            quick_wire(d)

    runs: dict[str, list[float]] = {"reads": [], "quick_wire": [], "_body_wires": []}
    for r in range(40):
        batch = files[100 * r : 100 * r + 100]
        datas = [Path(p).read_bytes() for p in batch]
        jobs: list[tuple[str, Callable[[], object]]] = [
            ("reads", lambda b=batch: reads(b)),
            ("quick_wire", lambda d=datas: quick(d)),
            ("_body_wires", lambda b=batch: st._body_wires([(p, None) for p in b])),
        ]
        for name, fn in jobs:
            t = time.perf_counter()
            fn()
            runs[name].append(time.perf_counter() - t)
    for name, samples in runs.items():
        print(f"100 files, {name:12} {_ms(samples)}")


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="gk-bench-imapcold-"))
    try:
        make_maildir(root / "corpus")
        parts(root / "corpus")
        fetches(root / "corpus", root)
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
