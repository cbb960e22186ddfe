"""``gk setup --answers FILE``: the first boot without a browser, then a real ``gk serve`` that
is set up (no wizard, the admin signs in on the web, a user reads mail over IMAP)."""

from __future__ import annotations

import imaplib
import ssl
import tomllib

from support.gkserver import gk
from test_web_http import Client

ANSWERS = """
[admin]
address = "owner@family.example"
password = "owner passphrase 1"
[host]
timezone = "Europe/Paris"
[outgoing]
mode = "relay"
host = "smtp.isp.example"
port = "587"
tls = "starttls"
username = "owner"
password = "relay secret"
[[users]]
address = "kid@family.example"
password = "kid passphrase 1"
"""


def test_answers_file_sets_the_box_up_and_closes_the_wizard(make_server):
    srv = make_server()
    srv.write_config()
    bad = gk(srv.data_dir, "setup", "--answers", "-", input=ANSWERS.replace("Europe/Paris", "Mars/Olympus")
             .replace("kid passphrase 1", "short"), check=False)  # fmt: skip
    assert bad.returncode == 2
    assert "[host] timezone: 'Mars/Olympus' is not a time zone" in bad.stderr
    assert "[[users]] #1 password: password must have at least 8 characters" in bad.stderr
    assert gk(srv.data_dir, "claim", "status").stdout.find("unclaimed") >= 0  # nothing was written
    done = gk(srv.data_dir, "setup", "--answers", "-", input=ANSWERS)
    assert "administrator owner@family.example" in done.stdout and "the wizard is closed" in done.stdout
    cfg = tomllib.loads((srv.data_dir / "gk.toml").read_text())
    assert cfg["server"]["hostname"] == "mail.family.example"  # from the admin's domain
    assert cfg["queue"]["smarthost"] == "smtp.isp.example" and cfg["queue"]["smarthost_username"] == "owner"
    again = gk(srv.data_dir, "setup", "--answers", "-", input=ANSWERS, check=False)
    assert again.returncode == 1 and "already set up" in again.stderr
    srv.start()
    assert Client(srv).get("/")[0].status == 301  # https_redirect defaults to true: to HTTPS
    c = Client(srv, https=True)
    resp, _ = c.get("/")
    assert resp.status in (302, 303) and "/wizard" not in resp.headers["Location"]
    assert c.get("/wizard/claim")[0].status in (302, 303, 403, 404)
    c.login("owner@family.example", "owner passphrase 1")
    resp, page = c.get("/dashboard")
    assert resp.status == 200
    tls = ssl.create_default_context()
    tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
    with imaplib.IMAP4_SSL("127.0.0.1", srv.port("imap.tls_port"), ssl_context=tls) as m:
        assert m.login("kid@family.example", "kid passphrase 1")[0] == "OK"
