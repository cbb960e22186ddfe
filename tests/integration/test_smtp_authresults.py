"""SPF, DKIM and DMARC on inbound mail against a real DNS server on loopback, with messages
signed by dkimpy in the test: pass, fail and none produce the right Authentication-Results."""

from __future__ import annotations

import base64
import re

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from support.smtp import empty_maildirs, messages, module_server, parsed, smtp25


@pytest.fixture(scope="module")
def signing_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, "v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode()


def _zone(dns, dkim_txt: str) -> None:
    # good.example: SPF allows us, DKIM key published, DMARC p=reject
    dns.add("good.example", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    dns.add("sel._domainkey.good.example", "TXT", dkim_txt)
    dns.add("_dmarc.good.example", "TXT", "v=DMARC1; p=reject; adkim=s; aspf=r")
    # spoofed.example: SPF excludes us, DMARC p=reject
    dns.add("spoofed.example", "TXT", "v=spf1 ip4:192.0.2.10 -all")
    dns.add("_dmarc.spoofed.example", "TXT", "v=DMARC1; p=reject")
    # lax.example: SPF excludes us, DMARC p=none (monitor only)
    dns.add("lax.example", "TXT", "v=spf1 ip4:192.0.2.10 -all")
    dns.add("_dmarc.lax.example", "TXT", "v=DMARC1; p=none")
    # quarantine.example: SPF softfail, DMARC p=quarantine
    dns.add("quarantine.example", "TXT", "v=spf1 ~all")
    dns.add("_dmarc.quarantine.example", "TXT", "v=DMARC1; p=quarantine")
    # plain.example exists but publishes nothing
    dns.add("plain.example", "A", "192.0.2.20")


@pytest.fixture(scope="module")
def shared(tmp_path_factory, signing_key):
    with module_server(tmp_path_factory, smtp={"dmarc_reject_action": "reject"}) as srv:
        _zone(srv.dns, signing_key[1])
        yield srv


@pytest.fixture
def srv(shared):
    empty_maildirs(shared)
    return shared


def _message(from_addr: str, subject: str, extra: bytes = b"") -> bytes:
    return (
        f"From: <{from_addr}>\r\nTo: <alice@example.org>\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@test>\r\n".encode()
        + extra
        + b"\r\nHello Alice,\r\nthis is a test.\r\n"
    )


def _signed(private: bytes, from_addr: str, subject: str, domain: str = "good.example") -> bytes:
    msg = _message(from_addr, subject)
    sig = dkim.sign(msg, b"sel", domain.encode(), private, include_headers=[b"from", b"to", b"subject"])
    return sig.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n") + msg


def _send(srv, mail_from: str, body: bytes) -> dict:  # type: ignore[no-untyped-def]
    with smtp25(srv) as s:
        return s.sendmail(mail_from, ["alice@example.org"], body)


def _results(raw: bytes) -> dict[str, str]:
    ar = parsed(raw)["Authentication-Results"]
    assert ar.startswith("mx.test.example;")
    return {m.group(1): m.group(2) for m in re.finditer(r"\b(spf|dkim|dmarc)=(\w+)", ar)}


def test_spf_dkim_dmarc_pass(srv, signing_key):
    assert _send(srv, "news@good.example", _signed(signing_key[0], "news@good.example", "all pass")) == {}
    (raw,) = messages(srv, "alice@example.org")
    assert _results(raw) == {"spf": "pass", "dkim": "pass", "dmarc": "pass"}
    ar = parsed(raw)["Authentication-Results"]
    assert "header.d=good.example" in ar and "header.s=sel" in ar and "smtp.mailfrom=news@good.example" in ar
    assert "header.from=good.example" in ar


def test_dkim_alone_passes_dmarc_when_spf_fails(srv, signing_key):
    # a forwarder: envelope from another domain whose SPF does not list us, signature intact
    body = _signed(signing_key[0], "news@good.example", "forwarded")
    assert _send(srv, "bounce@lax.example", body) == {}
    (raw,) = messages(srv, "alice@example.org")
    assert _results(raw) == {"spf": "fail", "dkim": "pass", "dmarc": "pass"}


def test_dkim_fail_on_altered_body(srv, signing_key):
    body = _signed(signing_key[0], "news@good.example", "tampered").replace(b"this is a test", b"this is a TEST")
    assert _send(srv, "news@good.example", body) == {}
    (raw,) = messages(srv, "alice@example.org")
    assert _results(raw) == {"spf": "pass", "dkim": "fail", "dmarc": "pass"}  # SPF is aligned


def test_nothing_published_gives_none(srv):
    assert _send(srv, "someone@plain.example", _message("someone@plain.example", "no records")) == {}
    (raw,) = messages(srv, "alice@example.org")
    assert _results(raw) == {"spf": "none", "dkim": "none", "dmarc": "none"}


def test_spf_fail_with_dmarc_none_is_delivered_marked(srv):
    assert _send(srv, "x@lax.example", _message("x@lax.example", "lax")) == {}
    (raw,) = messages(srv, "alice@example.org")
    assert _results(raw) == {"spf": "fail", "dkim": "none", "dmarc": "fail"}
    assert "(p=none)" in parsed(raw)["Authentication-Results"]


def test_dmarc_reject_is_refused(srv):
    with smtp25(srv) as s:
        s.ehlo()
        s.mail("ceo@spoofed.example")
        s.rcpt("alice@example.org")
        code, msg = s.data(_message("ceo@spoofed.example", "wire money"))
    assert (code, msg[:5]) == (550, b"5.7.1")
    assert b"DMARC" in msg
    assert messages(srv, "alice@example.org") == []


def test_dmarc_quarantine_goes_to_junk(srv):
    assert _send(srv, "promo@quarantine.example", _message("promo@quarantine.example", "cheap")) == {}
    assert messages(srv, "alice@example.org") == []
    (raw,) = messages(srv, "alice@example.org", "Junk")
    assert _results(raw)["dmarc"] == "fail"


def test_forged_authentication_results_are_removed(srv):
    forged = b"Authentication-Results: mx.test.example; spf=pass; dkim=pass; dmarc=pass\r\n"
    other = b"Authentication-Results: other.example; spf=pass\r\n"
    assert _send(srv, "x@plain.example", _message("x@plain.example", "forged", forged + other)) == {}
    (raw,) = messages(srv, "alice@example.org")
    headers = parsed(raw).get_all("Authentication-Results")
    assert len(headers) == 2
    assert _results(raw)["spf"] == "none"  # ours, not the forged pass
    assert any(h.startswith("other.example") for h in headers)


def test_dmarc_reject_action_junk(make_server, dns_server, signing_key):
    from support.smtp import start_smtp_server

    _zone(dns_server, signing_key[1])
    srv = start_smtp_server(make_server, dns_server, smtp={"dmarc_reject_action": "junk"}, name="junk")
    assert _send(srv, "ceo@spoofed.example", _message("ceo@spoofed.example", "wire money")) == {}
    assert messages(srv, "alice@example.org") == []
    (raw,) = messages(srv, "alice@example.org", "Junk")
    assert _results(raw) == {"spf": "fail", "dkim": "none", "dmarc": "fail"}
    assert "(p=reject)" in parsed(raw)["Authentication-Results"]
