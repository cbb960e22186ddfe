"""The IMAP session's module is imported at the first connection, in the CPU pool
(``gk.mail.imap.service.session_class``): connections that come while that import runs wait for
it and get the class, not the half-made module ``sys.modules`` already holds (the first run of
the suite after the change: a second login at once crashed with "partially initialized module")."""

from __future__ import annotations

import sys
from pathlib import Path

import gevent
import pytest

from gk.mail.imap import service

SLOW = """
import time
time.sleep(0.3)  # an import that takes a while, as the commands' modules do on a small board


class Session:
    pass
"""


def test_connections_during_the_first_import_wait_for_the_whole_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "gk_slow_session.py").write_text(SLOW)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(service, "SESSION_MODULE", "gk_slow_session")
    monkeypatch.setattr(service, "_session", None, raising=False)
    monkeypatch.delitem(sys.modules, "gk_slow_session", raising=False)
    first = [gevent.spawn(service.session_class)]
    gevent.sleep(0.1)  # the import has begun in the pool: the module is in sys.modules, half made
    first += [gevent.spawn(service.session_class) for _ in range(2)]
    gevent.joinall(first, timeout=30, raise_error=True)
    classes = {g.value for g in first}
    assert len(classes) == 1 and next(iter(classes)).__name__ == "Session"
    assert service.session_class() is next(iter(classes))  # kept: no second import
