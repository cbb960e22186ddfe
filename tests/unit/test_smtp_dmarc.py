"""DMARC record parsing and identifier alignment; the A-R header format."""

from __future__ import annotations

from gk.mail.authcheck.dkimverify import DKIMResult
from gk.mail.authcheck.dmarc import DMARCResult, aligned, org_domain, parse_record
from gk.mail.authcheck.results import authentication_results
from gk.mail.authcheck.spf import SPFResult


def test_parse_record():
    assert parse_record("v=DMARC1; p=reject; adkim=s") == {"v": "DMARC1", "p": "reject", "adkim": "s"}
    assert parse_record("v=spf1 -all") is None


def test_alignment():
    assert org_domain("mail.news.example.com") == "example.com"
    assert aligned("bounce.example.com", "example.com", "r")
    assert not aligned("bounce.example.com", "example.com", "s")
    assert aligned("Example.com.", "example.com", "s")
    assert not aligned("example.net", "example.com", "r")


def test_organizational_domain_follows_the_public_suffix_list():
    # multi-label public suffixes: two sites under co.uk are not one organization
    assert org_domain("mail.example.co.uk") == "example.co.uk"
    assert not aligned("attacker.co.uk", "victim.co.uk", "r")
    assert aligned("bounces.victim.co.uk", "victim.co.uk", "r")
    assert org_domain("a.b.example.com.au") == "example.com.au"
    # private suffixes: each github.io site is its own organization
    assert not aligned("evil.github.io", "good.github.io", "r")
    # a public suffix or a bare label stays itself
    assert org_domain("co.uk") == "co.uk" and org_domain("localhost") == "localhost"


def test_authentication_results_header():
    h = authentication_results(
        "mx.test.example",
        SPFResult("pass", "example.com", "mailfrom"),
        [DKIMResult("fail", "example.com", "sel", "abcdefgh", "signature did not verify")],
        DMARCResult("pass", "reject", "example.com"),
        "a@example.com",
    ).decode()
    assert h.startswith("Authentication-Results: mx.test.example;\r\n\t")
    assert "spf=pass smtp.mailfrom=a@example.com" in h
    assert 'dkim=fail reason="signaturedidnotverify"' in h or "dkim=fail" in h
    assert "dmarc=pass (p=reject) header.from=example.com" in h
    assert h.endswith("\r\n") and "\n\n" not in h
