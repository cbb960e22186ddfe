# ruff: noqa: F811  (pytest fixtures imported from support.peermta / support.testca)
"""Bad input on the way out: no DNS, a timing-out MX, a peer dropping mid-DATA, a garbled reply,
a 4xx storm. Each leads to retries with the reason recorded — never a lost message, a crash
or a hot loop.
"""

from __future__ import annotations

import os
import time

from support.gkserver import gk
from support.outbound import (
    ALICE,
    dsns,
    inject,
    message,
    queue_list,
    queue_show,
    start_gk,
    wait_deferred,
    wait_queue_empty,
)
from support.peermta import peers  # noqa: F401
from support.testca import ca  # noqa: F401


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def example_org(dns_server) -> None:  # type: ignore[no-untyped-def]
    dns_server.add("example.org", "MX", "10 mx1.example.org.").add("mx1.example.org", "A", "127.0.0.2")


def test_no_dns_answer_keeps_the_message_and_does_not_spin(make_server, dns_server, peers):
    dns_server.stop()  # the resolver's address answers nothing: every lookup times out
    srv = start_gk(make_server, dns_server, peers.port, retry_minutes=[0.02])
    msg_id = inject(srv, ALICE, ["bob@example.org"], message(1))
    row = wait_deferred(srv, msg_id, "bob@example.org")
    assert "MX lookup of example.org" in row["attempts"][0]["reply"]
    (listed,) = queue_list(srv)
    assert listed["rcpt"] == "bob@example.org" and "timed out" in listed["last_error"]
    before, t0 = cpu_seconds(srv.pid()), time.monotonic()
    time.sleep(3)
    used = cpu_seconds(srv.pid()) - before
    assert used < 0.5 * (time.monotonic() - t0), f"{used:.2f}s CPU in 3 s with one stuck message"
    assert srv.proc.poll() is None and dsns(srv) == []
    doomed = inject(srv, ALICE, ["carol@example.org"], message(2, to="carol@example.org"))
    assert gk(srv.data_dir, "queue", "delete", str(doomed)).stdout.strip() == f"deleted message {doomed}"
    assert [r["rcpt"] for r in queue_list(srv)] == ["bob@example.org"]
    assert queue_show(srv, doomed) is None
    # DNS comes back: the message goes out
    dns_server.start()
    example_org(dns_server)
    peer = peers("127.0.0.2")
    gk(srv.data_dir, "queue", "retry", str(msg_id))
    (meta, _), *_ = peer.wait_for(1)
    assert meta["rcpt_tos"] == ["bob@example.org"]  # not the deleted one
    wait_queue_empty(srv)
    assert [m["rcpt_tos"] for m, _ in peer.messages()] == [["bob@example.org"]]


def test_timing_out_mx_is_retried(make_server, dns_server, peers):
    peer = peers("127.0.0.2")
    peer.configure(slow=3.0)  # answers RCPT only after 3 s; GK waits 1 s
    example_org(dns_server)
    srv = start_gk(make_server, dns_server, peers.port, retry_minutes=[0.01], command_timeout=1.0)
    inject(srv, ALICE, ["bob@example.org"], message(1))
    row = wait_deferred(srv, 1, "bob@example.org")
    assert "timed out" in row["attempts"][0]["reply"]
    peer.configure(slow=0)
    msgs = peer.wait_for(1)
    time.sleep(1)
    assert len(peer.messages()) == len(msgs) == 1


def test_peer_dropping_mid_data_then_garbled_reply(make_server, dns_server, peers):
    peer = peers("127.0.0.2")
    peer.configure(drop_data=1, rcpt={"bob@example.org": ["250 ok", "ZZZ this is not SMTP"]})
    example_org(dns_server)
    srv = start_gk(make_server, dns_server, peers.port, retry_minutes=[0.01])
    inject(srv, ALICE, ["bob@example.org"], message(1))
    (meta, _), *_ = peer.wait_for(1)
    log = srv.log()
    assert "connection lost" in log  # the drop after DATA
    assert "RCPT TO: -1 this is not SMTP" in log  # the garbled reply (code -1), recorded as the reason
    time.sleep(1)
    assert len(peer.messages()) == 1 and dsns(srv) == []


def test_4xx_storm_delivers_everything_once(make_server, dns_server, peers):
    peer = peers("127.0.0.2")
    peer.configure(rcpt_all=["421 4.3.2 busy"] * 15 + ["452 4.3.1 full"] * 15)
    example_org(dns_server)
    srv = start_gk(make_server, dns_server, peers.port, retry_minutes=[0.01, 0.02])
    for n in range(10):
        inject(srv, ALICE, [f"user{n}@example.org"], message(n, to=f"user{n}@example.org"))
    msgs = peer.wait_for(10, timeout=120)
    time.sleep(1)
    got = sorted(r for meta, _ in peer.messages() for r in meta["rcpt_tos"])
    assert got == sorted(f"user{n}@example.org" for n in range(10))
    log = srv.log()
    assert "421 4.3.2 busy" in log and "452 4.3.1 full" in log
    assert len(msgs) == 10 and dsns(srv) == []
    wait_queue_empty(srv)


def test_failed_tls_handshake_falls_back_to_plain_text(make_server, dns_server, peers, ca):
    cert, key = ca.issue("mx1.example.org")
    peer = peers("127.0.0.2", cert=cert, key=key, behaviour={"tls_max": "TLSv1_1"})
    example_org(dns_server)
    srv = start_gk(make_server, dns_server, peers.port, ca_file=str(ca.ca_file))
    inject(srv, ALICE, ["bob@example.org"], message(1))
    (meta, _), *_ = peer.wait_for(1)
    assert meta["tls"] is False
    log = srv.log()
    assert "TLS handshake failed" in log and "retrying without TLS" in log
    assert "tls=none (STARTTLS failed:" in log
