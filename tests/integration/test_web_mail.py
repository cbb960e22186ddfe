"""Webmail over HTTP against a real ``gk serve``: send through the submission path, read, reply,
attachments, flags, move, delete to Trash, search, per-user isolation, inert HTML mail."""

from __future__ import annotations

import re
import urllib.parse

import pytest
from support.messages import drop_in_maildir
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
    assert "Remote images are blocked" in page
    sandbox = re.search(r'<iframe id="body"[^>]*sandbox="([^"]*)"', page).group(1).split()
    # same-origin only so the reader's own script can size the frame: never with allow-scripts
    assert sandbox == ["allow-same-origin", "allow-popups", "allow-popups-to-escape-sandbox"]
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
    assert "Message sent to 2 recipients." in page
    _, page = bob.get("/mail?notice=sent&count=2", headers={"Accept-Language": "fr"})
    assert (
        "Message envoyé à 2 destinataires." in page or "Message sent to 2 recipients." in page
    )  # the user's language may be set
    assert "Message sent.</p>" in bob.get("/mail?notice=sent&count=1")[1]  # one recipient: no count
    # data: survives only as an inline image
    _, inbox = bob.get("/mail")
    _, msg = bob.get(message_links(inbox)[0])
    body_url = re.search(r'<iframe id="body"[^>]*src="([^"]+)"', msg).group(1).replace("&amp;", "&")
    resp, body = bob.get(body_url)
    assert resp.status == 200 and "<p>Hi</p>" in body
    assert body.lower().count("data:") == 1 and 'src="data:image/png;base64,iVBORw0KGgo="' in body, body


# -- issue 10 item 7: a webmail people keep ------------------------------------------------------
CAROL, CAROL_PW = "carol@test.example", "carol password 1"


def add_user(admin: Client, address: str, password: str) -> None:
    admin.get("/admin/users")
    resp, page = admin.post("/admin/users", {"address": address, "password": password})
    assert resp.status in (200, 303), page


def maildir_messages(srv, address: str, folder: str = "") -> list:
    """The messages delivered to a user's Maildir (or one folder of it), parsed by the email package."""
    import email
    import email.policy

    md = srv.data_dir / "mail" / address / "Maildir"
    if folder:
        md = md / ("." + folder)
    files = sorted(p for sub in ("new", "cur") if (md / sub).is_dir() for p in (md / sub).iterdir())
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in files]


def uid_of(link: str) -> str:
    return urllib.parse.parse_qs(urllib.parse.urlparse(link).query)["uid"][0]


def link_for(page: str, subject_fragment: str) -> str:
    """The reader link of the list row whose text holds ``subject_fragment``."""
    for li in re.findall(r"<li(?:\s[^>]*)?>.*?</li>", page, re.S):
        if subject_fragment in li:
            links = message_links(li)
            if links:
                return links[0]
    raise AssertionError(f"no row with {subject_fragment!r}")


def rows_with(page: str, text: str) -> list[str]:
    """The message-list rows holding ``text``."""
    return [li for li in re.findall(r"<li(?:\s[^>]*)?>.*?</li>", page, re.S) if text in li]


def form_value(page: str, name: str) -> str:
    import html

    m = re.search(rf'name="{name}"[^>]*value="([^"]*)"', page) or re.search(
        rf'<textarea[^>]*name="{name}"[^>]*>(.*?)</textarea>', page, re.S
    )
    return html.unescape(m.group(1)) if m else ""


