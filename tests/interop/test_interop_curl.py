"""curl (Debian's, libcurl's own SMTP and IMAP code) against a running ``gk serve``: submission with
STARTTLS on 587 and implicit TLS on 465 (8-bit UTF-8 header and body), and IMAP over TLS: LIST,
a message by UID, a SEARCH as a custom request, a header section by UID."""

from __future__ import annotations

import re

from interop_support import (
    ALICE,
    BOB,
    PASSWORD,
    curl,
    curl_send,
    flags_of,
    maildir,
    messages,
    module_server,
    need,
    strip_trace,
)

gk_server = module_server()

UTF8_MESSAGE = (
    "From: Alice <alice@example.org>\r\n"
    "To: Bob <bob@example.org>\r\n"
    "Subject: Grüße aus Köln ✓ {tag}\r\n"
    "Message-ID: <{tag}@example.org>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Hällo wörld, 日本語 {tag}\r\n"
    ".leading dot line stays\r\n"
).encode()


def one_message(srv, user: str, tag: bytes):  # type: ignore[no-untyped-def]
    found = [p for p in messages(maildir(srv, user)) if tag in p.read_bytes()]
    assert len(found) == 1, f"expected exactly one message with {tag!r} in {user}'s INBOX, found {len(found)}"
    return found[0]


def submit_and_check(srv, tmp_path, tag: str, implicit_tls: bool) -> None:  # type: ignore[no-untyped-def]
    need("curl")
    data = UTF8_MESSAGE.replace(b"{tag}", tag.encode())
    eml = tmp_path / f"{tag}.eml"
    eml.write_bytes(data)
    res = curl_send(srv, eml, [BOB], implicit_tls=implicit_tls)
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    delivered = one_message(srv, BOB, tag.encode()).read_bytes()
    assert strip_trace(delivered) == data  # 8-bit bytes unchanged, dot-unstuffed correctly
    assert b"with ESMTPSA" in delivered


def test_curl_submission_starttls_8bit(gk_server, tmp_path):
    submit_and_check(gk_server, tmp_path, "starttls587", implicit_tls=False)


def test_curl_submissions_implicit_tls_8bit(gk_server, tmp_path):
    submit_and_check(gk_server, tmp_path, "implicit465", implicit_tls=True)


def test_curl_submission_wrong_password_refused(gk_server, tmp_path):
    need("curl")
    eml = tmp_path / "x.eml"
    eml.write_bytes(UTF8_MESSAGE.replace(b"{tag}", b"badpw"))
    before = len(messages(maildir(gk_server, BOB)))
    res = curl(
        gk_server, "smtp", "smtp.submission_port", "", "--ssl-reqd", "--user", f"{ALICE}:wrong password",
        "--mail-from", ALICE, "--mail-rcpt", BOB, "--upload-file", str(eml),
    )  # fmt: skip
    assert res.returncode == 67, (res.returncode, res.stderr)  # CURLE_LOGIN_DENIED
    assert len(messages(maildir(gk_server, BOB))) == before
    # and the server keeps serving
    submit_and_check(gk_server, tmp_path, "afterbadpw", implicit_tls=False)


def imap(srv, path: str, *args: str, user: str = BOB, implicit: bool = True):  # type: ignore[no-untyped-def]
    scheme, port_key = ("imaps", "imap.tls_port") if implicit else ("imap", "imap.port")
    tls = [] if implicit else ["--ssl-reqd"]
    res = curl(srv, scheme, port_key, path, *tls, "--user", f"{user}:{PASSWORD}", *args)
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    return res.stdout


def test_curl_imap_list_search_fetch(gk_server, tmp_path):
    need("curl")
    submit_and_check(gk_server, tmp_path, "imapfetch", implicit_tls=True)
    listing = imap(gk_server, "").decode()
    names = re.findall(r'^\* LIST \([^)]*\) "/" "?([^"\r\n]+)"?\r?$', listing, re.M)
    assert {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"} <= set(names), listing

    found = imap(gk_server, "INBOX", "--request", "UID SEARCH SUBJECT imapfetch").decode()
    uids = re.findall(r"^\* SEARCH((?: \d+)*)\r?$", found, re.M)
    assert len(uids) == 1 and len(uids[0].split()) == 1, found
    uid = uids[0].split()[0]

    assert "S" not in flags_of(one_message(gk_server, BOB, b"imapfetch"))
    body = imap(gk_server, f"INBOX;UID={uid}")
    assert body == one_message(gk_server, BOB, b"imapfetch").read_bytes()

    header = imap(gk_server, f"INBOX;UID={uid};SECTION=HEADER.FIELDS%20(SUBJECT)", implicit=False)
    assert header.strip() == "Subject: Grüße aus Köln ✓ imapfetch".encode()
    # curl fetched BODY[] (not PEEK): the message is \Seen now, in the Maildir file name
    assert "S" in flags_of(one_message(gk_server, BOB, b"imapfetch"))


def test_curl_imap_examine_and_login_auth(gk_server):
    need("curl")
    out = imap(gk_server, "INBOX", "--request", "EXAMINE INBOX").decode()
    assert re.search(r"^\* \d+ EXISTS", out, re.M) and "UIDVALIDITY" in out, out
    for mech in ("PLAIN", "LOGIN"):
        out = imap(gk_server, "", "--login-options", f"AUTH={mech}").decode()
        assert '"INBOX"' in out, mech
    for mech in ("PLAIN", "LOGIN"):
        res = curl(
            gk_server,
            "imaps",
            "imap.tls_port",
            "",
            "--user",
            f"{BOB}:wrong password",
            "--login-options",
            f"AUTH={mech}",
        )
        assert res.returncode == 67, (mech, res.returncode, res.stderr)  # CURLE_LOGIN_DENIED
