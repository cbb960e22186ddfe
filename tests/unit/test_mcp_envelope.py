"""gk.mcp.protocol: which protocol a request speaks, the 2026-07-28 envelope's errors (code and
HTTP status), result decoration, and the signed requestState of multi-round requests."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gk.mcp import protocol
from gk.mcp.jsonrpc import RPCError

V = protocol.MODERN
META = {protocol.META_VERSION: V, protocol.META_CAPABILITIES: {"sampling": {}}}


def env(params=None, version=V, method="tools/list", header_method="tools/list", name=None):
    return protocol.envelope(method, params if params is not None else {"_meta": META}, 1, version, header_method, name)


def test_legacy_requests_need_no_meta():
    e = protocol.envelope("tools/list", {}, 1, None, None, None)
    assert not e.modern and e.version == "2025-11-25"
    e = protocol.envelope("tools/list", {}, 1, "2025-06-18", None, None)
    assert not e.modern and e.version == "2025-06-18"


def test_modern_request_carries_capabilities_log_level_and_progress():
    meta = {**META, protocol.META_LOG_LEVEL: "debug", "progressToken": "p1"}
    e = env({"_meta": meta})
    assert e.modern and e.capabilities == {"sampling": {}} and e.log_level == "debug" and e.progress_token == "p1"
    assert env({"_meta": {**META, protocol.META_LOG_LEVEL: "loud"}}).log_level is None


@pytest.mark.parametrize(
    "params,version,header_method,name,code",
    [
        ({}, V, "tools/list", None, -32602),
        ({"_meta": {protocol.META_VERSION: V}}, V, "tools/list", None, -32602),
        ({"_meta": META}, None, "tools/list", None, -32020),
        ({"_meta": META}, "2025-11-25", "tools/list", None, -32020),
        ({"_meta": META}, V, None, None, -32020),
        ({"_meta": META}, V, "prompts/list", None, -32020),
        ({"_meta": {**META, protocol.META_VERSION: "2030-01-01"}}, "2030-01-01", "tools/list", None, -32022),
        ({"_meta": {**META, protocol.META_CAPABILITIES: []}}, V, "tools/list", None, -32602),
    ],
)
def test_envelope_errors_are_400_with_the_specs_code(params, version, header_method, name, code):
    with pytest.raises(RPCError) as info:
        env(params, version, header_method=header_method, name=name)
    assert info.value.code == code and info.value.status == 400 and info.value.id == 1
    if code == -32022:
        assert info.value.data == {"supported": list(protocol.SUPPORTED), "requested": "2030-01-01"}


def test_mcp_name_is_required_and_must_match_in_2026():
    params = {"_meta": META, "name": "mail_read"}
    assert env(params, method="tools/call", header_method="tools/call", name=" mail_read ").modern
    for name in (None, "mail_search", "MAIL_READ"):
        with pytest.raises(RPCError) as info:
            env(params, method="tools/call", header_method="tools/call", name=name)
        assert info.value.code == -32020
    # a 2025 client that sends the header anyway is held to it too
    with pytest.raises(RPCError):
        protocol.envelope("tools/call", {"name": "a"}, 1, None, "tools/call", "b")


def test_missing_client_capability():
    e = env()
    protocol.require_capabilities(e, {"sampling": {}}, 1)
    with pytest.raises(RPCError) as info:
        protocol.require_capabilities(e, {"elicitation": {}}, 1)
    assert info.value.code == -32021 and info.value.status == 400
    assert info.value.data == {"requiredCapabilities": {"elicitation": {}}}
    protocol.require_capabilities(protocol.envelope("tools/call", {}, 1, None, None, None), {"x": {}}, 1)


def test_finish_decorates_only_modern_results():
    legacy = protocol.envelope("tools/list", {}, 1, None, None, None)
    assert protocol.finish(legacy, "tools/list", {"tools": []}) == {"tools": []}
    assert protocol.finish(env(), "tools/list", {"tools": []}) == {
        "tools": [],
        "resultType": "complete",
        "ttlMs": 0,
        "cacheScope": "private",
    }
    assert protocol.finish(env(), "tools/call", {"resultType": "input_required"})["resultType"] == "input_required"


def test_input_responses_must_be_objects():
    assert protocol.input_responses({}, 1) == {}
    assert protocol.input_responses({"inputResponses": {"a": {"action": "accept"}}}, 1) == {"a": {"action": "accept"}}
    for bad in (None, [], {"a": 1}, "x"):
        with pytest.raises(RPCError) as info:
            protocol.input_responses({"inputResponses": bad}, 1)
        assert info.value.code == -32602


def test_request_state_round_trips_and_refuses_forgery():
    signer = protocol.StateSigner()
    token = signer.sign({"round": 2, "name": "Ada"})
    assert signer.open({"requestState": token}, 1) == {"round": 2, "name": "Ada"}
    assert signer.open({}, 1) is None
    body, mac = token.split(".")
    forged = protocol.StateSigner().sign({"round": 3})
    for bad in (token + "x", body + ".00", "x" + token, forged, "nodot", 5, body):
        with pytest.raises(RPCError) as info:
            signer.open({"requestState": bad}, 1)
        assert info.value.code == -32602


@given(st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=10)), max_size=4))
def test_any_state_round_trips(state):
    signer = protocol.StateSigner(b"k" * 32)
    assert signer.open({"requestState": signer.sign(state)}, 1) == state
