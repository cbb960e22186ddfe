"""``gk.mail.authcheck.sender.verified_sender``: which From addresses the box vouches for, read
from its own Authentication-Results fields only (forged ones with its authserv-id are stripped
at delivery); and ``dmarc.own_domain``: mail claiming a local domain on port 25 must authenticate."""

from __future__ import annotations

from types import SimpleNamespace

from gk.mail.authcheck.dkimverify import DKIMResult
from gk.mail.authcheck.dmarc import OWN_DOMAIN_POLICY, DMARCResult, own_domain
from gk.mail.authcheck.results import authentication_results, submitted
from gk.mail.authcheck.sender import our_results, verified_sender
from gk.mail.authcheck.spf import SPFResult

HOST = "mx.box.example"


class Accounts:
    """The two calls the check makes of the account store: users of box.example."""

    users = {"alice@box.example": 1, "bob@box.example": 2}

    def get_user(self, address: str):  # type: ignore[no-untyped-def]
        uid = self.users.get(address.lower())
        return SimpleNamespace(id=uid, address=address.lower()) if uid else None

    def resolve_recipient(self, address: str):  # type: ignore[no-untyped-def]
        local, _, domain = address.lower().partition("@")
        return self.get_user(local.split("+")[0] + "@" + domain)

    def is_local_domain(self, domain: str) -> bool:
        return domain.lower() == "box.example"


def mail(sender: str, *fields: bytes) -> bytes:
    return b"".join(fields) + f"From: Someone <{sender}>\r\nTo: bob@box.example\r\n\r\nbody\r\n".encode()


def inbound(spf: str, dkim: str, dmarc: str, from_domain: str, mail_from: str, d: str = "") -> bytes:
    return authentication_results(
        HOST,
        SPFResult(spf, mail_from.rpartition("@")[2], "mailfrom"),
        [DKIMResult(dkim, d, "sel", "abcdefgh")] if dkim != "none" else [DKIMResult("none")],
        DMARCResult(dmarc, "none" if dmarc != "none" else "", from_domain),
        mail_from,
    )


def test_a_submitted_mail_is_its_users_own() -> None:
    acc = Accounts()
    assert verified_sender(mail("alice@box.example", submitted(HOST, "alice@box.example")), HOST, acc) == (
        "alice@box.example"
    )
    assert verified_sender(mail("Alice+cal@Box.example", submitted(HOST, "alice@box.example")), HOST, acc) == (
        "alice+cal@box.example"
    )
    # alice authenticated, but her From names bob: not bob's mail
    assert verified_sender(mail("bob@box.example", submitted(HOST, "alice@box.example")), HOST, acc) == ""
    # another box's mark, or none at all: a local From is never taken on its word
    assert (
        verified_sender(mail("alice@box.example", submitted("mx.other.example", "alice@box.example")), HOST, acc) == ""
    )
    assert verified_sender(mail("alice@box.example"), HOST, acc) == ""


def test_a_local_from_from_outside_is_never_verified() -> None:
    acc = Accounts()
    head = inbound("pass", "pass", "pass", "box.example", "alice@box.example", "box.example")
    assert verified_sender(mail("alice@box.example", head), HOST, acc) == ""


def test_mail_from_outside_needs_dmarc_or_aligned_spf_or_dkim() -> None:
    acc = Accounts()
    ok = inbound("fail", "none", "pass", "remote.example", "x@bounce.other.example")
    assert verified_sender(mail("olga@remote.example", ok), HOST, acc) == "olga@remote.example"
    # the pass was for another From domain
    assert verified_sender(mail("olga@elsewhere.example", ok), HOST, acc) == ""
    failed = inbound("pass", "none", "fail", "remote.example", "olga@remote.example")
    assert verified_sender(mail("olga@remote.example", failed), HOST, acc) == ""
    # no DMARC record: SPF (relaxed) or DKIM aligned with the From domain
    spf = inbound("pass", "none", "none", "remote.example", "bounces@mail.remote.example")
    assert verified_sender(mail("olga@remote.example", spf), HOST, acc) == "olga@remote.example"
    dkim = inbound("softfail", "pass", "none", "remote.example", "x@esp.example", "remote.example")
    assert verified_sender(mail("olga@remote.example", dkim), HOST, acc) == "olga@remote.example"
    neither = inbound("pass", "pass", "none", "remote.example", "x@esp.example", "esp.example")
    assert verified_sender(mail("olga@remote.example", neither), HOST, acc) == ""
    assert verified_sender(mail("olga@remote.example"), HOST, acc) == ""


def test_several_from_addresses_are_never_verified() -> None:
    acc = Accounts()
    ok = inbound("pass", "none", "pass", "remote.example", "olga@remote.example")
    two = ok + b"From: a@remote.example, b@remote.example\r\n\r\n"
    assert verified_sender(two, HOST, acc) == ""


def test_results_are_read_from_our_fields_only() -> None:
    fields = [
        "mx.box.example;\r\n\tspf=pass smtp.mailfrom=a@b.example;\r\n\tdmarc=fail (p=reject)"
        ' reason="x; y" header.from=b.example',
        "other.example; dmarc=pass header.from=b.example",
    ]
    got = our_results(fields, "MX.box.example")
    assert got == [
        {"spf": "pass", "smtp.mailfrom": "a@b.example"},
        {"dmarc": "fail", "header.from": "b.example"},
    ]


def test_own_domains_fail_dmarc_without_alignment_whatever_dns_says() -> None:
    local = Accounts().is_local_domain
    for published in (DMARCResult("none", "", "box.example"), DMARCResult("fail", "none", "box.example"),
                      DMARCResult("temperror", "", "box.example")):  # fmt: skip
        got = own_domain(published, ["box.example"], local)
        assert (got.result, got.policy, got.from_domain) == ("fail", OWN_DOMAIN_POLICY, "box.example")
        assert got.reason
    passed = DMARCResult("pass", "none", "box.example")
    assert own_domain(passed, ["box.example"], local) is passed
    several = DMARCResult("permerror", from_domain="remote.example", reason="several From domains")
    assert own_domain(several, ["remote.example", "box.example"], local).result == "fail"
    other = DMARCResult("none", "", "remote.example")
    assert own_domain(other, ["remote.example"], local) is other
    header = authentication_results(HOST, None, [], own_domain(other, ["box.example"], local), "")
    assert b'dmarc=fail (p=reject) reason="a local domain' in header