def test_reply_all_writes_the_whole_references_chain_and_threads(server):
    """Reply-all answers the sender and every other recipient but the user; In-Reply-To names the
    message answered and References carries the whole chain (parsed from the delivered copies);
    the list groups the conversation, the reader lists it, Sent shows recipients."""
    admin = run_wizard(server)
    add_user(admin, CAROL, CAROL_PW)
    root = (
        "From: Alice <alice@remote.example>\r\nTo: Bob <bob@test.example>, carol@test.example\r\n"
        f"Cc: {ADMIN}\r\nSubject: Picnic\r\nDate: Sun, 29 Nov 2026 12:00:00 +0000\r\n"
        "Message-ID: <root-1@remote.example>\r\nReferences: <older-0@remote.example>\r\n\r\nSaturday?\r\n"
    )
    drop_in_maildir(server, BOB, root)
    bob = Client(server)
    bob.login(BOB, BOB_PW)
    _, inbox = bob.get("/mail")
    link = link_for(inbox, "Picnic")
    _, msg = bob.get(link)
    assert 'id="replyall"' in msg
    assert "Sun, Nov 29, 2026, 13:00" in msg and "+0000" not in msg  # the owner's zone (Europe/Paris)
    _, fr = bob.get(link, headers={"Accept-Language": "fr"})
    assert "dim. 29 nov. 2026, 13:00" in fr and "Répondre à tous" in fr
    _, compose = bob.get(f"/mail/compose?mode=replyall&folder=INBOX&uid={uid_of(link)}")
    to, cc = form_value(compose, "to"), form_value(compose, "cc")
    assert "alice@remote.example" in to
    assert CAROL in cc and ADMIN in cc and BOB not in cc and "alice@" not in cc
    assert form_value(compose, "ref") == "<root-1@remote.example>"
    assert form_value(compose, "refs") == "<older-0@remote.example> <root-1@remote.example>"
    # send it to the local recipients only (alice is remote; no outbound queue in this server)
    resp, page = bob.post_multipart(
        "/mail/send",
        {
            "to": CAROL,
            "cc": ADMIN,
            "subject": "Re: Picnic",
            "body": "Yes!",
            "ref": form_value(compose, "ref"),
            "refs": form_value(compose, "refs"),
            "orig_folder": "INBOX",
            "orig_uid": uid_of(link),
        },
    )
    assert resp.status == 303, page
    reply = next(m for m in maildir_messages(server, CAROL) if m["Subject"] == "Re: Picnic")
    assert reply["In-Reply-To"] == "<root-1@remote.example>"
    assert reply["References"].split() == ["<older-0@remote.example>", "<root-1@remote.example>"]
    assert reply["Cc"] == ADMIN
    # carol answers bob's reply: the chain grows by one (reply to a reply keeps the root)
    carol = Client(server)
    carol.login(CAROL, CAROL_PW)
    _, cinbox = carol.get("/mail")
    clink = link_for(cinbox, "Re: Picnic")
    _, ccompose = carol.get(f"/mail/compose?mode=replyall&folder=INBOX&uid={uid_of(clink)}")
    assert BOB in form_value(ccompose, "to") and ADMIN in form_value(ccompose, "cc")
    assert CAROL not in form_value(ccompose, "cc")
    resp, _ = carol.post_multipart(
        "/mail/send",
        {
            "to": BOB,
            "cc": "",
            "subject": "Re: Picnic",
            "body": "Me too",
            "ref": form_value(ccompose, "ref"),
            "refs": form_value(ccompose, "refs"),
        },
    )
    assert resp.status == 303
    second = [m for m in maildir_messages(server, BOB) if m["Subject"] == "Re: Picnic"][-1]
    chain = second["References"].split()
    assert chain == ["<older-0@remote.example>", "<root-1@remote.example>", reply["Message-ID"]]
    assert second["In-Reply-To"] == reply["Message-ID"]
    # a forward carries the chain too
    _, fwd = bob.get(f"/mail/compose?mode=forward&folder=INBOX&uid={uid_of(link)}")
    assert form_value(fwd, "refs") == "<older-0@remote.example> <root-1@remote.example>"
    # bob's inbox groups the conversation into one row; the reader lists it across INBOX and Sent
    _, inbox = bob.get("/mail")
    rows = rows_with(inbox, "Picnic")
    assert len(rows) == 1 and '<span class="tcount"' in rows[0], rows
    _, msg = bob.get(link_for(inbox, "Picnic"))
    thread = re.search(r'<ol id="thread">(.*?)</ol>', msg, re.S).group(1)
    assert thread.count("<li") == 3 and "Alice" in thread and "carol" in thread and "Sent" in thread
    # the original is marked answered; Sent lists the recipients, not the sender
    _, sent = bob.get("/mail?folder=Sent")
    row = re.search(r"<li(?:\s[^>]*)?>.*?Re: Picnic.*?</li>", sent, re.S).group(0)
    assert "To: carol@test.example, " + ADMIN in row and "bob@test.example" not in row
    cur = server.data_dir / "mail" / BOB / "Maildir" / "cur"
    answered = [p.name for p in cur.iterdir() if "R" in p.name.rpartition(":2,")[2]]
    assert len(answered) == 1 and b"root-1@remote.example" in (cur / answered[0]).read_bytes()[:2000]


