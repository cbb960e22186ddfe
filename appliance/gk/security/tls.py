"""TLS for every listener: the configured cert/key, or a self-signed pair made at first start.

`cryptography` is imported only while generating, and in ``gk serve`` only by a child process
(``gk.security.keymaker``: it costs ~11 MB RSS in a long-lived process).
The pair lives in ``DATA_DIR/tls/{cert,key}.pem`` (key mode 0600). ECDSA P-256: fast
handshakes on small ARM boards and accepted by every current client. It names the host name,
``gk.local``, ``<host>.local``, localhost and the box's IPv4 addresses, is valid 825 days with the
serverAuth extended key usage (what Apple clients require), and is made anew — and loaded into
the running listeners — when the host name changes (``renew_self_signed``).
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

import gevent

from gk.config import TLSConfig
from gk.store.files import write_durable

HANDSHAKE_TIMEOUT = 30.0  # seconds a client gets to finish the TLS handshake
PEM_CERT_RE = re.compile(r"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)


@dataclass(frozen=True)
class TLSFiles:
    cert: Path
    key: Path


# Apple clients refuse a server certificate valid longer than 825 days or without the serverAuth
# extended key usage; every other client accepts both.
SELF_SIGNED_DAYS = 825


def local_addresses() -> list[str]:
    """The box's IPv4 interface addresses (SIOCGIFADDR per interface: no traffic, stdlib only)."""
    import fcntl
    import struct

    out = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            try:
                packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name[:15].encode()))  # SIOCGIFADDR
            except OSError:
                continue
            out.append(socket.inet_ntoa(packed[20:24]))
    return sorted(set(out))


def certificate_names(cert: Path) -> list[str]:
    """DNS names and addresses a PEM certificate is for (stdlib decoder; no `cryptography` import)."""
    info = ssl._ssl._test_decode_cert(str(cert))  # type: ignore[attr-defined]
    return [value.lower() for _, value in info.get("subjectAltName", ())]


def generate_self_signed(cert: Path, key: Path, hostname: str) -> None:
    """Make the self-signed pair (``write_self_signed``); in ``gk serve``, in a child process
    (``gk.security.keymaker``: the serving process never imports ``cryptography``)."""
    from gk.security import keymaker

    keymaker.make_self_signed(cert, key, hostname)


def write_self_signed(cert: Path, key: Path, hostname: str) -> None:
    # imported here: `cryptography` costs ~11 MB RSS and is needed only when a key is made
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    cert.parent.mkdir(parents=True, exist_ok=True)
    private = ec.generate_private_key(ec.SECP256R1())
    dns_names = dict.fromkeys([hostname, "gk.local", hostname.split(".")[0] + ".local", "localhost"])
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    for address in dict.fromkeys(["127.0.0.1", *local_addresses()]):
        names.append(x509.IPAddress(ipaddress.ip_address(address)))
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
        .not_valid_after(now - datetime.timedelta(days=1) + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
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
    else:
        renew_self_signed(data_dir, cfg, hostname)
    return files


def renew_self_signed(data_dir: Path, cfg: TLSConfig, hostname: str, live: ssl.SSLContext | None = None) -> bool:
    """Make a new self-signed pair when GK's own certificate does not name ``hostname`` (the host
    name changed) and load it into ``live``, the context every listener shares: the next TLS
    handshake uses it, no restart needed. An owner's own certificate (``[tls]``) is never touched.
    True when a new pair was made."""
    if cfg.cert_file or cfg.key_file:
        return False
    cert, key = data_dir / "tls" / "cert.pem", data_dir / "tls" / "key.pem"
    try:
        if hostname.lower() in certificate_names(cert):
            return False
    except (OSError, ssl.SSLError):
        pass  # unreadable: make a new one
    generate_self_signed(cert, key, hostname)
    if live is not None:
        live.load_cert_chain(str(cert), str(key))
    return True


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
        # ``timeout`` for the whole handshake, not only each read: a ClientHello sent a byte
        # every few seconds held the connection (and its listener's slot) for hours
        with gevent.Timeout(timeout, TimeoutError(f"handshake not done within {timeout:g} s")):
            if not sock.recv(1, socket.MSG_PEEK):
                log.debug("%s: %s closed the connection before a TLS handshake", label, peer)
                sock.close()
                return None
            return context.wrap_socket(sock, server_side=True)
    except OSError as exc:  # ssl.SSLError, resets, timeouts
        log.info("%s: TLS handshake with %s failed: %s", label, peer, _reason(exc))
        sock.close()
        return None
