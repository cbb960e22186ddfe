"""DKIM keys: RSA-2048 always, Ed25519 when a selector for it is configured.

Layout: ``DATA_DIR/dkim/<domain>/rsa-<selector>.pem`` and ``ed25519-<selector>.pem`` (PKCS#8,
mode 0600, written to a temp file, fsynced, renamed). Keys are made on first use: at queue
start for every local domain, when ``gk dns records`` runs, or when a domain first sends.
Cost: RSA-2048 generation takes 0.1–2 s of CPU on a small board, once per domain; callers
inside ``gk serve`` run ``ensure_keys`` in the threadpool so the hub keeps serving.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gk.security import keymaker
from gk.store.files import write_durable

# `cryptography` costs ~11 MB RSS in a long-lived process: a key is made by gk.security.keymaker
# (in gk serve, a child process), an RSA key's DNS record is read with dkimpy's ASN.1 helpers,
# and an Ed25519 key's seed is read from its PKCS#8 form here (RFC 8410 §7: a fixed 48-byte DER),
# its public key made by PyNaCl (which dkimpy signs Ed25519 with anyway).
RSA_ENCRYPTION = b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01"  # OID 1.2.840.113549.1.1.1
# PrivateKeyInfo { version 0, AlgorithmIdentifier { id-Ed25519 1.3.101.112 }, OCTET STRING {
# OCTET STRING (32 bytes) } }: everything before the seed (RFC 8410 §7, no attributes or public key)
ED25519_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")

_DOMAIN_RE = re.compile(r"^[a-z0-9.-]+$")


@dataclass(frozen=True)
class DKIMKey:
    domain: str
    selector: str
    algorithm: str  # "rsa" or "ed25519"
    path: Path

    def private_pem(self) -> bytes:
        return self.path.read_bytes()

    def signing_key(self) -> bytes:
        """The key in the form dkimpy wants: PEM for RSA, base64 of the raw 32-byte seed for Ed25519."""
        data = self.private_pem()
        if self.algorithm == "rsa":
            return data
        return base64.b64encode(self._ed25519_seed())

    def _ed25519_seed(self) -> bytes:
        """The 32-byte seed of an Ed25519 key in PKCS#8 PEM (as keymaker writes it, RFC 8410 §7).
        Another form of the same key (with attributes or its public key) is read by `cryptography`."""
        pem = self.private_pem()
        lines = pem.strip().splitlines()
        if lines and lines[0] == b"-----BEGIN PRIVATE KEY-----" and lines[-1] == b"-----END PRIVATE KEY-----":
            try:
                der = base64.b64decode(b"".join(lines[1:-1]), validate=True)
            except binascii.Error:
                der = b""  # cryptography's reading names what is wrong
            if len(der) == 48 and der.startswith(ED25519_PKCS8_PREFIX):
                return der[16:]
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519

        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ValueError(f"{self.path}: not an Ed25519 private key (make it again: remove the file)")
        return key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )

    def public_value(self) -> str:
        """The ``p=`` value of the DNS record."""
        if self.algorithm == "rsa":
            return base64.b64encode(rsa_public_der(self.private_pem())).decode("ascii")
        import nacl.signing

        raw = nacl.signing.SigningKey(self._ed25519_seed()).verify_key.encode()
        return base64.b64encode(raw).decode("ascii")

    @property
    def dns_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"


def _der(tag: int, content: bytes) -> bytes:
    """One DER element (X.690 §8.1: definite length). Written here: dkimpy's ``asn1_encode``
    fails on lengths of 256 bytes and more (``asn1_length`` calls ``insert`` with one argument)."""
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def rsa_public_der(pem: bytes) -> bytes:
    """The SubjectPublicKeyInfo (DER, RFC 5280 §4.1.2.7, RFC 8017 A.1.1) of an RSA private key in
    PEM (PKCS#1 or PKCS#8, read by dkimpy): what a DKIM record's ``p=`` holds (RFC 6376 §3.6.1)."""
    from dkim.crypto import parse_pem_private_key

    key = parse_pem_private_key(pem)

    def integer(n: int) -> bytes:
        return _der(0x02, n.to_bytes(n.bit_length() // 8 + 1, "big"))  # minimal, with a 0 where the top bit is set

    rsa_key = _der(0x30, integer(key["modulus"]) + integer(key["publicExponent"]))
    algorithm = _der(0x30, _der(0x06, RSA_ENCRYPTION) + _der(0x05, b""))
    return _der(0x30, algorithm + _der(0x03, b"\x00" + rsa_key))


def dns_record(key: DKIMKey) -> str:
    return f"v=DKIM1; k={key.algorithm}; p={key.public_value()}"


def _domain_dir(data_dir: Path, domain: str) -> Path:
    domain = domain.lower().rstrip(".")
    if not _DOMAIN_RE.match(domain) or ".." in domain or domain.startswith("."):
        raise ValueError(f"{domain!r} is not a domain name")
    return data_dir / "dkim" / domain


def write_private(path: Path, pem: bytes) -> None:
    write_durable(path, pem, 0o600)


def pem_of(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_keys(data_dir: Path, domain: str, selector: str, ed25519_selector: str = "") -> list[DKIMKey]:
    """The keys that exist for ``domain`` (RSA first), without creating any."""
    d = _domain_dir(data_dir, domain)
    keys = []
    rsa_path = d / f"rsa-{selector}.pem"
    if rsa_path.is_file():
        keys.append(DKIMKey(domain.lower(), selector, "rsa", rsa_path))
    if ed25519_selector:
        ed_path = d / f"ed25519-{ed25519_selector}.pem"
        if ed_path.is_file():
            keys.append(DKIMKey(domain.lower(), ed25519_selector, "ed25519", ed_path))
    return keys


def ensure_keys(data_dir: Path, domain: str, selector: str, ed25519_selector: str = "") -> list[DKIMKey]:
    """Create the missing keys of ``domain`` and return all of them (RSA first)."""
    d = _domain_dir(data_dir, domain)
    rsa_path = d / f"rsa-{selector}.pem"
    if not rsa_path.is_file():
        keymaker.make_dkim_rsa(rsa_path)
    if ed25519_selector:
        ed_path = d / f"ed25519-{ed25519_selector}.pem"
        if not ed_path.is_file():
            keymaker.make_dkim_ed25519(ed_path)
    return load_keys(data_dir, domain, selector, ed25519_selector)