RFC2231_MAIL = (
    "From: shop@remote.example\r\nTo: bob@test.example\r\nSubject: Invoice\r\n"
    "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
    "--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYour invoice is attached.\r\n"
    "--XX\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
    "Content-Disposition: attachment; filename*=utf-8''facture-%C3%A9t%C3%A9.pdf\r\n\r\n"
    "{pdf}\r\n"
    "--XX\r\nContent-Type: text/plain; name*0*=utf-8''r%C3%A9sum; name*1*=%C3%A9-long.txt\r\n"
    "Content-Disposition: attachment\r\n\r\nx\r\n--XX--\r\n"
)


def test_non_ascii_attachment_names_both_ways_and_decoded_sizes(server):
    import base64

    admin = run_wizard(server)
    pdf = bytes(range(256)) * 4 + b"tail"  # 1,028 bytes, base64 on 76-column lines
    b64 = base64.encodebytes(pdf).decode().replace("\n", "\r\n").strip()
    drop_in_maildir(server, BOB, RFC2231_MAIL.replace("{pdf}", b64))
    bob = Client(server)
    bob.login(BOB, BOB_PW)
    _, inbox = bob.get("/mail")
    row = re.search(r"<li(?:\s[^>]*)?>.*?Invoice.*?</li>", inbox, re.S).group(0)
    assert 'class="clip"' in row and "Your invoice is attached." in row  # marker and preview line
    _, msg = bob.get(link_for(inbox, "Invoice"))
    assert "facture-été.pdf" in msg and "résumé-long.txt" in msg and "%C3" not in msg
    assert "1.0 KB" in msg and str(len(b64)) not in msg  # decoded size (1,028 bytes), not the encoded
    part = re.search(r'href="(/mail/part\?[^"]+)">facture', msg).group(1).replace("&amp;", "&")
    resp, _ = bob.get(part)
    assert urllib.parse.unquote(resp.headers["Content-Disposition"].split("''", 1)[1]) == "facture-été.pdf"
    # upload: a browser sends the name in UTF-8; the recipient gets it whole, RFC 2231-encoded
    admin.get("/mail/compose")
    resp, page = admin.post_multipart(
        "/mail/send",
        {"to": BOB, "cc": "", "subject": "CV", "body": "ci-joint"},
        [("attachment", "résumé été.txt", b"hello")],
    )
    assert resp.status == 303, page
    cv = next(m for m in maildir_messages(server, BOB) if m["Subject"] == "CV")
    att = next(cv.iter_attachments())
    assert att.get_filename() == "résumé été.txt"
    md = server.data_dir / "mail" / BOB / "Maildir"
    raw = b"".join(p.read_bytes() for sub in ("new", "cur") for p in (md / sub).iterdir())
    assert b"filename*=utf-8''r%C3%A9sum%C3%A9%20%C3%A9t%C3%A9.txt" in raw  # RFC 2231 on the wire
    _, inbox = bob.get("/mail")
    _, msg = bob.get(link_for(inbox, "CV"))
    assert "résumé été.txt" in msg and "5 bytes" in msg


