"""Implicit TLS on the IMAPS port: a silent client is dropped after the handshake deadline instead
of holding a connection slot for ever, and a client that rejects the certificate (fetchmail
without the right ``sslcommonname`` does) costs one log line, not a traceback."""

from __future__ import annotations

import socket
import ssl

import pytest
from support.imap import imaps, module_server

imap_server = module_server({"idle_timeout": 10})


def test_silent_tls_client_is_dropped(imap_server):
    with socket.create_connection(("127.0.0.1", imap_server.port("imap.tls_port"))) as s:
        s.settimeout(60)  # far above the 10 s deadline: a timeout here means the server never gave up
        assert s.recv(100) == b""
    assert imaps(imap_server).noop()[0] == "OK"


def test_rejected_certificate_is_one_log_line(imap_server):
    ctx = ssl.create_default_context()  # the system CAs: the self-signed certificate is refused
    with socket.create_connection(("127.0.0.1", imap_server.port("imap.tls_port")), timeout=30) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(raw, server_hostname="mx.test.example")
    assert imaps(imap_server).noop()[0] == "OK"  # the server keeps serving
    log = imap_server.log()
    assert "imaps: TLS handshake with 127.0.0.1 failed" in log
    assert "Traceback" not in log
