# ruff: noqa: F811  (pytest fixtures imported from support.peermta / support.testca)
"""Relaying all outbound mail through a smarthost with STARTTLS and AUTH."""

from __future__ import annotations

from support.outbound import ALICE, dsns, message, queue_list, start_gk, submit, wait_deferred
from support.peermta import peers  # noqa: F401
from support.testca import ca  # noqa: F401

PASSWORD = "correct horse battery staple"


def test_smarthost_with_auth(make_server, dns_server, peers, ca):
    cert, key = ca.issue("relay.example.net")
    relay = peers("127.0.0.5", cert=cert, key=key, auth=("gk-relay", "relay secret"))
    dns_server.add("relay.example.net", "A", "127.0.0.5")
    # far.example has no DNS at all: with a smarthost GK never looks it up
    srv = start_gk(
        make_server,
        dns_server,
        peers.port,
        ca_file=str(ca.ca_file),
        smarthost="relay.example.net",
        smarthost_port=peers.port,
        smarthost_tls="starttls",
        smarthost_username="gk-relay",
        smarthost_password="relay secret",
    )
    submit(
        srv.port("smtp.submission_port"),
        ALICE,
        PASSWORD,
        ALICE,
        ["zoe@far.example", "yann@other.example"],
        [message(1, to="zoe@far.example")],
    )
    (meta, body), *_ = relay.wait_for(1)
    assert meta["auth"] is True and meta["login"] == "gk-relay" and meta["tls"] is True
    assert sorted(meta["rcpt_tos"]) == ["yann@other.example", "zoe@far.example"]
    assert body.startswith(b"DKIM-Signature:")
    log = srv.log()
    assert "delivering by smarthost relay.example.net" in log
    assert "outbound connected to relay.example.net[127.0.0.5]" in log and "tls=verified" in log
    assert not any(name.startswith(("far.example", "other.example")) for name, _ in dns_server.queries)


def test_smarthost_with_unverified_certificate_gets_no_password(make_server, dns_server, peers, ca):
    cert, key = ca.issue("relay.example.net", self_signed=True)
    relay = peers("127.0.0.5", cert=cert, key=key, auth=("gk-relay", "relay secret"))
    srv = start_gk(
        make_server,
        dns_server,
        peers.port,
        ca_file=str(ca.ca_file),
        smarthost="127.0.0.5",
        smarthost_port=peers.port,
        smarthost_username="gk-relay",
        smarthost_password="relay secret",
    )
    submit(srv.port("smtp.submission_port"), ALICE, PASSWORD, ALICE, ["zoe@far.example"], [message(1)])
    row = wait_deferred(srv, 1, "zoe@far.example")
    reply = row["attempts"][0]["reply"]
    assert "certificate of 127.0.0.5 not verified (self-signed certificate)" in reply, reply
    assert "smarthost AUTH requires a valid one" in reply, reply
    assert relay.messages() == [] and dsns(srv) == []
    assert [r["rcpt"] for r in queue_list(srv)] == ["zoe@far.example"]
