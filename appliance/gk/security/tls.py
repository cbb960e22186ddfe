"""TLS for every listener: the configured cert/key, or a self-signed pair made at first start.

`cryptography` is imported only while generating (it costs ~7 MB RSS in a long-lived process).
The pair lives in ``DATA_DIR/tls/{cert,key}.pem`` (key mode 0600). ECDSA P-256: fast
handshakes on small ARM boards and accepted by every current client.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import logging
import re
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from gk.config import TLSConfig
from gk.store.files import write_durable

HANDSHAKE_TIMEOUT = 30.0  # seconds a client gets to finish the TLS handshake
PEM_CERT_RE = re.compile(r"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)


@dataclass(frozen=True)
class TLSFiles:
    cert: Path
    key: Path


def generate_self_signed(cert: Path, key: Path, hostname: str) -> None:
    # imported here: `cryptography` costs ~7 MB RSS and is needed only when a key is made
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    cert.parent.mkdir(parents=True, exist_ok=True)
    private = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(hostname), x509.DNSName("localhost")]
    if not hostname.endswith(".local"):
        names.append(x509.DNSName(hostname.split(".")[0] + ".local"))
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, hostname), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "GK")]
    )
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    # key first: a certificate without its key is unusable, a key without its certificate is remade
    pem_key = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_durable(key, pem_key, 0o600)
    write_durable(cert, certificate.public_bytes(serialization.Encoding.PEM), 0o644)


def ensure_tls(data_dir: Path, cfg: TLSConfig, hostname: str) -> TLSFiles:
    if cfg.cert_file or cfg.key_file:
        files = TLSFiles(Path(cfg.cert_file), Path(cfg.key_file))
        for name, p in (("tls.cert_file", files.cert), ("tls.key_file", files.key)):
            if not p.is_file():
                raise FileNotFoundError(
                    f"{name}: {p} does not exist; fix the path or set both to '' for a self-signed pair"
                )
        return files
    files = TLSFiles(data_dir / "tls" / "cert.pem", data_dir / "tls" / "key.pem")
    if not (files.cert.exists() and files.key.exists()):
        generate_self_signed(files.cert, files.key, hostname)
    return files


def server_context(files: TLSFiles) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(files.cert), str(files.key))
    ctx.options |= ssl.OP_NO_COMPRESSION
    return ctx


def fingerprint_sha256(cert: Path) -> str:
    """SHA-256 of the (first) certificate in ``cert``, as browsers show it: ``AB:CD:…``.

    Plain stdlib (no ``cryptography`` import, which costs ~7 MB RSS): the wizard shows it on
    every plain-HTTP setup page so the owner can check the certificate warning that follows.
    """
    m = PEM_CERT_RE.search(cert.read_text(encoding="ascii", errors="replace"))
    if not m:
        raise ValueError(f"{cert}: no PEM certificate in the file")
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(m.group(0))).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "no handshake in time"
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    return str(exc) or type(exc).__name__


def accept(
    sock: socket.socket,
    context: ssl.SSLContext,
    label: str,
    address: tuple[str, int] | None,
    log: logging.Logger,
    timeout: float = HANDSHAKE_TIMEOUT,
) -> ssl.SSLSocket | None:
    """The server side of an implicit-TLS connection, or None (the socket closed) if it failed.

    A client that rejects our self-signed certificate, or speaks no TLS, is one INFO line with
    its address and the reason, not an ERROR with a traceback. A connection closed before it
    sent a byte (a port probe such as the dashboard's listener check) is only a DEBUG line.
    The socket keeps ``timeout`` afterwards; the caller sets the session's own.
    """
    peer = address[0] if address else "?"
    sock.settimeout(timeout)
    try:
        if not sock.recv(1, socket.MSG_PEEK):
            log.debug("%s: %s closed the connection before a TLS handshake", label, peer)
            sock.close()
            return None
        return context.wrap_socket(sock, server_side=True)
    except OSError as exc:  # ssl.SSLError, resets, timeouts
        log.info("%s: TLS handshake with %s failed: %s", label, peer, _reason(exc))
        sock.close()
        return None
