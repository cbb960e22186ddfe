# ruff: noqa: F811  (pytest fixtures imported from support.peermta / support.testca)
"""Outgoing mail in the web UI against a real ``gk serve``: the wizard's "Outgoing mail" step
(saved to gk.toml, validated per field), the admin page "Mail delivery" (DNS records and their
check against a real loopback DNS server, queue retry/delete with CSRF, admin only), and a
relay host set from the web that the very next outbound message goes through."""

from __future__ import annotations

import html
import json
import os
import re
import time

from support.gkserver import free_port, gk
from support.outbound import ALICE, message, start_gk, submit, wait_queue_empty
from support.peermta import peers  # noqa: F401
from support.testca import ca  # noqa: F401
from test_web_http import ADMIN, NO_MAIL, Client, run_wizard

ALICE_PW = "correct horse battery staple"
RELAY_PW = "relay secret"


def config_show(srv) -> str:  # type: ignore[no-untyped-def]
    return gk(srv.data_dir, "config", "show").stdout


def records_on_page(page: str) -> list[dict[str, str]]:
    """The DNS record rows of /admin/mail: type, name, value and (after a check) status."""
    rows = []
    for m in re.finditer(
        r'<tr class="record" data-type="([^"]+)" data-name="([^"]+)"(?: data-status="([^"]+)")?>'
        r'.*?<pre class="mono value">(.*?)</pre>',
        page,
        re.S,
    ):
        rows.append(
            {"type": m.group(1), "name": m.group(2), "status": m.group(3) or "", "value": html.unescape(m.group(4))}
        )
    return rows


def queue_api(c: Client) -> list[dict]:
    resp, body = c.get("/api/mail/queue")
    assert resp.status == 200, body
    return json.loads(body)["messages"]