def test_drafts_round_trip(server):
    admin = run_wizard(server)
    admin.get("/mail/compose")
    resp, _ = admin.post_multipart(
        "/mail/send",
        {"action": "save", "to": "", "cc": "", "subject": "Half done", "body": "First thoughts"},
        [("attachment", "plan été.pdf", b"%PDF-1.4 plan")],
    )
    assert resp.status == 303 and "mode=draft" in resp.headers["Location"]
    _, drafts = admin.get("/mail?folder=Drafts")
    assert "Half done" in drafts and "mode=draft" in drafts
    draft_link = re.search(r'href="(/mail/compose\?mode=draft[^"]+)"', drafts).group(1).replace("&amp;", "&")
    _, page = admin.get(draft_link)
    assert form_value(page, "subject") == "Half done" and form_value(page, "body").strip() == "First thoughts"
    keep = re.search(r'name="keep" value="([^"]+)" checked> plan été.pdf', page).group(1)  # the draft's file
    # saved again: the new version replaces the old one
    resp, _ = admin.post_multipart(
        "/mail/send",
        {
            "action": "save",
            "to": BOB,
            "cc": "",
            "subject": "Half done",
            "body": "Second thoughts",
            "draft_uid": form_value(page, "draft_uid"),
            "keep": keep,
        },
    )
    assert resp.status == 303
    _, drafts = admin.get("/mail?folder=Drafts")
    assert len(rows_with(drafts, "Half done")) == 1 and "To: bob@test.example" in drafts
    assert [m["Subject"] for m in maildir_messages(server, ADMIN, "Drafts")] == ["Half done"]
    _, page = admin.get(re.search(r'href="(/mail/compose\?mode=draft[^"]+)"', drafts).group(1).replace("&amp;", "&"))
    assert form_value(page, "to") == BOB and "Second thoughts" in form_value(page, "body")
    resp, _ = admin.post_multipart(
        "/mail/send",
        {
            "to": BOB,
            "cc": "",
            "subject": "Half done",
            "body": "Final",
            "draft_uid": form_value(page, "draft_uid"),
            "keep": re.search(r'name="keep" value="([^"]+)" checked> plan été.pdf', page).group(1),
        },
    )
    assert resp.status == 303
    assert "Half done" not in admin.get("/mail?folder=Drafts")[1]  # sent: the draft is gone
    assert "Half done" in admin.get("/mail?folder=Sent")[1]
    (final,) = [m for m in maildir_messages(server, BOB) if m["Subject"] == "Half done"]
    assert final.get_body(("plain",)).get_content().strip() == "Final"
    (att,) = list(final.iter_attachments())  # the file saved with the first version, carried through
    assert att.get_filename() == "plan été.pdf" and att.get_content() == b"%PDF-1.4 plan"


def bulk(client: Client, folder: str, uids: list[str], action: str, dest: str = ""):
    form = [("csrf", client.csrf), ("folder", folder), ("action", action), ("dest", dest)]
    return client.request("POST", "/mail/bulk", form=form + [("uid", u) for u in uids])


