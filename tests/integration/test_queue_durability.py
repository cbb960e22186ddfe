# ruff: noqa: F811  (pytest fixtures imported from support.peermta / support.testca)
"""kill -9 while 200 queued messages are being delivered; restart; count what the peer got.

Every message acknowledged at port 587 must arrive. A message arrives exactly once, except
one the peer had already answered ``250`` to when GK died before committing "sent": that
one is sent again after the restart, so it may arrive twice. Only messages in flight at
the kill can be affected: at most ``per_domain_connections`` of them.
"""

from __future__ import annotations

import collections
import email
import json
import time

from support.gkserver import gk
from support.outbound import ALICE, message, start_gk, submit, wait_queue_empty
from support.peermta import peers  # noqa: F401

PASSWORD = "correct horse battery staple"
COUNT = 200
CONNECTIONS = 4


def test_kill_9_during_delivery_loses_nothing(make_server, dns_server, peers):
    peer = peers("127.0.0.2")
    peer.configure(rcpt_all=["451 4.3.0 not yet"] * 1_000_000, slow=0.02)  # hold deliveries back while we submit
    dns_server.add("example.org", "MX", "10 mx1.example.org.").add("mx1.example.org", "A", "127.0.0.2")
    srv = start_gk(make_server, dns_server, peers.port, retry_minutes=[0.01], per_domain_connections=CONNECTIONS)
    bodies = [message(n, subject=f"durable {n}") for n in range(COUNT)]
    submit(srv.port("smtp.submission_port"), ALICE, PASSWORD, ALICE, ["bob@example.org"], bodies)

    peer.configure(rcpt_all=[])  # the peer now accepts, slowly: delivery takes a few seconds
    deadline = time.monotonic() + 120
    while len(peer.messages()) < 30:
        assert time.monotonic() < deadline, srv.log()[-3000:]
        time.sleep(0.02)
    srv.kill9()
    at_kill = len(peer.messages())
    assert at_kill < COUNT, "delivery finished before the kill: the test proved nothing"

    log_before_restart = len(srv.log())
    srv.start()
    assert "recipient(s) pending" in srv.log()
    received = peer.wait_for(COUNT, timeout=180)
    deadline = time.monotonic() + 180
    while True:
        received = peer.messages()
        subjects = collections.Counter(email.message_from_bytes(body)["Subject"] for _, body in received)
        if len(subjects) == COUNT or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert set(subjects) == {f"durable {n}" for n in range(COUNT)}, "a message acknowledged with 250 was lost"
    duplicates = {s: c for s, c in subjects.items() if c > 1}
    assert all(c == 2 for c in duplicates.values()), duplicates
    assert len(duplicates) <= CONNECTIONS, duplicates
    wait_queue_empty(srv)
    assert len(peer.messages()) == COUNT + len(duplicates)
    assert list((srv.data_dir / "spool" / "queue").iterdir()) == []
    # one connection per destination slot, reused for many messages
    connects = srv.log()[log_before_restart:].count("outbound connected to mx1.example.org")
    clients = {tuple(meta["client"]) for meta, _ in peer.messages()[at_kill:]}
    assert connects <= 3 * CONNECTIONS and len(clients) <= connects, (connects, len(clients))
    print(f"after restart: {COUNT - at_kill} messages over {connects} connections")
    print(f"peer had {at_kill} at kill -9; after restart {COUNT} distinct, {len(duplicates)} sent twice")


def test_kill_9_after_the_peer_saved_but_before_its_250_sends_once_more(make_server, dns_server, peers):
    """The one case of a duplicate: the peer has the message, GK never heard its 250."""
    peer = peers("127.0.0.2")
    peer.configure(reply_delay=30)
    dns_server.add("example.org", "MX", "10 mx1.example.org.").add("mx1.example.org", "A", "127.0.0.2")
    srv = start_gk(make_server, dns_server, peers.port, retry_minutes=[0.01])
    submit(srv.port("smtp.submission_port"), ALICE, PASSWORD, ALICE, ["bob@example.org"], [message(1)])
    peer.wait_for(1)  # saved by the peer, whose 250 is 30 s away
    srv.kill9()
    peer.configure(reply_delay=0)
    srv.start()
    (first, _), (second, _) = peer.wait_for(2)
    assert first["rcpt_tos"] == second["rcpt_tos"] == ["bob@example.org"]
    wait_queue_empty(srv)
    time.sleep(1)
    assert len(peer.messages()) == 2  # sent once more, never a third time


def test_a_recipient_sent_just_before_kill_9_leaves_no_row_behind(make_server, dns_server, peers):
    """The state a kill -9 leaves between "recipient sent" and "message removed" (two commits),
    made deterministically: the peer holds its 250 until GK is killed, then the row is marked
    sent the way the first commit would have. After the restart the queue must be empty at once,
    with its spool file gone, and nothing sent again."""
    from gk.mail.queue.store import QueueStore

    peer = peers("127.0.0.2")
    peer.configure(reply_delay=600)  # the peer never answers before the kill
    dns_server.add("example.org", "MX", "10 mx1.example.org.").add("mx1.example.org", "A", "127.0.0.2")
    srv = start_gk(make_server, dns_server, peers.port, retry_minutes=[0.01])
    submit(srv.port("smtp.submission_port"), ALICE, PASSWORD, ALICE, ["bob@example.org"], [message(1)])
    peer.wait_for(1)
    srv.kill9()
    store = QueueStore(srv.data_dir)
    [row] = store.snapshot()
    [rcpt] = store.recipients_of(row["id"])
    store.record_attempt(rcpt["id"], host="mx1.example.org", outcome="sent", reply="250 2.0.0 OK")
    store.close()
    srv.start()
    assert "removed 1 finished message(s) a crash left in the queue" in srv.log()
    assert json.loads(gk(srv.data_dir, "queue", "list", "--json").stdout) == []
    assert list((srv.data_dir / "spool" / "queue").iterdir()) == []
    time.sleep(1)
    assert len(peer.messages()) == 1  # nothing was sent again