def wait_until(predicate, what: str, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_wizard_outgoing_step_validates_saves_to_gk_toml_and_hides_the_password(make_server):
    srv = make_server(overrides=NO_MAIL).start()
    c = run_wizard(srv, stop_at="outgoing")
    toml = srv.data_dir / "gk.toml"
    with toml.open("a") as f:
        f.write("# a note the owner wrote by hand\n")
    before = toml.read_text()
    resp, page = c.get("/wizard/outgoing")
    assert resp.status == 200 and 'value="direct" checked' in page
    # bad host and port: each error next to its field, nothing saved
    bad = {"mode": "relay", "host": "bad host!", "port": "70000", "tls": "starttls", "username": "", "password": ""}
    resp, page = c.post("/wizard/outgoing", bad)
    assert resp.status == 400
    assert 'id="e-host"' in page and "Not a valid host name" in page
    assert 'id="e-port"' in page and "1 to 65535" in page and 'value="70000"' in page
    resp, page = c.post("/wizard/outgoing", {**bad, "host": "", "port": "x"})
    assert resp.status == 400 and "Enter the relay&#39;s host name" in page and 'id="e-port"' in page
    # a password never travels in clear text; a user name needs a password
    relay = {"mode": "relay", "host": "relay.example.net", "port": "2525", "tls": "none", "username": "gk-relay"}
    resp, page = c.post("/wizard/outgoing", {**relay, "password": RELAY_PW})
    assert resp.status == 400 and 'id="e-tls"' in page and "encrypted connection" in page
    resp, page = c.post("/wizard/outgoing", {**relay, "tls": "implicit", "password": ""})
    assert resp.status == 400 and 'id="e-password"' in page
    assert RELAY_PW not in page
    assert toml.read_text() == before
    resp, _ = c.post("/wizard/outgoing", {**relay, "tls": "implicit", "password": RELAY_PW})
    assert resp.status == 303 and resp.headers["Location"].endswith("/wizard/chat")
    shown = config_show(srv)
    assert 'smarthost = "relay.example.net"' in shown and "smarthost_port = 2525" in shown
    assert 'smarthost_tls = "implicit"' in shown and 'smarthost_username = "gk-relay"' in shown
    assert 'smarthost_password = "********"' in shown and RELAY_PW not in shown  # config show masks it
    text = toml.read_text()
    assert f'smarthost_password = "{RELAY_PW}"' in text
    assert "# a note the owner wrote by hand" in text  # edited in place, comments kept
    assert os.stat(toml).st_mode & 0o077 == 0  # it holds a password now: owner only
    # going back to the step: the password is not shown, only that one is saved; blank keeps it
    resp, page = c.get("/wizard/outgoing")
    assert RELAY_PW not in page and 'id="password-kept"' in page and 'value="relay.example.net"' in page
    resp, _ = c.post("/wizard/outgoing", {**relay, "tls": "starttls", "port": "587", "password": ""})
    assert resp.status == 303
    shown = config_show(srv)
    assert 'smarthost_password = "********"' in shown and "smarthost_port = 587" in shown
    assert f'smarthost_password = "{RELAY_PW}"' in toml.read_text()
    c.post("/wizard/chat", {})
    c.post("/wizard/family", {})
    c.post("/wizard/ai", {"model": "none"})
    resp, page = c.get("/wizard/summary")
    assert "through relay.example.net:587 (starttls, as gk-relay)" in page and RELAY_PW not in page
    resp, _ = c.post("/wizard/summary", {})
    assert resp.headers["Location"].endswith("/dashboard")
    # the running server took the setting without a restart (the SPF record now names the relay)
    resp, page = c.get("/admin/mail")
    assert resp.status == 200 and "v=spf1 mx a:relay.example.net ~all" in page and RELAY_PW not in page
    # back to direct delivery from the admin page: the relay's credentials are dropped
    resp, page = c.post("/admin/mail/smarthost", {"mode": "direct"})
    assert resp.status == 303 and "Saved: outgoing mail now goes directly" in c.get("/admin/mail")[1]
    shown = config_show(srv)
    assert 'smarthost = ""' in shown and 'smarthost_password = ""' in shown
    assert "# a note the owner wrote by hand" in toml.read_text()


def test_admin_mail_page_lists_records_and_checks_them_against_dns(make_server, dns_server):
    srv = make_server(overrides={**NO_MAIL, "dns": dns_server.config()}).start()
    admin = run_wizard(srv)
    resp, page = admin.get("/dashboard")
    assert 'href="/admin/mail"' in page
    resp, page = admin.get("/admin/mail")
    assert resp.status == 200
    recs = {(r["type"], r["name"]): r for r in records_on_page(page)}
    mx = recs[("MX", "test.example")]
    assert mx["value"] == "10 mail.test.example."
    assert recs[("TXT", "test.example")]["value"] == "v=spf1 mx -all"
    dkim = recs[("TXT", "gk._domainkey.test.example")]
    assert dkim["value"].startswith("v=DKIM1;") and "p=" in dkim["value"]
    assert recs[("TXT", "_dmarc.test.example")]["value"].startswith("v=DMARC1;")
    # publish MX and DKIM as shown, a different SPF, no DMARC
    dns_server.add("test.example", "MX", mx["value"])
    dns_server.add("gk._domainkey.test.example", "TXT", dkim["value"])
    dns_server.add("test.example", "TXT", "v=spf1 ip4:192.0.2.1 -all")
    resp, _ = admin.post("/admin/mail/check", {}, csrf=False)
    assert resp.status == 403
    resp, page = admin.post("/admin/mail/check", {})
    assert resp.status == 200
    status = {(r["type"], r["name"]): r["status"] for r in records_on_page(page)}
    # calendars and contacts (RFC 6764): SRV and TXT for CalDAV and CardDAV, not published yet
    dav = {k: status.pop(k) for k in list(status) if "dav" in k[1]}
    assert dav == {(t, f"_{s}s._tcp.test.example"): "missing" for t in ("SRV", "TXT") for s in ("caldav", "carddav")}
    assert {k: v for k, v in status.items() if k[0] in ("MX", "TXT")} == {
        ("MX", "test.example"): "ok",
        ("TXT", "test.example"): "different",
        ("TXT", "gk._domainkey.test.example"): "ok",
        ("TXT", "_dmarc.test.example"): "missing",
    }
    # the mail host's address and the client-setup names: not published yet (no SRV records:
    # NO_MAIL turns the SMTP and IMAP listeners off, and a disabled service gets none)
    assert {k: v for k, v in status.items() if k[0] not in ("MX", "TXT")} == {
        ("A", "mail.test.example"): "missing",
        ("CNAME", "autoconfig.test.example"): "missing",
        ("CNAME", "autodiscover.test.example"): "missing",
    }
    assert "v=spf1 ip4:192.0.2.1 -all" in page  # what DNS holds instead
    assert ("_dmarc.test.example", "TXT") in dns_server.queries  # a real lookup was made
    # fixed in DNS: the next check says ok for every record
    dns_server.clear("test.example", "TXT")
    dns_server.add("test.example", "TXT", "v=spf1 mx -all")
    dns_server.add("_dmarc.test.example", "TXT", recs[("TXT", "_dmarc.test.example")]["value"])
    dns_server.add("mail.test.example", "A", "192.0.2.25")  # any address will do
    dns_server.add("autoconfig.test.example", "CNAME", "mail.test.example.")
    dns_server.add("autodiscover.test.example", "A", "192.0.2.25")  # an A record instead of the CNAME works too
    for (rtype, name), _ in dav.items():
        dns_server.add(name, rtype, recs[(rtype, name)]["value"])
    _, page = admin.post("/admin/mail/check", {})
    assert {r["status"] for r in records_on_page(page)} == {"ok"}
    # a user who is not an administrator gets 403 on the page and its actions, and no nav link
    bob = Client(srv)
    bob.login("bob@test.example", "bob password 1")
    resp, page = bob.get("/mail")
    assert 'href="/admin/mail"' not in page
    assert bob.get("/admin/mail")[0].status == 403
    assert bob.post("/admin/mail/check", {})[0].status == 403
    resp, _ = bob.post("/admin/mail/smarthost", {"mode": "relay", "host": "evil.example", "port": "25"})
    assert resp.status == 403
    assert 'smarthost = ""' in config_show(srv)
    assert Client(srv).get("/admin/mail")[0].status == 303  # anonymous: to the login page


def test_queue_retry_and_delete_buttons_need_csrf_and_act(make_server, dns_server):
    dead_port = free_port()  # nothing listens there: every attempt is refused (a temporary failure)
    dns_server.add("far.example", "MX", "10 mx.far.example.")
    dns_server.add("mx.far.example", "A", "127.0.0.9")
    queue = {"remote_smtp_port": dead_port, "retry_minutes": [30.0], "connect_timeout": 2.0}
    srv = make_server(overrides={**NO_MAIL, "dns": dns_server.config(), "queue": queue}).start()
    admin = run_wizard(srv)
    ids = [
        int(gk(srv.data_dir, "queue", "inject", "--from", ADMIN, "zoe@far.example", input=message(n)).stdout)
        for n in (1, 2)
    ]

    def attempts() -> dict[int, int]:
        return {m["id"]: m["attempts"] for m in queue_api(admin)}

    wait_until(lambda: attempts() == {ids[0]: 1, ids[1]: 1}, "the first attempts")
    resp, page = admin.get("/admin/mail")
    assert all(f'data-id="{i}"' in page for i in ids) and "zoe@far.example" in page
    assert "127.0.0.9" in page or "refused" in page.lower()  # the recorded reason is shown
    next_before = {m["id"]: m["next_attempt"] for m in queue_api(admin)}
    # without the CSRF token: refused, nothing changes
    resp, _ = admin.post(f"/admin/mail/queue/{ids[0]}/retry", {}, csrf=False)
    assert resp.status == 403
    resp, _ = admin.post(f"/admin/mail/queue/{ids[0]}/delete", {}, csrf=False)
    assert resp.status == 403
    assert {m["id"]: m["next_attempt"] for m in queue_api(admin)} == next_before
    # retry: that message is tried again at once, the other keeps its 30-minute wait
    resp, page = admin.post(f"/admin/mail/queue/{ids[0]}/retry", {})
    assert resp.status == 303 and "will be tried again now" in admin.get("/admin/mail")[1]
    wait_until(lambda: attempts().get(ids[0]) == 2, "the retried attempt")
    assert attempts()[ids[1]] == 1
    # delete: gone from the queue (and its spool file), the other stays
    resp, page = admin.post(f"/admin/mail/queue/{ids[1]}/delete", {})
    assert resp.status == 400 and ids[1] in {m["id"] for m in queue_api(admin)}  # not confirmed: kept
    resp, page = admin.post(f"/admin/mail/queue/{ids[1]}/delete", {"confirm": "1"})
    assert resp.status == 303 and f"Message {ids[1]} deleted" in admin.get("/admin/mail")[1]
    assert set(attempts()) == {ids[0]}
    assert "zoe@far.example" in gk(srv.data_dir, "queue", "list").stdout
    assert str(ids[1]) not in [line.split("\t")[0] for line in gk(srv.data_dir, "queue", "list").stdout.splitlines()]
    resp, _ = admin.post(f"/admin/mail/queue/{ids[1]}/delete", {"confirm": "1"})
    assert resp.status == 404
    resp, _ = admin.post(f"/admin/mail/queue/{ids[1]}/retry", {})
    assert resp.status == 404
    # a non-admin cannot touch the queue
    bob = Client(srv)
    bob.login("bob@test.example", "bob password 1")
    bob.get("/mail")
    assert bob.post(f"/admin/mail/queue/{ids[0]}/delete", {})[0].status == 403
    assert set(attempts()) == {ids[0]}
    # a new route set from the web: the waiting message is tried over it at once (here: refused too)
    admin.get("/admin/mail")
    relay = {"mode": "relay", "host": "127.0.0.9", "port": str(dead_port), "tls": "none", "username": ""}
    resp, page = admin.post("/admin/mail/smarthost", relay)
    assert resp.status == 303, page
    wait_until(lambda: attempts().get(ids[0]) == 3, "the attempt over the new route")
    (row,) = queue_api(admin)
    assert "smarthost" in row["last_error"], row


def test_relay_set_from_the_web_carries_the_next_message(make_server, dns_server, peers, ca):
    cert, key = ca.issue("relay.example.net")
    relay = peers("127.0.0.2", cert=cert, key=key, auth=("gk-relay", RELAY_PW))
    mx_peer = peers("127.0.0.3")
    dns_server.add("relay.example.net", "A", "127.0.0.2")
    dns_server.add("far.example", "MX", "10 mx.far.example.")
    dns_server.add("mx.far.example", "A", "127.0.0.3")
    srv = start_gk(make_server, dns_server, peers.port, ca_file=str(ca.ca_file))
    admin = run_wizard(srv)  # outgoing mail: direct
    submission = srv.port("smtp.submission_port")
    submit(submission, ALICE, ALICE_PW, ALICE, ["zoe@far.example"], [message(1, to="zoe@far.example")])
    (meta, _), *_ = mx_peer.wait_for(1)
    assert meta["rcpt_tos"] == ["zoe@far.example"]
    wait_queue_empty(srv)  # its worker is done with the MX session
    # the admin switches to the relay; no restart
    admin.get("/admin/mail")
    form = {"mode": "relay", "host": "relay.example.net", "port": str(peers.port), "tls": "starttls"}
    resp, page = admin.post("/admin/mail/smarthost", {**form, "username": "gk-relay", "password": RELAY_PW})
    assert resp.status == 303, page
    page = admin.get("/admin/mail")[1]
    assert f"now goes through relay.example.net:{peers.port} (starttls, as gk-relay)" in page
    assert RELAY_PW not in page
    assert 'smarthost = "relay.example.net"' in config_show(srv)
    submit(submission, ALICE, ALICE_PW, ALICE, ["yann@far.example"], [message(2, to="yann@far.example")])
    (meta, body), *_ = relay.wait_for(1)
    assert meta["rcpt_tos"] == ["yann@far.example"]
    assert meta["auth"] is True and meta["login"] == "gk-relay" and meta["tls"] is True
    assert body.startswith(b"DKIM-Signature:")
    assert len(mx_peer.messages()) == 1  # the second message did not go by MX
    assert "outgoing mail now goes through relay.example.net" in srv.log()


def test_gk_toml_edit_keeps_comments_and_other_keys_or_rewrites_what_it_cannot_edit(tmp_path):
    import tomllib

    from gk.config import ConfigError
    from gk.web.smarthost import new_config_text, write_config

    values = {"smarthost": "relay.example.net", "smarthost_port": 465, "smarthost_password": 'a "quoted" pw'}
    text = (
        '# my notes\n[server]\nbind = "127.0.0.1"  # local only\n\n[queue]\n# smarthost = ""\n'
        'smarthost = "old.example"\nretry_minutes = [\n  1.0,\n  2.0,\n]\n[http]\nport = 8081\n'
    )
    out = new_config_text(text, values)
    assert "# my notes" in out and "# local only" in out and '# smarthost = ""' in out
    parsed = tomllib.loads(out)
    assert parsed["queue"] == {**values, "retry_minutes": [1.0, 2.0]}
    assert parsed["http"] == {"port": 8081} and parsed["server"] == {"bind": "127.0.0.1"}
    # no [queue] table yet: one is added
    assert tomllib.loads(new_config_text('[server]\nbind = "x"\n', values))["queue"] == values
    # dotted keys cannot be line-edited: the file is rewritten with the same values (comments lost)
    out = new_config_text('# gone\nqueue.smarthost = "old"\nqueue.expire_hours = 2.0\n', values)
    assert tomllib.loads(out)["queue"] == {**values, "expire_hours": 2.0}
    # a file GK's loader would refuse is left alone
    bad = '[queue]\nsmarthost_tls = "sometimes"\n'
    (tmp_path / "gk.toml").write_text(bad)
    try:
        write_config(tmp_path, values)
    except ConfigError as exc:
        assert "queue.smarthost_tls" in str(exc)
    else:
        raise AssertionError("an invalid gk.toml was accepted")
    assert (tmp_path / "gk.toml").read_text() == bad
    # a good one is replaced atomically, owner-only once it holds a password
    (tmp_path / "gk.toml").write_text("[server]\n")
    cfg = write_config(tmp_path, values)
    assert cfg.queue.smarthost == "relay.example.net" and cfg.queue.smarthost_port == 465
    assert (tmp_path / "gk.toml").stat().st_mode & 0o077 == 0
    assert not list(tmp_path.glob("*.tmp"))
