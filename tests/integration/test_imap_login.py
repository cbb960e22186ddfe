"""Login: LOGINDISABLED before STARTTLS, LOGIN and AUTHENTICATE PLAIN (with SASL-IR) after TLS,
implicit TLS on the IMAPS port, failures answered with NO and recorded."""

from __future__ import annotations

import base64
import imaplib
import socket
import ssl

import pytest
from support.imap import ALICE, PASSWORD, imaps, module_server, tls_client_context

imap_server = module_server()


def _raw(srv, tls: bool = True):  # type: ignore[no-untyped-def]
    sock = socket.create_connection(("127.0.0.1", srv.port("imap.tls_port" if tls else "imap.port")), timeout=30)
    if tls:
        sock = tls_client_context().wrap_socket(sock)
    f = sock.makefile("rwb")
    return sock, f


def _cmd(f, line: bytes) -> list[bytes]:  # type: ignore[no-untyped-def]
    f.write(line + b"\r\n")
    f.flush()
    tag = line.split(b" ")[0]
    out = []
    while True:
        resp = f.readline()
        assert resp, "connection closed"
        out.append(resp)
        if resp.startswith(tag + b" "):
            return out


def test_plain_port_requires_starttls(imap_server):  # type: ignore[no-untyped-def]
    m = imaplib.IMAP4("127.0.0.1", imap_server.port("imap.port"), timeout=30)
    assert "STARTTLS" in m.capabilities and "LOGINDISABLED" in m.capabilities
    assert "AUTH=PLAIN" not in m.capabilities
    with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
        m.login(ALICE, PASSWORD)
    m.starttls(ssl_context=tls_client_context())
    assert "LOGINDISABLED" not in m.capabilities and "AUTH=PLAIN" in m.capabilities
    assert m.login(ALICE, PASSWORD)[0] == "OK"
    assert m.select("INBOX")[0] == "OK"
    m.logout()


def test_starttls_drops_pipelined_plaintext(imap_server):  # type: ignore[no-untyped-def]
    sock = socket.create_connection(("127.0.0.1", imap_server.port("imap.port")), timeout=30)
    f = sock.makefile("rwb")
    assert f.readline().startswith(b"* OK")
    # a command injected after STARTTLS in the same packet must not run inside TLS
    f.write(b"a STARTTLS\r\nb CAPABILITY\r\n")
    f.flush()
    assert f.readline().startswith(b"a OK")
    tls = tls_client_context().wrap_socket(sock)
    tf = tls.makefile("rwb")
    tf.write(b"c NOOP\r\n")
    tf.flush()
    assert tf.readline().startswith(b"c OK")
    tls.close()


def test_authenticate_plain_with_and_without_initial_response(imap_server):  # type: ignore[no-untyped-def]
    sock, f = _raw(imap_server)
    assert b"AUTH=PLAIN" in f.readline() and True
    token = base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode())
    assert _cmd(f, b"a AUTHENTICATE PLAIN " + token)[-1].startswith(b"a OK")
    sock.close()
    sock, f = _raw(imap_server)
    f.readline()
    f.write(b"b AUTHENTICATE PLAIN\r\n")
    f.flush()
    assert f.readline().startswith(b"+")
    f.write(token + b"\r\n")
    f.flush()
    assert f.readline().startswith(b"b OK")
    # acting as someone else is refused
    sock.close()
    sock, f = _raw(imap_server)
    f.readline()
    other = base64.b64encode(f"bob@example.org\0{ALICE}\0{PASSWORD}".encode())
    assert _cmd(f, b"c AUTHENTICATE PLAIN " + other)[-1].startswith(b"c NO")
    assert _cmd(f, b"d AUTHENTICATE PLAIN !!notbase64")[-1].startswith(b"d BAD")
    assert _cmd(f, b"e AUTHENTICATE CRAM-MD5")[-1].startswith(b"e NO")
    sock.close()


def test_wrong_password_is_refused_and_session_goes_on(imap_server):  # type: ignore[no-untyped-def]
    m = imaps(imap_server, login=False)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        m.login(ALICE, "wrong password!")
    with pytest.raises(imaplib.IMAP4.error):
        m.login("nobody@example.org", PASSWORD)
    assert m.login(ALICE, PASSWORD)[0] == "OK"
    m.logout()
    log = imap_server.log()
    assert "imap login failed" in log and "account=nobody@example.org" in log


def test_commands_need_the_right_state(imap_server):  # type: ignore[no-untyped-def]
    sock, f = _raw(imap_server)
    f.readline()
    assert _cmd(f, b"a SELECT INBOX")[-1].startswith(b"a BAD")
    assert _cmd(f, b"b LOGIN " + ALICE.encode() + b' "' + PASSWORD.encode() + b'"')[-1].startswith(b"b OK")
    assert _cmd(f, b"c FETCH 1 FLAGS")[-1].startswith(b"c BAD")
    assert _cmd(f, b"d LOGIN x y")[-1].startswith(b"d BAD")
    out = _cmd(f, b"e LOGOUT")
    assert out[0].startswith(b"* BYE") and out[-1].startswith(b"e OK")
    sock.close()


def test_many_logins_use_the_credential_cache(imap_server):  # type: ignore[no-untyped-def]
    # the cache must not accept a wrong password for an account it has cached
    for _ in range(20):
        m = imaps(imap_server)
        m.logout()
    m = imaps(imap_server, login=False)
    with pytest.raises(imaplib.IMAP4.error):
        m.login(ALICE, PASSWORD + "x")
    m.logout()


def test_implicit_tls_port_speaks_tls_only(imap_server):  # type: ignore[no-untyped-def]
    sock = socket.create_connection(("127.0.0.1", imap_server.port("imap.tls_port")), timeout=10)
    sock.sendall(b"a CAPABILITY\r\n")
    sock.settimeout(10)
    try:
        data = sock.recv(100)
    except (ConnectionError, TimeoutError, ssl.SSLError):
        data = b""
    assert b"a OK" not in data
    sock.close()
    m = imaps(imap_server)
    assert m.noop()[0] == "OK"
    m.logout()
