"""Unit tests of the web UI's pure parts: claim state, LAN policy, language choice, HTML sanitizing,
attachment decoding, redirect targets."""

from __future__ import annotations

import base64
import io
import quopri
import time

import pytest

from gk import claim
from gk.mail.mailbox import reading
from gk.mail.mailbox.mime import parse_structure
from gk.web import i18n, mailrender
from gk.web.account import safe_next
from gk.web.headers import https_origin
from gk.web.netpolicy import is_lan, parse_networks

LAN = parse_networks(
    [
        "127.0.0.0/8",
        "::1/128",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "fe80::/10",
        "fc00::/7",
    ]
)


@pytest.mark.parametrize(
    "ip,lan",
    [
        ("127.0.0.1", True),
        ("192.168.1.20", True),
        ("10.1.2.3", True),
        ("172.31.255.1", True),
        ("172.32.0.1", False),
        ("169.254.3.4", True),
        ("fe80::1%eth0", True),
        ("fd12:3456::1", True),
        ("::ffff:192.168.0.5", True),
        ("8.8.8.8", False),
        ("2001:db8::1", False),
        ("::ffff:8.8.8.8", False),
        ("not an ip", False),
        ("", False),
    ],
)
def test_lan_policy(ip, lan):
    assert is_lan(ip, LAN) is lan


def test_claim_code_button_and_recovery(tmp_path):
    code = claim.ensure_setup_code(tmp_path)
    assert code and (tmp_path / "setup-code.txt").read_text().strip() == code
    assert claim.ensure_setup_code(tmp_path) == code  # stable across restarts
    assert claim.check_code(tmp_path, code.lower().replace("-", " "))
    assert not claim.check_code(tmp_path, "AAAA-BBBB-CCCC") and not claim.check_code(tmp_path, "")
    page_opened = time.time()
    assert not claim.take_button_press(tmp_path, page_opened)
    claim.button_pressed(tmp_path)
    assert claim.take_button_press(tmp_path, page_opened)
    assert not claim.take_button_press(tmp_path, page_opened)  # a press claims once
    claim.button_pressed(tmp_path)
    assert not claim.take_button_press(tmp_path, time.time() + 1)  # pressed before the page opened
    claim.claim(tmp_path, "setup code")
    assert claim.state(tmp_path) == claim.SETUP and not claim.check_code(tmp_path, code)
    assert not (tmp_path / "setup-code.txt").exists()
    claim.complete(tmp_path)
    assert claim.is_complete(tmp_path) and claim.ensure_setup_code(tmp_path) is None
    new = claim.open_recovery(tmp_path, minutes=0.01)
    assert claim.recovery_open(tmp_path) and claim.check_code(tmp_path, new)
    time.sleep(0.7)
    assert not claim.recovery_open(tmp_path)  # the window closes by itself


def test_language_negotiation_and_catalogue():
    assert i18n.negotiate("fr-FR,fr;q=0.9,en;q=0.8") == "fr"
    assert i18n.negotiate("de-DE,en;q=0.5,fr;q=0.7") == "fr"
    assert i18n.negotiate("de") == "en" and i18n.negotiate("") == "en"
    assert i18n.negotiate("fr", user_language="en") == "en"
    assert i18n.translator("fr")("Sign in") == "Se connecter"
    assert i18n.translator("fr")("not in catalogue") == "not in catalogue"


def test_sanitizer_removes_script_handlers_and_js_links():
    dirty = (
        "<p onclick='x()'>hi</p><script>alert(1)</script><a href='javascript:alert(1)'>j</a>"
        "<a href='https://ok.example/'>ok</a><img src='https://t.example/p.gif'><img src='data:image/png;base64,AAAA'>"
        "<form action='https://evil.example'><input name=p></form><style>body{}</style><iframe src='x'></iframe>"
    )
    clean = mailrender.sanitize_html(dirty, show_images=False)
    low = clean.lower()
    for bad in ("<script", "onclick", "javascript:", "<form", "<input", "<iframe", "t.example"):
        assert bad not in low, bad
    assert "<style>body{}</style>" in clean  # issue 10: the mail keeps its own sheet (the frame's CSP bounds it)
    assert 'href="https://ok.example/"' in clean and "data:image/png" in clean and "noopener" in clean
    assert "t.example" in mailrender.sanitize_html(dirty, show_images=True)
    assert mailrender.has_remote_images(dirty)


