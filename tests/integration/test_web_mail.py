"""Webmail over HTTP against a real ``gk serve``: send through the submission path, read, reply,
attachments, flags, move, delete to Trash, search, per-user isolation, inert HTML mail."""

from __future__ import annotations

import re
import time
import urllib.parse

import pytest
from test_web_http import ADMIN, NO_MAIL, Client, run_wizard

BOB, BOB_PW = "bob@test.example", "bob password 1"

XSS_MAIL = (
    "From: Mallory <mallory@evil.example>\r\n"
    "To: bob@test.example\r\n"
    "Subject: Totally safe\r\n"
    "Message-ID: <xss-1@evil.example>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "\r\n"
    "<p>Hello <b>Bob</b></p><script>alert(1)</script>"
    '<img src="x" onerror="alert(2)"><a href="javascript:alert(3)">click</a>'
    '<img src="https://tracker.evil.example/pixel.gif"><div onclick="alert(4)">x</div>\r\n'
)


def drop_in_maildir(srv, address: str, raw: str) -> None:
    """Deliver like an MDA: a file written to tmp/ then renamed into new/ (the store syncs from it)."""
    md = srv.data_dir / "mail" / address / "Maildir"
    for sub in ("tmp", "new", "cur"):
        (md / sub).mkdir(parents=True, exist_ok=True)
    name = f"{time.time():.6f}.test.{len(raw)}"
    (md / "tmp" / name).write_bytes(raw.encode())
    (md / "tmp" / name).rename(md / "new" / name)


def message_links(page: str) -> list[str]:
    return [urllib.parse.unquote(m).replace("&amp;", "&") for m in re.findall(r'href="(/mail/read\?[^"]+)"', page)]


@pytest.fixture
def server(make_server):
    return make_server(overrides=NO_MAIL).start()


def test_send_read_reply_with_attachment(server):
    admin = run_wizard(server)
    admin.get("/mail/compose")
    payload = bytes(range(256)) * 300  # binary, > 64 KiB: crosses decoding chunks
    resp, page = admin.post_multipart(
        "/mail/send",
        {"to": BOB, "cc": "", "subject": "Hello Bob ✓", "body": "First line\nSecond line"},
        [("attachment", "data.bin", payload)],
    )
    assert resp.status == 303, page
    _, sent = admin.get("/mail?folder=Sent")
    assert "Hello Bob ✓" in sent
    bob = Client(server)
    bob.login(BOB, BOB_PW)
    _, inbox = bob.get("/mail")
    assert "Hello Bob ✓" in inbox and 'class="unread"' in inbox and '<span class="count">1</span>' in inbox
    link = message_links(inbox)[0]
    _, msg = bob.get(link)
    assert "Second line" in msg and ADMIN in msg and "data.bin" in msg
    part = re.search(r'href="(/mail/part\?[^"]+)"', msg).group(1).replace("&amp;", "&")
    resp, _ = bob.get(part)
    assert resp.status == 200 and "attachment" in resp.headers["Content-Disposition"]
    # the downloaded attachment is byte-exact (fetch raw bytes)

    conn = bob.connection()
    conn.request("GET", part, headers={"Cookie": bob.cookie_header()})
    assert conn.getresponse().read() == payload
    _, inbox = bob.get("/mail")
    assert 'class="unread"' not in inbox  # reading marked it \\Seen
    # reply: quoted text, Re: subject, goes back to the admin
    uid = urllib.parse.parse_qs(urllib.parse.urlparse(link).query)["uid"][0]
    _, compose = bob.get(f"/mail/compose?mode=reply&folder=INBOX&uid={uid}")
    assert "Re: Hello Bob ✓" in compose and "&gt; First line" in compose
    resp, _ = bob.post_multipart(
        "/mail/send", {"to": ADMIN, "cc": "", "subject": "Re: Hello Bob ✓", "body": "Thanks!", "ref": ""}
    )
    assert resp.status == 303
    _, admin_inbox = admin.get("/mail")
    assert "Re: Hello Bob ✓" in admin_inbox
    # bob cannot reach the admin's messages: every handler opens the logged-in user's mailbox only
    drop_in_maildir(server, ADMIN, "From: x@y.example\r\nSubject: Admin secret\r\n\r\nsecret body\r\n")
    _, admin_inbox = admin.get("/mail")
    secret = [ln for ln in message_links(admin_inbox)]
    assert "Admin secret" in admin_inbox and len(secret) == 2
    for link in secret:
        q = urllib.parse.parse_qs(urllib.parse.urlparse(link).query)
        resp, page = bob.get(f"/mail/read?folder=INBOX&uid={q['uid'][0]}")
        assert "secret body" not in page and "Admin secret" not in page
    # search
    _, found = bob.get("/mail?folder=INBOX&q=Second")
    assert "Hello Bob" in found
    _, none = bob.get("/mail?folder=INBOX&q=zzzznotthere")
    assert "Hello Bob" not in none


