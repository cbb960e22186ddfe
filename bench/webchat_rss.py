"""Memory of an open web chat page: RSS of ``gk serve`` growing with N live-timeline WebSockets
(``/chat/ws``, each resumed as htmx's ws extension does on open), against the named peer
measured in the same run on the same server: N IRC-over-WebSocket sessions (``/chat/irc``,
SASL-registered and joined to the same room), the transport stock web IRC clients use.

Target (issue 12): <= 50 KB per idle connection. RSS is read from /proc/PID/status after the
connections settle. Run: ``.venv/bin/python -m bench webchat_rss`` (BENCH_WEBCHAT_CLIENTS to scale).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

from bench.chat_rss import GK, PASSWORD, SETTLE, USER

CLIENTS = int(os.environ.get("BENCH_WEBCHAT_CLIENTS", "200"))


def login(port: int) -> str:
    """A web session cookie for the bench user (the login form, its CSRF token)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/login")
    resp = conn.getresponse()
    page = resp.read().decode()
    cookie = resp.headers["Set-Cookie"].split(";", 1)[0]
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    body = urllib.parse.urlencode({"address": USER, "password": PASSWORD, "csrf": csrf})
    conn.request("POST", "/login", body, {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
    resp = conn.getresponse()
    resp.read()
    if resp.status != 303:
        raise RuntimeError(f"login failed: {resp.status}")
    return next(v.split(";", 1)[0] for k, v in resp.getheaders() if k.lower() == "set-cookie" and "session" in v)


def web_chat(port: int, cookie: str):  # type: ignore[no-untyped-def]
    import websocket

    ws = websocket.create_connection(
        f"ws://127.0.0.1:{port}/chat/ws?to=%23general", timeout=60, header=[f"Cookie: {cookie}"]
    )
    ws.send(json.dumps({"kind": "resume", "after": ""}))
    ws.recv()  # the replayed timeline, then the live mark
    return ws


def irc_ws(port: int):  # type: ignore[no-untyped-def]
    import websocket

    ws = websocket.create_connection(
        f"ws://127.0.0.1:{port}/chat/irc", timeout=60, subprotocols=["text.ircv3.net"], suppress_origin=True
    )
    token = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    for line in ("CAP REQ :sasl", "NICK b", "USER b 0 * :b", "AUTHENTICATE PLAIN", f"AUTHENTICATE {token}", "CAP END"):
        ws.send(line)
    while " 366 " not in ws.recv():
        pass
    return ws


def measure(root: Path, name: str, connect) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(idle RSS, RSS with CLIENTS connections) of a fresh server, in KB."""
    from gk import claim

    gk = GK(root / name, chat=True)
    try:
        claim.claim(gk.data, "bench")
        claim.complete(gk.data)
        port = int(re.search(r"port = (\d+)", (gk.data / "gk.toml").read_text()).group(1))  # type: ignore[union-attr]
        cookie = login(port)
        connect(port, cookie).close()  # first use: the default room joined, templates compiled
        time.sleep(SETTLE)
        idle = gk.rss()
        conns = [connect(port, cookie) for _ in range(CLIENTS)]
        time.sleep(SETTLE)
        busy = gk.rss()
        for c in conns:
            c.close()
        return idle, busy
    finally:
        gk.stop()


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="gk-bench-webchat-"))
    try:
        # each on its own fresh server: memory freed by one kind is not reused by the other
        irc_idle, irc_busy = measure(root, "irc", lambda port, _cookie: irc_ws(port))
        web_idle, web_busy = measure(root, "web", web_chat)
        irc_per = (irc_busy - irc_idle) / CLIENTS
        web_per = (web_busy - web_idle) / CLIENTS
        print(f"idle gk serve: {irc_idle / 1024:.1f} MB and {web_idle / 1024:.1f} MB")
        print(
            f"{CLIENTS} IRC-over-WebSocket sessions (peer): +{(irc_busy - irc_idle) / 1024:.1f} MB, {irc_per:.1f} KB each"
        )
        print(
            f"{CLIENTS} open web chat pages (live WebSocket): +{(web_busy - web_idle) / 1024:.1f} MB,"
            f" {web_per:.1f} KB each (target <= 50 KB); ratio web chat / IRC-over-WebSocket"
            f" {web_per / max(irc_per, 0.1):.2f}"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
