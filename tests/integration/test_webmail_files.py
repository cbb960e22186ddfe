"""The webmail closes every message file it opens (it used to leave them to the garbage
collector: one or two per message shown). Measured on a real ``gk serve``: the file descriptors
of the server pointing into a Maildir after pages were served, the process's descriptor count
over repeated views, and Python's ``ResourceWarning`` for files dropped unclosed."""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

from test_web_http import NO_MAIL, Client, run_wizard
from test_web_mail import BOB, BOB_PW, drop_in_maildir, message_links

N = 12


def _mail(i: int) -> str:
    if i % 2:
        return (
            f"From: Ann <ann@example.com>\r\nTo: {BOB}\r\nSubject: html {i}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/html; charset=utf-8\r\n\r\n"
            f'<p>Hello <b>{i}</b></p><img src="https://img.example/{i}.png">\r\n'
        )
    data = base64.encodebytes(bytes(range(256)) * 8).decode().replace("\n", "\r\n")
    return (
        f"From: Ann <ann@example.com>\r\nTo: {BOB}\r\nSubject: plain {i}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="B"\r\n\r\n'
        f"--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nText {i}\r\n"
        '--B\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="a.bin"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{data}\r\n--B--\r\n"
    )


def _fds(pid: int) -> list[str]:
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:  # closed meanwhile
            pass
    return out


def _message_files(pid: int, mail_root: Path) -> list[str]:
    return [t for t in _fds(pid) if t.startswith(str(mail_root)) and "/Maildir/" in t and "/tmp/" not in t]


def _view_all(client: Client, links: list[str]) -> None:
    for link in links:
        _, page = client.get(link)
        for m in re.finditer(r'(?:src|href)="(/mail/(?:body|part)\?[^"]+)"', page):
            resp, _ = client.get(m.group(1).replace("&amp;", "&"))
            assert resp.status == 200
        query = link.split("?", 1)[1]
        resp, _ = client.get(f"/mail/compose?mode=reply&{query}")
        assert resp.status == 200


def test_viewing_messages_leaves_no_message_file_open(make_server, monkeypatch):
    monkeypatch.setenv("PYTHONWARNINGS", "always::ResourceWarning")  # inherited by gk serve
    server = make_server(overrides=NO_MAIL).start()
    run_wizard(server)
    for i in range(N):
        drop_in_maildir(server, BOB, _mail(i))
    bob = Client(server)
    bob.login(BOB, BOB_PW)
    _, inbox = bob.get("/mail")
    links = message_links(inbox)
    assert len(links) == N
    pid = server.proc.pid
    mail_root = (server.data_dir / "mail").resolve()
    _view_all(bob, links)  # warm-up: the index opened, nh3 and templates loaded
    before = len(_fds(pid))
    for _ in range(3):
        _view_all(bob, links)
        bob.get("/mail")  # the list's previews read every message too
    assert _message_files(pid, mail_root) == []
    after = len(_fds(pid))
    assert after <= before + 2, f"{after - before} more descriptors after {3 * N} more views"
    unclosed = [ln for ln in server.log().splitlines() if "ResourceWarning" in ln and "Maildir" in ln]
    assert unclosed == [], unclosed[:3]
