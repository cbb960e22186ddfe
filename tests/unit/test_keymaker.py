"""Keys made outside the serving process (gk.security.keymaker): ``gk serve`` never imports
``cryptography`` (~11 MB RSS for the process's lifetime), yet gets the same keys, certificate and
DKIM records as the CLI, which makes them in-process."""

from __future__ import annotations

import base64
import ssl
import subprocess
import sys
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gk.mail.dkim import keys
from gk.security import keymaker

SERVING = r"""
import gevent.monkey
gevent.monkey.patch_all()
import sys
from pathlib import Path
from gk.config import TLSConfig
from gk.mail.dkim import ensure_keys, dns_record, sign_headers
from gk.security import keymaker
from gk.security.tls import certificate_names, ensure_tls, renew_self_signed

keymaker.use_child_process()  # as gk serve does at start
data = Path(sys.argv[1])
files = ensure_tls(data, TLSConfig(), "mail.example.org")
renewed = renew_self_signed(data, TLSConfig(), "box.example.net")
made = ensure_keys(data, "example.org", "gk", "ed")
print(dns_record(made[0]))
print(renewed, ",".join(certificate_names(files.cert)), len(made))
print(dns_record(made[1]))  # the Ed25519 key: its record, and a message signed with it
message = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nhello\r\n"
print((sign_headers(message, made) + message).hex())
print("cryptography" in sys.modules)
"""


def _spki(pem: bytes) -> str:
    key = serialization.load_pem_private_key(pem, password=None)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def test_a_serving_process_makes_its_keys_without_importing_cryptography(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SERVING, str(tmp_path)], capture_output=True, text=True, timeout=120, check=True
    )
    record, names, ed_record, signed, imported = out.stdout.strip().splitlines()
    assert imported == "False", "gk serve imported cryptography to make a key, print a record or sign"
    renewed, cert_names, count = names.split()
    assert renewed == "True" and "box.example.net" in cert_names.split(",") and count == "2"
    # what the child made is what a client and a DNS resolver get
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(tmp_path / "tls" / "cert.pem"), str(tmp_path / "tls" / "key.pem"))
    rsa_pem = (tmp_path / "dkim" / "example.org" / "rsa-gk.pem").read_bytes()
    assert record == f"v=DKIM1; k=rsa; p={_spki(rsa_pem)}"
    assert (tmp_path / "dkim" / "example.org" / "rsa-gk.pem").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "dkim" / "example.org" / "ed25519-ed.pem").stat().st_mode & 0o777 == 0o600
    # the Ed25519 key read without cryptography: its record is its public key, and dkimpy
    # verifies what it signed against that record
    ed_key = serialization.load_pem_private_key(
        (tmp_path / "dkim" / "example.org" / "ed25519-ed.pem").read_bytes(), None
    )
    public = ed_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert ed_record == f"v=DKIM1; k=ed25519; p={base64.b64encode(public).decode()}"
    dns = {b"gk._domainkey.example.org.": record.encode(), b"ed._domainkey.example.org.": ed_record.encode()}
    message = bytes.fromhex(signed)
    assert message.count(b"DKIM-Signature:") == 2 and b"a=ed25519-sha256" in message
    d = dkim.DKIM(message)
    assert all(d.verify(idx, dnsfunc=lambda name, timeout=5: dns[name]) for idx in range(2))


@pytest.mark.parametrize("size", [1024, 2048, 4096])
@pytest.mark.parametrize("form", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL])
def test_the_dkim_record_of_an_rsa_key_is_read_without_cryptography(size: int, form: object) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=size)
    pem = key.private_bytes(serialization.Encoding.PEM, form, serialization.NoEncryption())  # type: ignore[arg-type]
    assert base64.b64encode(keys.rsa_public_der(pem)).decode() == _spki(pem)


def test_a_failing_child_names_what_it_was_making(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    keymaker.use_child_process()
    try:
        with pytest.raises(keymaker.KeyMakerError, match=r"making dkim-rsa .*file/rsa.pem failed \(exit 1\)"):
            keymaker.make_dkim_rsa(blocker / "rsa.pem")
    finally:
        keymaker.use_child_process(False)


def test_the_cli_still_makes_keys_in_its_own_process(tmp_path: Path) -> None:
    made = keys.ensure_keys(tmp_path, "example.org", "gk")
    assert [k.algorithm for k in made] == ["rsa"]
    assert keys.dns_record(made[0]).endswith(_spki(made[0].private_pem()))
