"""What a started ``gk serve`` has imported while nobody used it (issue 11, memory: idle RSS <= 45 MB).

``tests/unit/test_idle_imports.py`` checks the imports of the serving stack's modules; this test
reads ``sys.modules`` of a real ``gk serve`` (every feature on, started and stopped with nothing
asked of it), so an import made by a feature's ``start`` (the mailbox's time zone, the DAV
service's iTIP watcher, the web's route tables and wizard steps) is caught too.
"""

from __future__ import annotations

import sys
import time

from support import gkserver
from support.idle import LAZY

# ``gk`` with its modules written to argv[1] at exit (after SIGTERM's orderly shutdown)
WRAPPER = r"""
import atexit, sys
path = sys.argv.pop(1)
def dump():
    with open(path, "w") as f:
        f.write("\n".join(sorted(sys.modules)))
atexit.register(dump)
from gk.cli import main
sys.exit(main())
"""

# loaded by a first use only: the first mail stored (its zone), the first INBOX mail (iTIP)
STARTED_LAZY = ("gk.dav.itip", "gk.dav.inbox")


def test_an_idle_server_imports_no_page_and_no_first_use_module(make_server, monkeypatch, tmp_path):  # type: ignore[no-untyped-def]
    modules = tmp_path / "modules.txt"
    monkeypatch.setattr(gkserver, "GK", [sys.executable, "-c", WRAPPER, str(modules)])
    srv = make_server().start()
    time.sleep(1)
    assert srv.stop() == 0, srv.log()[-2000:]
    loaded = set(modules.read_text().split())
    assert {"gk.web.routes", "gk.web.wizardsteps", "gk.dav.service", "gk.mail.queue.runner"} <= loaded
    assert sorted(loaded & {*LAZY, *STARTED_LAZY}) == []