def test_flags_move_delete_to_trash(server):
    run_wizard(server)
    drop_in_maildir(server, BOB, "From: a@b.example\r\nTo: bob@test.example\r\nSubject: Movable\r\n\r\nbody\r\n")
    bob = Client(server)
    bob.login(BOB, BOB_PW)
    _, inbox = bob.get("/mail")
    link = message_links(inbox)[0]
    uid = urllib.parse.parse_qs(urllib.parse.urlparse(link).query)["uid"][0]
    bob.get(link)
    resp, _ = bob.post("/mail/flag", {"folder": "INBOX", "uid": uid, "flag": "flagged", "on": "1"})
    assert resp.status == 303
    _, inbox = bob.get("/mail")
    assert "★" in inbox
    resp, _ = bob.post("/mail/move", {"folder": "INBOX", "uid": uid, "dest": "Archive"}, csrf=False)
    assert resp.status == 403  # no CSRF token: refused, nothing moved
    assert "Movable" in bob.get("/mail")[1]
    bob.post("/mail/move", {"folder": "INBOX", "uid": uid, "dest": "Archive"})
    assert "Movable" not in bob.get("/mail")[1]
    _, archive = bob.get("/mail?folder=Archive")
    assert "Movable" in archive
    auid = urllib.parse.parse_qs(urllib.parse.urlparse(message_links(archive)[0]).query)["uid"][0]
    bob.post("/mail/delete", {"folder": "Archive", "uid": auid})
    assert "Movable" not in bob.get("/mail?folder=Archive")[1]
    assert "Movable" in bob.get("/mail?folder=Trash")[1]


def test_html_mail_is_sanitized_and_framed(server):
    run_wizard(server)
    drop_in_maildir(server, BOB, XSS_MAIL)
    bob = Client(server)
    bob.login(BOB, BOB_PW)
    _, inbox = bob.get("/mail")
    link = message_links(inbox)[0]
    _, page = bob.get(link)
    assert "Remote images are blocked" in page and 'sandbox="allow-popups' in page
    assert "<script>alert" not in page
    body_url = re.search(r'<iframe id="body"[^>]*src="([^"]+)"', page).group(1).replace("&amp;", "&")
    resp, body = bob.get(body_url)
    assert resp.status == 200 and "<b>Bob</b>" in body
    low = body.lower()
    assert "<script" not in low and "onerror" not in low and "onclick" not in low and "javascript:" not in low
    assert "tracker.evil.example" not in body
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "sandbox" in csp and "script-src" not in csp
    resp, body = bob.get(body_url.replace("images=0", "images=1"))
    assert "tracker.evil.example" in body and "https:" in resp.headers["Content-Security-Policy"]
    assert "<script" not in body.lower()


DATA_LINK_MAIL = (
    "From: Mallory <mallory@evil.example>\r\nTo: bob@test.example\r\nSubject: Data links\r\n"
    "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    '<p>Hi</p><a id="l1" href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">open</a>'
    '<a href=" DATA&colon;text/html,<script>alert(2)</script>">two</a><area href="data:text/html,x">'
    '<img src="data:image/png;base64,iVBORw0KGgo=" alt="inline"><img src="data:text/html,x" alt="bad">\r\n'
)


def test_bad_uid_notice_text_and_data_links(server):
    """Issue 9 §4: a 20-digit uid gave a 500 (OverflowError); ``?notice=`` printed any text in the
    success banner; ``data:`` URLs survived in mail links (allowed only in ``img src``)."""
    run_wizard(server)
    drop_in_maildir(server, BOB, DATA_LINK_MAIL)
    bob = Client(server)
    bob.login(BOB, BOB_PW)
    for uid in ("99999999999999999999", "4294967296", "-1", "0", "1e3", "٣"):
        resp, page = bob.get("/mail/read?folder=INBOX&uid=" + urllib.parse.quote(uid))
        assert resp.status in (400, 404) and "Bad message id" in page, uid
        assert bob.get("/mail/body?folder=INBOX&uid=" + urllib.parse.quote(uid))[0].status in (400, 404)
    bob.get("/mail")  # a page with this session's CSRF token
    resp, _ = bob.post("/mail/flag", {"folder": "INBOX", "uid": "99999999999999999999", "flag": "seen", "on": "1"})
    assert resp.status == 400
    assert bob.get("/mail?page=99999999999999999999")[0].status == 200
    assert bob.get("/mail/read?folder=INBOX&uid=4294967295")[0].status == 404  # in range, no such message
    # the banner shows known notices only, translated; never text from the URL
    resp, page = bob.get("/mail?" + urllib.parse.urlencode({"notice": "Your password expired: call +1 555 0100"}))
    assert resp.status == 200 and "call +1 555" not in page and 'class="notice"' not in page
    _, page = bob.get("/mail?notice=sent&count=2")
    assert "Message sent. (2)" in page
    _, page = bob.get("/mail?notice=sent&count=2", headers={"Accept-Language": "fr"})
    assert "Message envoyé. (2)" in page or "Message sent. (2)" in page  # the user's language may be set
    # data: survives only as an inline image
    _, inbox = bob.get("/mail")
    _, msg = bob.get(message_links(inbox)[0])
    body_url = re.search(r'<iframe id="body"[^>]*src="([^"]+)"', msg).group(1).replace("&amp;", "&")
    resp, body = bob.get(body_url)
    assert resp.status == 200 and "<p>Hi</p>" in body
    assert body.lower().count("data:") == 1 and 'src="data:image/png;base64,iVBORw0KGgo="' in body, body