def test_sanitizer_allows_data_urls_only_in_img_src():
    dirty = (
        '<a href="data:text/html;base64,PHNjcmlwdD4=">a</a><a href=" DA\tTA&colon;text/html,x">b</a>'
        '<area href="data:x"><blockquote cite="data:x">q</blockquote><img src="data:text/html,x">'
        '<img src="data:image/gif;base64,R0lGOD=="><a href="https://ok.example/" title="data: kept">ok</a>'
    )
    clean = mailrender.sanitize_html(dirty, show_images=False)
    assert clean.lower().count("data:") == 2, clean  # the inline image and the harmless title
    assert 'src="data:image/gif;base64,R0lGOD=="' in clean and 'title="data: kept"' in clean


def _message(encoding: str, body: bytes) -> bytes:
    return (
        b"Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=BB\r\n\r\n"
        b"--BB\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        b'--BB\r\nContent-Type: application/octet-stream; name="f.bin"\r\n'
        b'Content-Disposition: attachment; filename="f.bin"\r\n'
        b"Content-Transfer-Encoding: " + encoding.encode() + b"\r\n\r\n" + body + b"\r\n--BB--\r\n"
    )


@pytest.mark.parametrize("encoding", ["base64", "quoted-printable", "8bit"])
def test_attachment_streams_decoded(encoding):
    payload = bytes(range(256)) * 800 if encoding != "8bit" else b"plain bytes\r\n" * 9000
    if encoding == "base64":
        body = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    elif encoding == "quoted-printable":
        body = quopri.encodestring(payload).replace(b"\n", b"\r\n")
    else:
        body = payload
    raw = _message(encoding, body)
    top = parse_structure(io.BytesIO(raw))
    atts = reading.attachments(top)
    assert [a.name for a in atts] == ["f.bin"]
    part = [p for path, p in reading.numbered_parts(top) if path == atts[0].path][0]
    chunks = list(reading.stream_part(io.BytesIO(raw), part))
    assert len(chunks) > 1  # streamed, not whole
    got = b"".join(chunks)
    if encoding == "8bit":
        assert got.rstrip(b"\r\n") == payload.rstrip(b"\r\n")
    else:
        assert got.replace(b"\r\n", b"\n") == payload.replace(b"\r\n", b"\n")


def test_safe_next_and_https_origin():
    assert safe_next("/mail?folder=Sent") == "/mail?folder=Sent"
    for bad in ("//evil.example/", "https://evil.example/", "javascript:alert(1)", "/\\evil.example"):
        assert safe_next(bad) == "/"
    # issue 9: a TAB (or any control/space) survived and urljoin stripped it into //evil.example
    for bad in ("/\t/evil.example/phish", "/\n/evil.example", "/ /evil.example", "/%09/evil.example", "/%2F/evil"):
        assert safe_next(bad) == "/", repr(bad)
    for bad in ("/%5Cevil.example", "/mail\x00", "/\u2028/evil", "/%E2%80%8B/x", "mail"):
        assert safe_next(bad) == "/", repr(bad)
    assert safe_next("/mail/read?folder=INBOX&uid=3") == "/mail/read?folder=INBOX&uid=3"
    assert https_origin({"HTTP_HOST": "gk.local:8080"}, 8443) == "https://gk.local:8443"
    assert https_origin({"HTTP_HOST": "gk.local"}, 443) == "https://gk.local"
    assert https_origin({"HTTP_HOST": "evil' 'unsafe-inline"}, 443) == ""


