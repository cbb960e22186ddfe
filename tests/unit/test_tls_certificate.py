"""The self-signed certificate: what Apple clients require (<= 825 days, serverAuth), the names
it carries, and a new one when the host name changes (an owner's own certificate untouched)."""

from __future__ import annotations

import datetime
import ssl

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from gk.config import TLSConfig
from gk.security.tls import certificate_names, ensure_tls, generate_self_signed, renew_self_signed


def load(path) -> x509.Certificate:  # type: ignore[no-untyped-def]
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_self_signed_certificate_suits_apple_clients_and_names_the_box(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    generate_self_signed(cert, key, "mail.example.org")
    c = load(cert)
    life = c.not_valid_after_utc - c.not_valid_before_utc
    assert life <= datetime.timedelta(days=825)
    assert c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.SERVER_AUTH]
    )
    names = certificate_names(cert)
    assert {"mail.example.org", "gk.local", "mail.local", "localhost", "127.0.0.1"} <= set(names)
    ssl.create_default_context().load_verify_locations(str(cert))  # a well-formed PEM a client can trust


def test_a_new_host_name_gets_a_new_certificate_and_the_owners_own_is_kept(tmp_path):
    files = ensure_tls(tmp_path, TLSConfig(), "vm.local")
    first = files.cert.read_bytes()
    assert renew_self_signed(tmp_path, TLSConfig(), "vm.local") is False  # already right
    live = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    assert renew_self_signed(tmp_path, TLSConfig(), "mail.example.org", live) is True
    assert files.cert.read_bytes() != first and "mail.example.org" in certificate_names(files.cert)
    assert live.cert_store_stats() is not None  # the live context took the new pair without error
    # a restart with a host name edited in gk.toml gets one too
    ensure_tls(tmp_path, TLSConfig(), "box.example.net")
    assert "box.example.net" in certificate_names(files.cert)
    own = TLSConfig(cert_file=str(files.cert), key_file=str(files.key))
    assert renew_self_signed(tmp_path, own, "other.example") is False
