"""Turning the assistant on costs (almost) nothing until a model is used (issue 14: <= 3 MB).

Measured from /proc in a fresh interpreter: the serving stack imported first, then the AI
service started (runtime, queue, /v1 app, no model); llama_cpp and numpy must not be imported.
"""

from __future__ import annotations

import subprocess
import sys

CODE = r"""
import gc, sys, tempfile
from pathlib import Path

def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

import gk.cli, gk.server, gk.web.service, gk.mail.smtp.service, gk.mail.imap.service
from gk.config import AIConfig
gc.collect()
before = rss_kib()
from gk.ai.service import AIService
svc = AIService(Path(tempfile.mkdtemp()), AIConfig())
import gevent; gevent.sleep(0.01)
gc.collect()
after = rss_kib()
heavy = [m for m in ("llama_cpp", "numpy", "gguf") if m in sys.modules]
print(after - before, ",".join(heavy))
svc.stop(1)
"""


def test_the_ai_service_without_a_model_stays_under_3_mb():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120, check=True)
    grown_kib, heavy = (out.stdout.strip().split(" ") + [""])[:2]
    assert heavy == "", f"imported at start: {heavy}"
    assert int(grown_kib) <= 3 * 1024, f"RSS grew {grown_kib} KiB"
    print(f"AI service started without a model: RSS +{grown_kib} KiB")
