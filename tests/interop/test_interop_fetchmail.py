"""fetchmail over IMAP with implicit TLS, trusting only the server's certificate, in keep mode with
an MDA that appends to a file: it must fetch every unseen message whole (bytes equal to GK's
Maildir files) and leave them \\Seen on the server; a second poll fetches nothing."""

from __future__ import annotations

import os
import re

from interop_support import (
    BOB,
    HOSTNAME,
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


def message(i: int) -> bytes:
    return (
        f"From: Alice <alice@example.org>\r\nTo: {BOB}\r\nSubject: fetch {i} Grüße\r\n"
        f"Message-ID: <fetch{i}@example.org>\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        f"body {i} wörld\r\n" + "a line of text to make it longer\r\n" * (i * 200)
    ).encode()


def without_fetchmail_trace(data: bytes) -> bytes:
    """Drop the one Received field fetchmail adds (``by HOST with IMAP (fetchmail-6.x)``)."""
    return re.sub(
        rb"^Received: from [^\n]*\n(?:[ \t][^\n]*\n)*?[ \t][^\n]*\(fetchmail-[^\n]*\n(?:[ \t][^\n]*\n)*",
        b"",
        data,
        count=1,
        flags=re.M,
    )


def fetchmail(srv, tmp_path):  # type: ignore[no-untyped-def]
    out = tmp_path / "fetched"
    mda = tmp_path / "mda.sh"
    # one file per message, so each can be compared with the server's copy
    mda.write_text(f'#!/bin/sh\ncat > "{out}/$(date +%s%N).eml"\n')
    mda.chmod(0o755)
    out.mkdir(exist_ok=True)
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        f"""set no syslog
poll 127.0.0.1 service {srv.port("imap.tls_port")} protocol IMAP timeout 60
  user "{BOB}" there with password "{PASSWORD}" is "nobody" here
  ssl sslcertck sslcertfile "{cert(srv)}" sslcommonname "{HOSTNAME}"
  keep
  mda "{mda}"
"""
    )
    rc.chmod(0o600)
    res = run(
        ["fetchmail", "-f", str(rc), "--nosyslog", "--nodetach", "-v"],
        env={"HOME": str(tmp_path), "FETCHMAILHOME": str(tmp_path)},
        timeout=120,
    )
    return res, out


def test_fetchmail_keep_marks_seen(gk_server, tmp_path):
    need("fetchmail", "curl")
    srv = gk_server
    sent = [message(i) for i in range(4)]
    for i, data in enumerate(sent):
        eml = tmp_path / f"m{i}.eml"
        eml.write_bytes(data)
        assert curl_send(srv, eml, [BOB]).returncode == 0
    inbox = maildir(srv, BOB)
    assert len(messages(inbox)) == 4 and not any("S" in flags_of(p) for p in messages(inbox))

    res, out = fetchmail(srv, tmp_path)
    log = (res.stdout + res.stderr).decode(errors="replace")
    assert res.returncode == 0, log  # 0: mail was retrieved
    fetched = sorted(without_fetchmail_trace(p.read_bytes()) for p in out.iterdir())
    on_server = sorted(p.read_bytes() for p in messages(inbox))
    assert len(fetched) == 4
    # fetchmail hands the MDA the message with LF line ends
    assert fetched == sorted(d.replace(b"\r\n", b"\n") for d in on_server)
    assert len(messages(inbox)) == 4  # keep: nothing deleted
    assert all("S" in flags_of(p) for p in messages(inbox)), [p.name for p in messages(inbox)]

    for p in out.iterdir():
        os.unlink(p)
    res, out = fetchmail(srv, tmp_path)
    assert res.returncode == 1, (res.stdout + res.stderr).decode(errors="replace")  # 1: no mail
    assert not list(out.iterdir())
