"""``gk serve`` starts the features of ``gk.features`` in order and SIGTERM stops every one of
them in reverse, the mailbox store last: its clean close removes the ``index.open`` marker of
each index it had open (after a crash the marker stays and the next start runs quick_check)."""

from __future__ import annotations

import re

from support.imap import ALICE, client, start_imap_server

from gk.features import FEATURES


def test_sigterm_stops_every_started_feature_in_reverse_order(make_server):  # type: ignore[no-untyped-def]
    srv = start_imap_server(make_server)
    c = client(srv)
    c.select_folder("INBOX")  # the mailbox store opens alice's index
    marker = srv.data_dir / "mail" / ALICE / "index.open"
    assert marker.exists()
    assert srv.stop(timeout=90) == 0
    log = srv.log()
    ready = re.search(r"ready in [\d.]+s \(features: ([a-z, ]+)\)", log)
    assert ready, log
    started = ready.group(1).split(", ")
    declared = [f.name for f in FEATURES if f.start is not None]
    assert started == [name for name in declared if name in started]  # in the declared order
    assert {"mailbox", "smtp", "imap", "queue", "web"} <= set(started)
    stopped = re.findall(r"gk\.server: stopped ([a-z]+)$", log, re.MULTILINE)
    assert stopped == started[::-1], log
    assert "error stopping" not in log
    assert not marker.exists(), "the mailbox store was not closed cleanly"
