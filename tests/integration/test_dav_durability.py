"""DAV writes acknowledged to a client survive ``kill -9``; DAV logins go through GK's accounts:
app passwords work and the shared throttle locks an account out after repeated failures."""

from __future__ import annotations

import concurrent.futures
import re

import pytest
from support.gkserver import GKServer
from test_dav_caldav import ALICE, ALICE_PW, NO_MAIL, PRINCIPAL_PROPFIND, event, request

from gk import claim
from gk.config import load
from gk.context import open_accounts

pytestmark = pytest.mark.filterwarnings("ignore:Unverified HTTPS request")


def started(srv: GKServer, app_password: str = "") -> GKServer:
    """Alice (and her app password), the wizard marked complete, then ``gk serve``."""
    srv.write_config()
    srv.add_user(ALICE, ALICE_PW)
    if app_password:
        open_accounts(load(srv.data_dir), srv.data_dir).add_app_password(ALICE, "phone", app_password)
    claim.claim(srv.data_dir, "test")
    claim.complete(srv.data_dir)
    return srv.start()


def test_acknowledged_puts_survive_kill9(make_server):
    srv = started(make_server(overrides=NO_MAIL))
    cal = f"/dav/{ALICE}/calendar/"

    def put(i: int) -> tuple[int, str]:
        status, headers, _ = request(srv, "PUT", f"{cal}k{i}.ics", event(f"k{i}", 1 + i % 28, f"durable {i}"))
        return status, headers.get("etag", "")

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        acked = dict(zip(range(40), pool.map(put, range(40)), strict=True))
    assert all(status == 201 for status, _ in acked.values()), acked
    srv.kill9()
    srv.start()
    for i, (_, etag) in acked.items():
        status, headers, body = request(srv, "GET", f"{cal}k{i}.ics")
        assert status == 200 and f"durable {i}" in body and headers["etag"] == etag, i


def test_app_password_works_and_failures_lock_the_account(make_server):
    overrides = {**NO_MAIL, "auth": {"lockout_failures_account": 3, "delay_after_failures": 10}}
    started_srv = started(make_server(overrides=overrides), app_password="phone app password 42")
    status, _, _ = request(
        started_srv, "PROPFIND", f"/dav/{ALICE}/", PRINCIPAL_PROPFIND, password="phone app password 42"
    )
    assert status == 207
    for _ in range(3):
        status, _, _ = request(started_srv, "PROPFIND", f"/dav/{ALICE}/", PRINCIPAL_PROPFIND, password="nope")
        assert status == 401
    # locked out now: even the right password is refused, as for IMAP and SMTP
    status, _, _ = request(started_srv, "PROPFIND", f"/dav/{ALICE}/", PRINCIPAL_PROPFIND)
    assert status == 401
    assert re.search(r"dav login refused \([^)]*locked out", started_srv.log())
