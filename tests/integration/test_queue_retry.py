# ruff: noqa: F811  (pytest fixtures imported from support.peermta / support.testca)
"""Retries, bounces and expiry, with mail sent like a real client through GK's port 587.

The retry clock is sped up by configuration (``queue.retry_minutes`` in fractions of a
minute, ``expire_hours`` and ``delay_warning_hours`` in seconds' worth of hours).
"""

from __future__ import annotations

import re
import time

from support.outbound import ALICE, dsns, inject, message, start_gk, submit, wait_queue_empty
from support.peermta import peers  # noqa: F401
from support.smtp import wait_for

PASSWORD = "correct horse battery staple"


def wait_dsns(srv, count: int, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = dsns(srv)
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{len(dsns(srv))} DSN(s) in the sender's INBOX, expected {count}\n{srv.log()[-3000:]}")


def example_org(dns_server) -> None:  # type: ignore[no-untyped-def]
    dns_server.add("example.org", "MX", "10 mx1.example.org.").add("mx1.example.org", "A", "127.0.0.2")


def test_retry_after_451_then_success(make_server, dns_server, peers):
    peer = peers("127.0.0.2")
    peer.configure(rcpt={"bob@example.org": ["451 4.3.0 greylisted, try later", "451 4.3.0 still greylisted"]})
    example_org(dns_server)
    srv = start_gk(make_server, dns_server, peers.port, retry_minutes=[0.01, 0.02])
    submit(srv.port("smtp.submission_port"), ALICE, PASSWORD, ALICE, ["bob@example.org"], [message(1)])
    (meta, body), *_ = peer.wait_for(1)
    assert meta["rcpt_tos"] == ["bob@example.org"]
    log = srv.log()
    deferred = re.findall(
        r"queue msg=1 rcpt=bob@example.org deferred via (\S+) \(attempt (\d)\), retry in ([\d.]+)s: (.*)", log
    )
    host = f"mx1.example.org[127.0.0.2]:{peers.port}"
    assert [(h, a) for h, a, _, _ in deferred] == [(host, "1"), (host, "2")]
    assert "451 4.3.0 greylisted" in deferred[0][3] and "451 4.3.0 still greylisted" in deferred[1][3]
    assert 0.5 <= float(deferred[0][2]) <= 0.7 and 1.1 <= float(deferred[1][2]) <= 1.3  # the configured steps
    assert "queue msg=1 rcpt=bob@example.org sent via mx1.example.org" in log
    assert len(peer.messages()) == 1
    assert dsns(srv) == []


def test_550_bounces_at_once_with_a_dsn_and_other_recipients_still_get_it(make_server, dns_server, peers):
    peer = peers("127.0.0.2")
    peer.configure(rcpt={"nobody@example.org": ["550 5.1.1 <nobody@example.org>: no such user"]})
    example_org(dns_server)
    srv = start_gk(make_server, dns_server, peers.port, retry_minutes=[10.0])
    body = message(1, subject="the quarterly report")
    submit(srv.port("smtp.submission_port"), ALICE, PASSWORD, ALICE, ["nobody@example.org", "bob@example.org"], [body])
    (meta, _), *_ = peer.wait_for(1)
    assert meta["rcpt_tos"] == ["bob@example.org"]
    (report,) = wait_dsns(srv, 1)
    assert report.get_content_type() == "multipart/report" and report.get_param("report-type") == "delivery-status"
    assert report["Auto-Submitted"] == "auto-replied"
    assert report["Subject"] == "Undelivered Mail Returned to Sender"
    text, status, headers = report.get_payload()
    assert "nobody@example.org" in text.get_payload() and "no such user" in text.get_payload()
    fields = "\n".join(str(p) for p in status.get_payload())
    assert "Final-Recipient: rfc822; nobody@example.org" in fields
    assert "Action: failed" in fields and "Status: 5.1.1" in fields
    assert (
        "Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.org>: no such user" in fields
        and "bob@example.org" not in fields
    )
    assert headers.get_content_type() == "text/rfc822-headers"
    assert "Subject: the quarterly report" in str(headers.get_payload())
    wait_queue_empty(srv)
    # the runner logs the bounce only after it has delivered the DSN: poll, don't race it
    assert wait_for(lambda: "bounced (permanent)" in srv.log(), timeout=60)


def test_expiry_bounce_after_delay_warning(make_server, dns_server, peers):
    peer = peers("127.0.0.2")
    peer.configure(rcpt_all=["451 4.7.1 come back later"] * 1000)
    example_org(dns_server)
    # retry every 0.3 s, warn after ~0.7 s, give up after ~2.9 s
    srv = start_gk(
        make_server, dns_server, peers.port, retry_minutes=[0.005], delay_warning_hours=0.0002, expire_hours=0.0008
    )
    submit(srv.port("smtp.submission_port"), ALICE, PASSWORD, ALICE, ["bob@example.org"], [message(1)])
    delayed, failed = wait_dsns(srv, 2)
    assert delayed["Subject"] == "Delayed Mail (still being retried)"
    assert "Action: delayed" in str(delayed) and "Will-Retry-Until:" in str(delayed)
    assert failed["Subject"] == "Undelivered Mail Returned to Sender"
    assert "Status: 5.4.7" in str(failed)  # RFC 3463: delivery time expired
    assert (
        "Action: failed" in str(failed)
        and "gave up after" in str(failed)
        and "451 4.7.1 come back later" in str(failed)
    )
    assert peer.messages() == []
    log = srv.log()
    attempts = len(re.findall(r"queue msg=1 rcpt=bob@example.org deferred", log))
    assert 3 <= attempts <= 15, attempts  # paced by the schedule: no hot loop
    assert "expired via" in log
    time.sleep(1)
    assert len(dsns(srv)) == 2  # exactly one delay notice and one failure notice
    wait_queue_empty(srv)


def test_no_bounce_to_the_null_sender(make_server, dns_server, peers):
    peer = peers("127.0.0.2")
    peer.configure(rcpt_all=["550 5.7.1 rejected"])
    example_org(dns_server)
    srv = start_gk(make_server, dns_server, peers.port)
    msg_id = inject(srv, "", ["bob@example.org"], message(1))
    deadline = time.monotonic() + 30
    while f"queue msg={msg_id}: no failed DSN for a message from the null sender" not in srv.log():
        assert time.monotonic() < deadline, srv.log()
        time.sleep(0.1)
    assert dsns(srv) == [] and peer.messages() == []
