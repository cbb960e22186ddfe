"""SMTPPolicy without a socket, on a real account store."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gk.accounts import AccountStore, PasswordHasher
from gk.config import AuthConfig
from gk.mail import submission
from gk.mail.smtp.policy import ListenerKind, SMTPPolicy

IN, SUB = ListenerKind.INBOUND, ListenerKind.SUBMISSION


@pytest.fixture
def ctx(tmp_path):
    cfg = AuthConfig(argon2_time_cost=1, argon2_memory_kib=8192)
    accounts = AccountStore(tmp_path / "accounts.sqlite3", PasswordHasher.from_config(cfg))
    accounts.add_user("alice@example.org", "correct horse battery staple")
    accounts.add_user("bob@example.org", "correct horse battery staple")
    accounts.add_alias("sales@example.org", "alice@example.org")
    return SimpleNamespace(accounts=accounts, services={})


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
    ctx.services["queue"] = object()
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
