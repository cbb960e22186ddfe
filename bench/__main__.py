"""``python -m bench [NAME ...]``: run every bench module in this directory (or the named ones).

A bench module has ``main() -> int``; it prints its own report. One failing bench does not stop
the others; the exit status is non-zero if any failed.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
import traceback
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    names = argv or sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))
    failed = []
    for name in names:
        print(f"=== bench.{name}", flush=True)
        started = time.monotonic()
        try:
            module = importlib.import_module(f"bench.{name}")
            rc = module.main()
        except Exception:
            traceback.print_exc()
            rc = 1
        print(f"=== bench.{name}: {'ok' if rc == 0 else 'FAILED'} in {time.monotonic() - started:.1f}s\n", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print("failed benches: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
