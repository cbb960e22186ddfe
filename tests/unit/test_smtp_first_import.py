"""The SMTP session's modules (aiosmtpd, attrs, ``gk.mail.smtp.session``) load at the first
connection, not at start, and in the CPU pool, not on the hub: the listeners are handed to the
asyncio loop only once that import has run (``SMTPService._serve_from_first_connection``).
Imported by the loop's protocol factory, on the hub, it held every other connection ~45 ms."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import smtplib, socket, sys
import gevent, gevent.monkey

gevent.monkey.patch_all()
from pathlib import Path
from gk.config import Config
from gk.context import build_context
from gk.mail.smtp import service as smtp_service

main = gevent.monkey.get_original("threading", "get_ident")()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


config = Config()
config.server.bind = "127.0.0.1"
config.server.hostname = "mx.test.example"
config.smtp.port, config.smtp.submission_port, config.smtp.submissions_port = free_port(), free_port(), free_port()
ctx = build_context(config, Path(sys.argv[1]) / "data")
sys.path.insert(0, sys.argv[1])
smtp_service.SESSION_MODULE = "gk_slow_smtp_session"
svc = smtp_service.SMTPService(ctx)
svc.listen()
gevent.sleep(0.2)
loaded_idle = "gk.mail.smtp.session" in sys.modules or "aiosmtpd" in sys.modules
client = smtplib.SMTP("127.0.0.1", config.smtp.port, timeout=60)
code = client.ehlo()[0]
client.quit()
import gk_slow_smtp_session

print(loaded_idle, gk_slow_smtp_session.WHERE != main, "gk.mail.smtp.session" in sys.modules, code)
svc.stop(1)
"""

SLOW = """
import gevent.monkey

WHERE = gevent.monkey.get_original("threading", "get_ident")()
import gk.mail.smtp.session  # the real one, as SESSION_MODULE names it in gk serve

gevent.monkey.get_original("time", "sleep")(0.3)  # a slow import, as on a small board
"""


def test_the_first_connection_loads_the_session_in_the_cpu_pool_and_is_served(tmp_path: Path) -> None:
    (tmp_path / "gk_slow_smtp_session.py").write_text(SLOW)
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    # not loaded while idle; loaded off the hub's thread; the client got its greeting and EHLO
    assert out.stdout.split() == ["False", "True", "True", "250"], out.stdout + out.stderr
