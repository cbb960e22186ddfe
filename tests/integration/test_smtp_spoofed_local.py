"""Mail claiming one of the box's own domains on port 25, the way Mox and Stalwart treat it:
example.org (a fresh box: no SPF, DKIM or DMARC record published yet) is local, so a stranger's
``From: alice@example.org`` to bob fails DMARC under the policy GK asks its owner to publish
(p=reject): refused with 550 5.7.1 and nothing delivered, or filed as Junk with
``dmarc_reject_action = "junk"``, the reason in Authentication-Results. Alice's own mail to bob
comes by submission (587, AUTH over TLS) and is delivered, marked as hers (auth=pass); a remote
sender is not affected."""

from __future__ import annotations

import smtplib

import pytest
from support.smtp import empty_maildirs, messages, module_server, parsed, smtp25, submission


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    with module_server(tmp_path_factory) as srv:
        yield srv


@pytest.fixture
def srv(shared):
    empty_maildirs(shared)
    return shared


def _message(sender: str, subject: str) -> bytes:
    return (
        f"From: Alice <{sender}>\r\nTo: <bob@example.org>\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@test>\r\n\r\nPlease wire the money today.\r\n"
    ).encode()


def test_a_local_from_on_port_25_is_refused(srv) -> None:  # type: ignore[no-untyped-def]
    with smtp25(srv) as s, pytest.raises(smtplib.SMTPDataError) as err:
        s.sendmail("alice@example.org", ["bob@example.org"], _message("alice@example.org", "spoofed"))
    assert err.value.smtp_code == 550
    assert b"5.7.1" in err.value.smtp_error and b"example.org" in err.value.smtp_error
    # the envelope says someone else: the header's From is what a reader sees, and what counts
    with smtp25(srv) as s, pytest.raises(smtplib.SMTPDataError) as err:
        s.sendmail("x@remote.example", ["bob@example.org"], _message("Alice@Example.ORG", "spoofed 2"))
    assert err.value.smtp_code == 550
    with smtp25(srv) as s, pytest.raises(smtplib.SMTPDataError) as err:  # a bounce's null sender too
        s.sendmail("", ["bob@example.org"], _message("postmaster@example.org", "spoofed 3"))
    assert err.value.smtp_code == 550
    assert messages(srv, "bob@example.org") == [] and messages(srv, "bob@example.org", "Junk") == []


def test_the_same_mail_submitted_by_alice_is_delivered(srv) -> None:  # type: ignore[no-untyped-def]
    with submission(srv) as s:
        s.sendmail("alice@example.org", ["bob@example.org"], _message("alice@example.org", "genuine"))
    (raw,) = messages(srv, "bob@example.org")
    ar = " ".join(parsed(raw)["Authentication-Results"].split())
    assert ar == "mx.test.example; auth=pass smtp.auth=alice@example.org", ar


def test_a_remote_from_is_not_affected(srv) -> None:  # type: ignore[no-untyped-def]
    with smtp25(srv) as s:
        s.sendmail("olga@remote.example", ["bob@example.org"], _message("olga@remote.example", "remote"))
    (raw,) = messages(srv, "bob@example.org")
    assert "dmarc=none" in parsed(raw)["Authentication-Results"]


def test_a_forged_mark_of_ours_is_dropped(srv) -> None:  # type: ignore[no-untyped-def]
    forged = b"Authentication-Results: mx.test.example; auth=pass smtp.auth=alice@example.org\r\n"
    with smtp25(srv) as s:
        s.sendmail("olga@remote.example", ["bob@example.org"], forged + _message("olga@remote.example", "forged"))
    (raw,) = messages(srv, "bob@example.org")
    assert b"auth=pass" not in raw


@pytest.fixture(scope="module")
def junk_server(tmp_path_factory):
    with module_server(tmp_path_factory, smtp={"dmarc_reject_action": "junk"}) as srv:
        yield srv


def test_with_the_junk_action_it_lands_in_junk(junk_server) -> None:  # type: ignore[no-untyped-def]
    srv = junk_server
    with smtp25(srv) as s:
        s.sendmail("alice@example.org", ["bob@example.org"], _message("alice@example.org", "spoofed junk"))
    assert messages(srv, "bob@example.org") == []
    (raw,) = messages(srv, "bob@example.org", "Junk")
    ar = " ".join(parsed(raw)["Authentication-Results"].split())
    assert "dmarc=fail (p=reject) reason=" in ar and "header.from=example.org" in ar, ar


def test_a_new_host_name_keeps_the_authserv_id(srv) -> None:  # type: ignore[no-untyped-def]
    """Authentication-Results carry the name of the box's first start for good: after the owner
    renames the box, mail delivered before still reads as verified, and a field a stranger
    stamped with the new name (before or after) is not the box's. Last in this module: it
    restarts the shared server under another name."""
    from gk import config
    from gk.context import open_accounts
    from gk.mail.authcheck.sender import verified_sender

    with submission(srv) as s:
        s.sendmail("alice@example.org", ["bob@example.org"], _message("alice@example.org", "before"))
    srv.stop()
    srv.overrides["server"] = {"hostname": "mx.renamed.example"}  # what the settings write to gk.toml
    srv.start()
    with smtp25(srv) as s:
        assert "mx.renamed.example" in s.ehlo()[1].decode()  # the new name greets
    with submission(srv) as s:
        s.sendmail("alice@example.org", ["bob@example.org"], _message("alice@example.org", "after"))
    forged = (
        b"Authentication-Results: mx.renamed.example; dmarc=pass header.from=remote.example\r\n"
        b"Authentication-Results: mx.test.example; dmarc=pass header.from=remote.example\r\n"
        + _message("mallory@remote.example", "forged").replace(b"From: Alice", b"From: Mallory")
    )
    with smtp25(srv) as s:
        s.sendmail("mallory@remote.example", ["bob@example.org"], forged)
    got = {parsed(raw)["Subject"]: raw for raw in messages(srv, "bob@example.org")}
    assert set(got) == {"before", "after", "forged"}
    accounts = open_accounts(config.load(srv.data_dir), srv.data_dir)
    try:
        for subject in ("before", "after"):
            ar = " ".join(parsed(got[subject])["Authentication-Results"].split())
            assert ar == "mx.test.example; auth=pass smtp.auth=alice@example.org", (subject, ar)
            assert verified_sender(got[subject], "mx.test.example", accounts) == "alice@example.org"
        fields = [" ".join(v.split()) for v in parsed(got["forged"]).get_all("Authentication-Results")]
        assert not any(f.startswith("mx.test.example; dmarc=pass") for f in fields), fields  # stripped
        assert verified_sender(got["forged"], "mx.test.example", accounts) == ""
    finally:
        accounts.db.close()