def test_mounted_feature_app_gets_gate_headers_and_optional_csrf_exemption(tmp_path):
    """Another feature's bottle app mounted on the web app (as DAV/chat will be), through the real WSGI stack."""
    import bottle

    from gk import config
    from gk.context import build_context
    from gk.web.app import Web

    ctx = build_context(config.load(tmp_path), tmp_path)
    dav, chat = bottle.Bottle(), bottle.Bottle()
    dav.route("/cal", method="PUT", callback=lambda: "stored")
    chat.route("/post", method="POST", callback=lambda: "posted")
    web = Web(ctx)
    web.mount("/dav", dav, csrf_exempt=True)
    web.mount("/chat", chat)

    def call(method: str, path: str) -> tuple[str, dict[str, str], bytes]:
        env = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "wsgi.input": io.BytesIO(b""),
            "CONTENT_LENGTH": "0",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.url_scheme": "http",
            "SERVER_NAME": "gk",
            "SERVER_PORT": "80",
        }
        out: dict = {}
        body = b"".join(web.wsgi(env, lambda s, h, e=None: out.update(status=s, headers=dict(h))))
        return out["status"], out["headers"], body

    status, headers, _ = call("PUT", "/dav/cal")
    assert status[:3] in ("302", "303")  # unclaimed: even mounted apps send people to the wizard
    assert "Content-Security-Policy" in headers
    claim.claim(tmp_path, "test")
    claim.complete(tmp_path)
    web.forget_state()
    status, headers, body = call("PUT", "/dav/cal")
    assert status.startswith("200") and body == b"stored" and headers["X-Content-Type-Options"] == "nosniff"
    status, _, body = call("POST", "/chat/post")
    assert status.startswith("403") and b"posted" not in body  # cookie-session apps keep CSRF


def test_top_processes_lists_this_process_biggest_first():
    import os

    from gk.web.dashboard import top_processes

    ballast = bytearray(64 * 2**20)  # makes this process one of the biggest on the machine
    ballast[::4096] = b"x" * len(ballast[::4096])
    procs = top_processes(50)
    assert procs == sorted(procs, key=lambda p: p["rss_mb"], reverse=True)
    mine = [p for p in procs if p["pid"] == os.getpid()]
    assert mine and mine[0]["rss_mb"] >= 64 and mine[0]["name"].startswith(("python", "pytest"))
    del ballast


def test_setup_code_guard_is_per_address_with_growing_delays():
    from gk.claim.codeguard import CodeGuard

    now = [1000.0]
    guard = CodeGuard(lockout_failures=10, lockout_seconds=900, clock=lambda: now[0])
    delays = [guard.attempt("192.168.1.66") for _ in range(10)]
    assert delays[:3] == [0.0, 0.0, 0.0] and delays[3:7] == [1.0, 2.0, 4.0, 8.0] and delays[9] == 8.0
    assert guard.attempt("192.168.1.66") is None and guard.locked("::ffff:192.168.1.66") > 0
    assert guard.attempt("192.168.1.20") == 0.0  # the owner's device is not affected
    guard.success("192.168.1.20")
    now[0] += 901
    assert guard.attempt("192.168.1.66") == 0.0  # the lockout ends; it is not renewed by waiting


def test_button_waiters_count_browsers_waiting_at_the_press():
    from gk.claim.waiters import LIVE_SECONDS, ButtonWaiters

    now = [5000.0]
    w = ButtonWaiters(clock=lambda: now[0])
    w.announce("owner", fresh=True)
    now[0] += 1
    assert w.waiting_at(now[0]) == {"owner"}
    w.announce("late", fresh=True)  # opened after the press at 5001 - 0.5
    assert w.waiting_at(now[0] - 0.5) == {"owner"}
    w.announce("poller")
    assert w.waiting_at(now[0]) == {"owner", "late", "poller"}
    now[0] += LIVE_SECONDS + 5
    w.announce("owner")  # the others stopped polling: a closed tab does not block the owner
    assert w.waiting_at(now[0]) == {"owner"}
    w.refuse({"owner"})
    assert w.refused("owner")
    w.announce("owner", fresh=True)  # reopening the claim page starts over
    assert not w.refused("owner")
