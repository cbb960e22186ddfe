"""TLS listeners against a real ``gk serve``: a handshake the client rejects (self-signed
certificate, plain HTTP on the TLS port) is one INFO line with the peer and the reason, never an
ERROR with a traceback; the dashboard's listener probe (connect, close) is not logged at all."""

from __future__ import annotations

import http.client
import re
import smtplib
import socket
import ssl

import pytest
from test_web_http import run_wizard

# listeners that log a rejected handshake as one INFO line (SMTP's STARTTLS too, below); SMTP's
# implicit TLS (asyncio's sslproto) drops such handshakes without a word: checked for no traceback
LOGGED = [("https", "http.https_port"), ("imaps", "imap.tls_port")]


def unverified() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def reject_certificate(port: int) -> None:
    """What a browser or mail client without the box's certificate does: abort the handshake."""
    ctx = ssl.create_default_context()  # system CAs: the self-signed certificate is refused
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(raw, server_hostname="gk.test.example")


def speak_plain_http(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        raw.settimeout(30)
        try:
            while raw.recv(4096):
                pass
        except OSError:
            pass


@pytest.fixture
def server(make_server):
    return make_server().start()  # every listener, mail included


def https_status(srv, path: str = "/wizard/claim") -> int:
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port("http.https_port"), context=unverified(), timeout=30)
    conn.request("GET", path)
    status = conn.getresponse().status
    conn.close()
    return status


def test_rejected_handshakes_are_one_info_line_each(server):
    for _label, key in LOGGED:
        reject_certificate(server.port(key))
    reject_certificate(server.port("smtp.submissions_port"))
    with smtplib.SMTP("127.0.0.1", server.port("smtp.submission_port"), timeout=30) as s:
        with pytest.raises(ssl.SSLCertVerificationError):
            s.starttls(context=ssl.create_default_context())
    speak_plain_http(server.port("http.https_port"))
    assert https_status(server) in (200, 303)  # the server keeps serving
    with smtplib.SMTP_SSL("127.0.0.1", server.port("smtp.submissions_port"), context=unverified(), timeout=30) as s:
        assert s.noop()[0] == 250

    def lines(label: str) -> list[str]:
        return [ln for ln in server.log().splitlines() if f"{label}: TLS handshake with 127.0.0.1 failed" in ln]

    for label, _ in LOGGED:
        found = lines(label)
        assert len(found) >= 1 and all(" INFO " in ln for ln in found), (label, found)
        assert any(re.search(r"CERTIFICATE_UNKNOWN|UNKNOWN_CA|certificate", ln, re.I) for ln in found), found
    assert len(lines("https")) == 2  # the rejected certificate and the plain-HTTP request
    assert len(lines("smtp")) == 1 and " INFO " in lines("smtp")[0]  # STARTTLS on 587
    log = server.log()
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]


def test_status_probe_of_tls_listeners_is_not_logged(server):
    admin = run_wizard(server)
    for _ in range(3):
        resp, body = admin.get("/api/status")
        assert resp.status == 200 and '"up": true' in body.replace('"up":true', '"up": true')
    log = server.log()
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
    assert "TLS handshake with" not in log, [ln for ln in log.splitlines() if "TLS handshake" in ln]
