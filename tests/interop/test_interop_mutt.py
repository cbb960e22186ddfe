"""Mutt, non-interactively: batch send (``mutt -s ... < body``) through submission with STARTTLS
and AUTH, with the copy saved to Sent over IMAPS (APPEND); then the recipient's INBOX opened over
IMAPS under a pseudo-terminal (``script``) with keystrokes pushed by ``-e 'push ...'``: delete one
message by pattern, flag another, sync and quit. Mutt trusts only the server's certificate
(``certificate_file``) and is told not to compare host names (we connect to 127.0.0.1)."""

from __future__ import annotations

import email
import email.policy
import shlex
import subprocess

from interop_support import (
    ALICE,
    BOB,
    PASSWORD,
    cert,
    curl_send,
    flags_of,
    maildir,
    messages,
    module_server,
    need,
    run,
)

gk_server = module_server()


def muttrc(srv, tmp_path, user: str):  # type: ignore[no-untyped-def]
    rc = tmp_path / f"muttrc-{user.split('@')[0]}"
    rc.write_text(
        f"""set ssl_force_tls=yes
set imap_deflate=yes
set ssl_starttls=yes
set certificate_file="{cert(srv)}"
set ssl_verify_host=no
set smtp_url="smtp://{user}@127.0.0.1:{srv.port("smtp.submission_port")}/"
set smtp_pass="{PASSWORD}"
set imap_user="{user}"
set imap_pass="{PASSWORD}"
set folder="imaps://127.0.0.1:{srv.port("imap.tls_port")}/"
set spoolfile="=INBOX"
set record="=Sent"
set copy=yes
set from="{user}"
set realname="Mutt User"
set charset="utf-8"
set send_charset="utf-8"
set delete=yes
set move=no
set confirmappend=no
set header_cache=""
set message_cachedir=""
set timeout=30
"""
    )
    return rc


def mutt_env(tmp_path) -> dict:  # type: ignore[no-untyped-def]
    return {"HOME": str(tmp_path), "TERM": "xterm", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


def test_mutt_batch_send_saves_to_sent(gk_server, tmp_path):
    need("mutt")
    rc = muttrc(gk_server, tmp_path, ALICE)
    before = len(messages(maildir(gk_server, BOB)))
    res = run(
        ["mutt", "-n", "-F", str(rc), "-s", "mutt Grüße", "--", BOB],
        input="Hällo from mutt ✓\n".encode(),
        env=mutt_env(tmp_path),
        timeout=90,
    )
    assert res.returncode == 0, (res.stdout + res.stderr).decode(errors="replace")
    inbox = messages(maildir(gk_server, BOB))
    assert len(inbox) == before + 1
    delivered = [p for p in inbox if b"mutt" in p.read_bytes()]
    assert len(delivered) == 1 and b"with ESMTPSA" in delivered[0].read_bytes()
    sent = messages(maildir(gk_server, ALICE, "Sent"))
    assert len(sent) == 1 and "S" in flags_of(sent[0])
    for path in (delivered[0], sent[0]):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert msg["Subject"] == "mutt Grüße"
        assert msg.get_content().strip() == "Hällo from mutt ✓"  # type: ignore[attr-defined]


def test_mutt_delete_and_flag_over_imaps(gk_server, tmp_path):
    need("mutt", "script", "curl")
    for subject in ("keepme", "deleteme", "flagme"):
        eml = tmp_path / f"{subject}.eml"
        eml.write_bytes(
            f"From: {ALICE}\r\nTo: {BOB}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@example.org>\r\n\r\nx\r\n".encode()
        )
        assert curl_send(gk_server, eml, [BOB]).returncode == 0
    inbox = maildir(gk_server, BOB)
    count = len(messages(inbox))
    rc = muttrc(gk_server, tmp_path, BOB)
    keys = (
        "<delete-pattern>~s deleteme<enter><tag-pattern>~s flagme<enter><tag-prefix><flag-message><sync-mailbox><quit>"
    )
    push = 'push "' + keys + '"'  # one quoted argument: unquoted spaces would split it
    cmd = f"mutt -n -F {shlex.quote(str(rc))} -f =INBOX -e {shlex.quote(push)}"
    res = run(["script", "-qec", cmd, "/dev/null"], env=mutt_env(tmp_path), timeout=60, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, (res.stdout + res.stderr).decode(errors="replace")[-2000:]

    def with_subject(s: bytes):  # type: ignore[no-untyped-def]
        return [p for p in messages(inbox) if f"Subject: {s.decode()}\r\n".encode() in p.read_bytes()]

    assert with_subject(b"deleteme") == []
    assert len(messages(inbox)) == count - 1
    assert "F" in flags_of(with_subject(b"flagme")[0])
    assert "F" not in flags_of(with_subject(b"keepme")[0])
