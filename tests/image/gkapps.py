"""The box's other daily uses, driven in the booted image as a phone or a desktop would through
QEMU's port forwards: chat over IRC with TLS and SASL (port 6697, through the guest's
firewall), an event over CalDAV (the ``caldav`` library, HTTPS), and the MCP endpoint's tool
list with a token made in the guest by ``gk token add`` (plain JSON-RPC over HTTP)."""

from __future__ import annotations

import datetime as dt
import json
import re
import urllib.request
import warnings

from gkqemu import Guest
from support.irc import IRC, connect

EVENT = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//GK//image test//EN
BEGIN:VEVENT
UID:{uid}
DTSTAMP:20260101T000000Z
DTSTART:20270315T090000Z
DTEND:20270315T100000Z
SUMMARY:{summary}
END:VEVENT
END:VCALENDAR
"""


# -- chat -----------------------------------------------------------------------------------


def irc(guest: Guest, user: str, password: str, caps: str = "") -> IRC:
    """A registered IRC client of ``user`` on the guest's port 6697 (TLS, SASL PLAIN)."""
    return connect(guest.ports["irc"], user, caps, password)


def irc_post(guest: Guest, user: str, password: str, room: str, text: str) -> str:
    """Post ``text`` to ``#room`` (joined first); returns the server's msgid from the echo."""
    c = irc(guest, user, password, "echo-message message-tags server-time")
    try:
        c.send(f"JOIN #{room}")
        c.expect(rf" 366 \S+ #{room} ", 120)
        c.send(f"PRIVMSG #{room} :{text}")
        echo = c.expect(rf"PRIVMSG #{room} :{re.escape(text)}$", 120)
        m = re.search(r"msgid=([^; ]+)", echo)
        assert m, f"no msgid on the echo: {echo}"
        return m.group(1)
    finally:
        c.close()


def irc_history(guest: Guest, user: str, password: str, room: str) -> list[str]:
    """The room's latest messages (CHATHISTORY LATEST, as Goguma asks on connect)."""
    c = irc(guest, user, password, "batch server-time message-tags draft/chathistory")
    try:
        c.expect(rf" 366 \S+ #{room} ", 120)  # a member: joined at login
        c.send(f"CHATHISTORY LATEST #{room} * 50")
        lines = c.until(r"^:\S+ BATCH -", 120)
        return [ln for ln in lines if f" PRIVMSG #{room} :" in ln]
    finally:
        c.close()


# -- calendars ------------------------------------------------------------------------------


def _calendar(guest: Guest, user: str, password: str):  # type: ignore[no-untyped-def]
    import caldav

    client = caldav.DAVClient(
        url=f"https://127.0.0.1:{guest.ports['https']}/dav/",
        username=user,
        password=password,
        ssl_verify_cert=False,  # the box's own self-signed certificate
        enable_rfc6764=False,
        timeout=120,
    )
    principal = client.principal()
    calendars = principal.calendars()
    return calendars[0] if calendars else principal.make_calendar(name="Calendar")


def caldav_create(guest: Guest, user: str, password: str, uid: str, summary: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _calendar(guest, user, password).save_event(EVENT.format(uid=uid, summary=summary))


def caldav_find(guest: Guest, user: str, password: str) -> list[str]:
    """Summaries of the events of 15 March 2027 (a time-range REPORT)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = _calendar(guest, user, password).search(
            start=dt.datetime(2027, 3, 15), end=dt.datetime(2027, 3, 16), event=True, expand=False
        )
        return [str(ev.icalendar_component.get("summary")) for ev in found]


# -- MCP ------------------------------------------------------------------------------------


def guest_token(guest: Guest, address: str) -> str:
    """``gk token add ADDRESS --scope mcp`` run in the guest as the service user (the data dir's
    owner: a root-owned SQLite side file would lock gk.service out of its own database)."""
    rc, out = guest.sh(
        f"runuser -u gk -- env GK_DATA_DIR=/var/lib/gk /opt/gk/bin/gk token add {address} --scope mcp --label image-test"
    )
    m = re.search(r"^(gk-\S+)$", out, re.M)
    assert rc == 0 and m, f"gk token add in the guest: rc={rc} {out}"
    return m.group(1)


def _rpc(url: str, token: str, method: str, params: dict[str, object], ident: int) -> dict[str, object]:
    req = urllib.request.Request(
        url,
        data=json.dumps({"jsonrpc": "2.0", "id": ident, "method": method, "params": params}).encode(),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2025-11-25",
            "Mcp-Method": method,
        },
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=120) as resp:
        body = resp.read().decode()
        if resp.headers.get_content_type() == "text/event-stream":  # one message as SSE
            body = "\n".join(ln[5:].strip() for ln in body.splitlines() if ln.startswith("data:"))
    doc: dict[str, object] = json.loads(body)
    assert "result" in doc, f"{method}: {doc}"
    return doc


def mcp_tools(guest: Guest, token: str) -> list[str]:
    """Names of the tools ``tools/list`` gives the token's user over ``/mcp``."""
    url = f"http://127.0.0.1:{guest.ports['http']}/mcp"
    init = {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "gk-image-test", "version": "1"},
    }
    _rpc(url, token, "initialize", init, 1)
    result = _rpc(url, token, "tools/list", {}, 2)["result"]
    assert isinstance(result, dict)
    return [t["name"] for t in result["tools"]]
