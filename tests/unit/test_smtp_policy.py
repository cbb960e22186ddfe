"""SMTPPolicy without a socket, on a real account store."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gk.accounts import AccountStore, PasswordHasher
from gk.config import AuthConfig
from gk.context import Services
from gk.mail import submission
from gk.mail.queue.service import QueueService
from gk.mail.smtp.policy import ListenerKind, SMTPPolicy

IN, SUB = ListenerKind.INBOUND, ListenerKind.SUBMISSION


@pytest.fixture
def ctx(tmp_path):
    cfg = AuthConfig(argon2_time_cost=1, argon2_memory_kib=8192)
    accounts = AccountStore(tmp_path / "accounts.sqlite3", PasswordHasher.from_config(cfg))
    accounts.add_user("alice@example.org", "correct horse battery staple")
    accounts.add_user("bob@example.org", "correct horse battery staple")
    accounts.add_alias("sales@example.org", "alice@example.org")
    return SimpleNamespace(accounts=accounts, services=Services())


def test_inbound_accepts_any_sender_and_only_local_existing_recipients(ctx):
    p = SMTPPolicy(ctx, max_recipients=2)
    assert p.mail_from(IN, None, "") is None
    assert p.mail_from(IN, None, "anyone@anywhere.example") is None
    assert p.rcpt_to(IN, None, "x@elsewhere.example", 0).reply.startswith("550 5.7.1")
    assert p.rcpt_to(IN, None, "nobody@example.org", 0).reply.startswith("550 5.1.1")
    d = p.rcpt_to(IN, None, "Alice+Tag@Example.ORG", 0)
    assert d.accepted and d.local_user == "alice@example.org"
    assert p.rcpt_to(IN, None, "sales@example.org", 1).local_user == "alice@example.org"
    assert p.rcpt_to(IN, None, "bob@example.org", 2).reply.startswith("452 4.5.3")
    assert p.rcpt_to(IN, None, "no-domain", 0).reply.startswith("553")


def test_submission_needs_auth_and_owned_sender(ctx):
    p = SMTPPolicy(ctx, max_recipients=10)
    alice = ctx.accounts.get_user("alice@example.org")
    assert p.mail_from(SUB, None, "alice@example.org").startswith("530 5.7.0")
    assert p.mail_from(SUB, alice, "alice@example.org") is None
    assert p.mail_from(SUB, alice, "alice+lists@example.org") is None
    assert p.mail_from(SUB, alice, "sales@example.org") is None
    assert p.mail_from(SUB, alice, "bob@example.org").startswith("553 5.7.1")
    assert p.mail_from(SUB, alice, "").startswith("553 5.7.1")


def test_submission_remote_recipients_need_the_queue(ctx):
    p = SMTPPolicy(ctx, max_recipients=10)
    alice = ctx.accounts.get_user("alice@example.org")
    assert p.rcpt_to(SUB, alice, "bob@example.org", 0).local_user == "bob@example.org"
    assert p.rcpt_to(SUB, alice, "ghost@example.org", 0).reply.startswith("550 5.1.1")
    refused = p.rcpt_to(SUB, alice, "friend@remote.example", 0)
    assert refused.reply == submission.NO_OUTBOUND and refused.reply.startswith("550 5.3.3")
    ctx.services.provide(object(), QueueService)  # type: ignore[arg-type]
    d = p.rcpt_to(SUB, alice, "friend@remote.example", 0)
    assert d.accepted and d.local_user is None


def test_submit_refuses_remote_without_queue_and_foreign_sender(ctx, tmp_path):
    ctx.data_dir = tmp_path
    alice = ctx.accounts.get_user("alice@example.org")
    with pytest.raises(submission.SubmissionError) as err:
        submission.submit(ctx, alice, b"Subject: x\r\n\r\ny\r\n", ["friend@remote.example"])
    assert err.value.code == 550 and "not available yet" in err.value.reply
    with pytest.raises(submission.SubmissionError) as err:
        submission.submit(ctx, alice, b"Subject: x\r\n\r\ny\r\n", ["bob@example.org"], mail_from="bob@example.org")
    assert err.value.code == 553
    assert not list((tmp_path / "spool").rglob("*.eml")) and not list(tmp_path.glob("mail/*"))


def test_submit_hands_remote_mail_to_the_queue_with_a_received_field(ctx, tmp_path):
    import gevent

    from gk.mail.delivery import Trace

    ctx.data_dir = tmp_path
    ctx.mail_root = tmp_path / "mail"
    ctx.hostname = ctx.authserv_id = "mx.test.example"
    seen: list[tuple[str, list[str], bytes, str]] = []

    class RecordingQueue:  # stands in for the queue service: records what submit hands over
        def enqueue(self, mail_from, recipients, message_path, *, user):  # type: ignore[no-untyped-def]
            seen.append((mail_from, recipients, message_path.read_bytes(), user))
            return 7

    ctx.services.provide(RecordingQueue(), QueueService)  # type: ignore[arg-type]
    alice = ctx.accounts.get_user("alice@example.org")
    trace = Trace(helo="laptop.example.net", peer_ip="192.0.2.5", protocol="ESMTPSA", auth_user=alice.address)
    result = gevent.spawn(
        submission.submit,
        ctx,
        alice,
        b"Subject: hi\r\n\r\nbody\r\n",
        ["friend@remote.example", "bob@example.org"],
        "alice+out@example.org",
        trace=trace,
    ).get()
    assert result.queue_id == 7 and result.queued == ["friend@remote.example"]
    assert result.delivered == ["bob@example.org"]
    ((mail_from, rcpts, data, user),) = seen
    assert (mail_from, rcpts, user) == ("alice+out@example.org", ["friend@remote.example"], "alice@example.org")
    assert data.startswith(b"Received: from laptop.example.net ([192.0.2.5])\r\n\tby mx.test.example (GK) with ESMTPSA")
    assert data.endswith(b"Subject: hi\r\n\r\nbody\r\n")
    assert list((tmp_path / "spool" / "submit").iterdir()) == []  # the queue keeps its own copy
    (bob_copy,) = list((tmp_path / "mail" / "bob@example.org" / "Maildir" / "new").iterdir())
    assert b"Delivered-To: bob@example.org" in bob_copy.read_bytes()


def test_connection_slots_keep_separate_budgets_and_a_per_client_cap():
    from gk.mail.smtp.policy import ConnectionSlots

    slots = ConnectionSlots(mx_total=3, mx_per_ip=2, submission_total=2, submission_per_ip=1)
    assert slots.acquire(IN, "192.0.2.1") is None
    assert slots.acquire(IN, "192.0.2.1") is None
    assert slots.acquire(IN, "192.0.2.1").startswith("421 4.7.0 Too many connections from your address")
    assert slots.acquire(IN, "::ffff:192.0.2.1") is not None  # the same IPv4 client
    assert slots.acquire(IN, "198.51.100.7") is None
    assert slots.acquire(IN, "203.0.113.9").startswith("421 4.7.0 Too many connections;")  # MX is full
    # port 25 is full, submission is not: its own budget
    assert slots.acquire(SUB, "192.0.2.1") is None
    assert slots.acquire(ListenerKind.SUBMISSIONS, "192.0.2.1") is not None  # 587 and 465 share a cap
    assert slots.acquire(ListenerKind.SUBMISSIONS, "192.0.2.2") is None
    assert slots.acquire(SUB, "192.0.2.3") is not None  # submission full
    slots.release(IN, "192.0.2.1")
    assert slots.acquire(IN, "203.0.113.9") is None
    assert slots.in_use(IN) == 3 and slots.in_use(SUB) == 2
    for ip in ("192.0.2.1", "198.51.100.7", "203.0.113.9"):
        slots.release(IN, ip)
    slots.release(SUB, "192.0.2.1")
    slots.release(ListenerKind.SUBMISSIONS, "192.0.2.2")
    assert slots.in_use(IN) == 0 and slots.in_use(SUB) == 0 and not slots.per_client  # nothing kept


def test_an_ipv6_client_counts_per_slash_64():
    from gk.mail.smtp.policy import ConnectionSlots, client_key

    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:10.0.0.1") == "10.0.0.1"
    assert client_key("not an address") == "not an address"
    slots = ConnectionSlots(mx_total=10, mx_per_ip=1, submission_total=10, submission_per_ip=1)
    assert slots.acquire(IN, "2001:db8:1:2::1") is None
    assert slots.acquire(IN, "2001:db8:1:2::99") is not None


def test_error_budget_slows_down_then_disconnects_and_forgives_after_delivery():
    from gk.mail.smtp.policy import ErrorBudget

    b = ErrorBudget(soft_limit=2, hard_limit=5, sleep_time=0.5)
    verdicts = [b.record("550 5.1.1 <x@example.org>: no such user here") for _ in range(5)]
    assert [v.delay for v in verdicts] == [0.0, 0.0, 0.5, 1.0, 1.5]  # growing past the soft limit
    assert [v.disconnect for v in verdicts] == [False, False, False, False, True]
    b.delivered()
    assert b.record(b"550 5.7.1 relaying denied").delay == 0.0 and b.errors == 1
    # successes, intermediate replies and replies that are not the client's fault do not count
    for reply in ("250 2.1.5 OK", "354 End data", "334 ", "421 4.3.2 bye", "451 4.3.0 local", "452 4.5.3 too many"):
        assert not ErrorBudget.is_error(reply), reply
        b.record(reply)
    assert b.errors == 1
    assert ErrorBudget.is_error("501 5.1.7 Bad sender address syntax") and ErrorBudget.is_error(b"535 5.7.8 no")


def test_inbound_rcpt_reads_the_recipient_once(ctx, monkeypatch):
    """Port 25's RCPT resolves the recipient (one read of the user) and checks its quota with that
    row, not with a second read of the same user: each SQLite call on the hub hands the GIL away."""
    ctx.accounts.set_quota("alice@example.org", 1)
    reads: list[str] = []
    get_user = ctx.accounts.get_user
    monkeypatch.setattr(ctx.accounts, "get_user", lambda address: reads.append(address) or get_user(address))
    p = SMTPPolicy(ctx, max_recipients=10)
    assert p.rcpt_to(IN, None, "alice@example.org", 0).local_user == "alice@example.org"
    assert reads == ["alice@example.org"]  # resolve_recipient's own read, no second one for the quota
