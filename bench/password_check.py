"""The common-password check's cost (issue 10): what ``zxcvbn`` adds when a password is set.

Measured in fresh interpreters (median of RUNS each): the RSS and time of ``import zxcvbn`` and of
the first check (it builds its ranked dictionaries then), and the time of one more check; against
the named peer measured in the same run, one argon2id hash at the box's parameters (m = 19 MiB,
t = 2: ``gk.accounts.passwords``), which every password set already pays. The import happens on the
first password set, never at ``gk serve`` start (``gk.accounts.passwords.guess_score``).
Run: ``.venv/bin/python -m bench password_check`` (BENCH_PW_RUNS to change RUNS).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

RUNS = int(os.environ.get("BENCH_PW_RUNS", "5"))

PROBE = r"""
import json, time
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
import argon2
from gk.accounts.passwords import PasswordHasher
base = rss()
t = time.perf_counter()
PasswordHasher().hash("lamp orbit seventh gravel")
argon2_s = time.perf_counter() - t
argon2_rss = rss() - base
base = rss()
t = time.perf_counter()
from gk.accounts.passwords import guess_score
guess_score("lamp orbit seventh gravel", ("alice@example.org",))
first_s = time.perf_counter() - t
first_rss = rss() - base
t = time.perf_counter()
guess_score("another passphrase 42", ("bob@example.org",))
again_s = time.perf_counter() - t
print(json.dumps({"argon2_s": argon2_s, "argon2_rss": argon2_rss, "first_s": first_s,
                  "first_rss": first_rss, "again_s": again_s}))
"""


def main() -> int:
    runs = []
    for _ in range(RUNS):
        out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
        runs.append(json.loads(out))

    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    print(f"runs: {RUNS} (median)")
    print(f"argon2id hash (peer):            {med('argon2_s') * 1000:7.1f} ms, +{med('argon2_rss'):5.1f} MB RSS")
    print(f"zxcvbn import + first check:     {med('first_s') * 1000:7.1f} ms, +{med('first_rss'):5.1f} MB RSS")
    print(f"zxcvbn one more check:           {med('again_s') * 1000:7.1f} ms")
    print(f"ratio first check / argon2 hash: {med('first_s') / med('argon2_s'):.2f}x time")
    print(f"ratio next check / argon2 hash:  {med('again_s') / med('argon2_s'):.2f}x time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
