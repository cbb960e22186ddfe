"""The host name chosen in the wizard reaches the TLS certificate at once: the next HTTPS handshake
of the running ``gk serve`` presents a certificate naming it, no restart (IMAP and SMTP share the
same SSLContext object, so their next handshakes do too)."""

from __future__ import annotations

import socket
import ssl

from cryptography import x509
from test_web_http import NO_MAIL, run_wizard


def presented_names(port: int) -> list[str]:
    tls = ssl.create_default_context()
    tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw, tls.wrap_socket(raw) as s:
        der = s.getpeercert(binary_form=True)
    assert der
    cert = x509.load_der_x509_certificate(der)
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)


def test_the_wizards_host_name_is_in_the_certificate_without_a_restart(make_server):
    srv = make_server(overrides={**NO_MAIL, "server": {"hostname": "vm.local"}}).start()
    https = srv.port("http.https_port")
    assert "mail.test.example" not in presented_names(https)
    pid = srv.pid
    run_wizard(srv)  # host step: mail.test.example
    assert "mail.test.example" in presented_names(https)
    assert srv.pid == pid  # the same process: no restart