def test_bulk_actions_folders_and_search_everywhere(server):
    run_wizard(server)
    for n in range(1, 5):
        drop_in_maildir(
            server, BOB, f"From: a{n}@b.example\r\nTo: bob@test.example\r\nSubject: Bulk {n}\r\n\r\nb{n}\r\n"
        )
    bob = Client(server)
    bob.login(BOB, BOB_PW)
    _, inbox = bob.get("/mail")
    uids = {n: uid_of(link_for(inbox, f"Bulk {n}")) for n in range(1, 5)}
    assert inbox.count('class="unread"') == 4
    resp, _ = bulk(bob, "INBOX", list(uids.values()), "read")
    assert resp.status == 303
    _, inbox = bob.get("/mail")
    assert 'class="unread"' not in inbox
    bulk(bob, "INBOX", [uids[1], uids[2]], "unread")
    assert bob.get("/mail")[1].count('class="unread"') == 2
    # folders: create, rename, and (after moving mail out of it) delete
    bob.get("/mail/folders")
    resp, _ = bob.post("/mail/folders", {"action": "create", "name": "Holidays"})
    assert resp.status == 303
    resp, page = bob.post("/mail/folders", {"action": "rename", "old": "Sent", "name": "Other"})
    assert resp.status == 400 and "could not be changed" in page
    resp, _ = bob.post("/mail/folders", {"action": "rename", "old": "Holidays", "name": "Trips"})
    assert resp.status == 303
    _, page = bob.get("/mail/folders")
    assert "Trips" in page and "Holidays" not in page
    bob.get("/mail")
    bulk(bob, "INBOX", [uids[1], uids[3]], "move", "Trips")
    _, inbox = bob.get("/mail")
    assert "Bulk 1" not in inbox and "Bulk 3" not in inbox and "Bulk 2" in inbox
    _, trips = bob.get("/mail?folder=Trips")
    assert "Bulk 1" in trips and "Bulk 3" in trips
    # search across folders finds the moved mail and names its folder; one folder does not
    _, found = bob.get("/mail?folder=INBOX&q=Bulk&scope=all")
    assert all(f"Bulk {n}" in found for n in range(1, 5)) and 'class="where"' in found
    assert "Bulk 1" not in bob.get("/mail?folder=INBOX&q=Bulk")[1]
    bulk(bob, "INBOX", [uids[2], uids[4]], "delete")
    _, trash = bob.get("/mail?folder=Trash")
    assert "Bulk 2" in trash and "Bulk 4" in trash
    _, trips = bob.get("/mail?folder=Trips")
    tuids = re.findall(r'name="uid" value="(\d+)"', trips)
    bulk(bob, "Trips", tuids, "move", "INBOX")
    bob.get("/mail/folders")
    resp, page = bob.post("/mail/folders", {"action": "delete", "old": "Trips"})
    assert resp.status == 400 and "Tick the box" in page  # unconfirmed: nothing deleted
    resp, _ = bob.post("/mail/folders", {"action": "delete", "old": "Trips", "confirm": "1"})
    assert resp.status == 303 and "Trips" not in bob.get("/mail/folders")[1]
    # a bad uid in a bulk post is a 400, not a crash
    bob.get("/mail")
    assert bulk(bob, "INBOX", ["99999999999999999999"], "read")[0].status == 400


STYLED_MAIL = (
    "From: News <news@shop.example>\r\nTo: bob@test.example\r\nSubject: Styled news\r\n"
    "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    "<html><head><style>.promo { color: #c00; font-weight: bold }</style></head><body>"
    '<table bgcolor="#eeeeee" width="600" cellpadding="8"><tr><td class="promo" '
    'style="font-size:18px; position:fixed; behavior:url(x.htc); background-image:url(https://t.example/p.gif)">'
    "Sale</td></tr></table><style>@import url(https://t.example/x.css);</style>"
    '<script>alert(1)</script><p style="color:green" onclick="alert(2)">ok</p></body></html>\r\n'
)


def test_html_mail_keeps_its_own_sanitized_styling(server):
    """Issue 10: HTML mail shown with its own styling (sheets, style attributes filtered to layout
    and colour properties, presentational attributes) while the frame's CSP still forbids script,
    @import and remote images until the reader asks for them."""
    run_wizard(server)
    drop_in_maildir(server, BOB, STYLED_MAIL)
    bob = Client(server)
    bob.login(BOB, BOB_PW)
    _, inbox = bob.get("/mail")
    _, page = bob.get(link_for(inbox, "Styled news"))
    assert "Remote images are blocked" in page  # the url() in a style counts as a remote image
    url = re.search(r'<iframe id="body"[^>]*src="([^"]+)"', page).group(1).replace("&amp;", "&")
    resp, body = bob.get(url)
    assert ".promo { color: #c00" in body and 'class="promo"' in body and 'bgcolor="#eeeeee"' in body
    assert "font-size:18px" in body and 'style="color:green"' in body
    assert "position:fixed" not in body and "behavior" not in body
    low = body.lower()
    assert "<script" not in low and "onclick" not in low
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "img-src data:;" in csp
    assert "sandbox" in csp and "allow-scripts" not in csp
