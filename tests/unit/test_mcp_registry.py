"""The MCP tool registry, schema checks and JSON-RPC parsing, in-process (gk.mcp)."""

from __future__ import annotations

import pytest

from gk.mcp import jsonrpc
from gk.mcp.http import origin_allowed
from gk.mcp.registry import NOT_FOUND, InvalidArguments, Registry, Tool, ToolFailed, UnknownTool, error_kind, validate

SCHEMA = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "minLength": 1, "maxLength": 5},
        "n": {"type": "integer", "minimum": 1, "maximum": 10},
        "flag": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["text"],
    "additionalProperties": False,
}


def echo(address: str, args: dict) -> dict:
    if args["text"] == "fail":
        raise ToolFailed("asked to fail")
    if args["text"] == "gone":
        raise ToolFailed("no message 3 in 'INBOX'", NOT_FOUND)
    return {"address": address, **args}


def make() -> Registry:
    return Registry([Tool("echo", "Search mail", "echo", SCHEMA, {"type": "object"}, echo)])


@pytest.mark.parametrize(
    "value",
    [{"text": "ab"}, {"text": "ab", "n": 1}, {"text": "abcde", "n": 10, "flag": False, "tags": ["x"]}],
)
def test_valid_arguments(value):
    validate(SCHEMA, value)


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({}, "arguments.text"),
        ({"text": ""}, "arguments.text"),
        ({"text": "abcdef"}, "arguments.text"),
        ({"text": 3}, "arguments.text"),
        ({"text": "a", "n": 0}, "arguments.n"),
        ({"text": "a", "n": 11}, "arguments.n"),
        ({"text": "a", "n": 1.5}, "arguments.n"),
        ({"text": "a", "n": True}, "arguments.n"),  # a bool is not an integer
        ({"text": "a", "flag": 1}, "arguments.flag"),
        ({"text": "a", "tags": ["x", 2]}, "arguments.tags[1]"),
        ({"text": "a", "other": 1}, "unknown argument 'other'"),
        ([], "expected object"),
    ],
)
def test_invalid_arguments_name_the_field(value, where):
    with pytest.raises(InvalidArguments, match=r".*") as info:
        validate(SCHEMA, value)
    assert where in str(info.value)


def test_call_returns_structured_content_and_text():
    out = make().call("alice@x", "echo", {"text": "hi"})
    assert out["isError"] is False
    assert out["structuredContent"] == {"address": "alice@x", "text": "hi"}
    assert '"text": "hi"' in out["content"][0]["text"]


def test_bad_arguments_and_tool_failures_are_error_results():
    reg = make()
    bad = reg.call("a@x", "echo", {"text": 5})
    assert bad["isError"] is True and "structuredContent" not in bad and "arguments.text" in bad["content"][0]["text"]
    failed = reg.call("a@x", "echo", {"text": "fail"})
    assert failed["isError"] is True and failed["content"][0]["text"] == "asked to fail"
    assert reg.call("a@x", "echo", None)["isError"] is True  # no arguments: text is required
    # each says why as a stable kind beside the text (the assistant's page translates it)
    assert (error_kind(bad), error_kind(failed)) == ("invalid", "failed")
    gone = reg.call("a@x", "echo", {"text": "gone"})
    assert gone["_meta"] == {"gk/errorKind": "not_found"} and error_kind(gone) == "not_found"
    assert error_kind(reg.call("a@x", "echo", {"text": "hi"})) == ""


def test_unknown_tool():
    with pytest.raises(UnknownTool):
        make().call("a@x", "nope", {})


def test_listing_carries_schemas_annotations_and_titles_per_language():
    (en,) = make().list("en")
    assert en["inputSchema"] == SCHEMA and en["outputSchema"] == {"type": "object"}
    assert en["annotations"] == {
        "title": "Search mail",
        "readOnlyHint": True,
        "destructiveHint": False,
        "idempotentHint": True,
        "openWorldHint": False,
    }
    (fr,) = make().list("fr")
    assert fr["title"] == "Rechercher dans le courrier"


def test_declaring_a_tool_checks_its_schema():
    with pytest.raises(ValueError, match="pattern"):
        Tool("t", "t", "t", {"type": "object", "properties": {"x": {"type": "string", "pattern": "a"}}},
             {"type": "object"}, echo)  # fmt: skip
    with pytest.raises(ValueError, match="objects"):
        Tool("t", "t", "t", {"type": "string"}, {"type": "object"}, echo)
    with pytest.raises(ValueError, match="twice"):
        Registry([Tool("t", "t", "t", {"type": "object"}, {"type": "object"}, echo)] * 2)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{", jsonrpc.PARSE_ERROR),
        (b"\xff", jsonrpc.PARSE_ERROR),
        (b"[]", jsonrpc.INVALID_REQUEST),
        (b'[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]', jsonrpc.INVALID_REQUEST),
        (b'{"id": 1, "method": "ping"}', jsonrpc.INVALID_REQUEST),
        (b'{"jsonrpc": "2.0", "id": 1}', jsonrpc.INVALID_REQUEST),
        (b'{"jsonrpc": "2.0", "id": 1, "method": 5}', jsonrpc.INVALID_REQUEST),
        (b'{"jsonrpc": "2.0", "id": [1], "method": "ping"}', jsonrpc.INVALID_REQUEST),
        (b'{"jsonrpc": "2.0", "id": true, "method": "ping"}', jsonrpc.INVALID_REQUEST),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": [1]}', jsonrpc.INVALID_PARAMS),
    ],
)
def test_jsonrpc_refusals(body, code):
    with pytest.raises(jsonrpc.RPCError) as info:
        jsonrpc.parse(body)
    assert info.value.code == code


def test_jsonrpc_messages():
    req = jsonrpc.parse(b'{"jsonrpc": "2.0", "id": "a", "method": "tools/list"}')
    assert req.is_request and req.id == "a" and req.params == {}
    note = jsonrpc.parse(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}')
    assert not note.is_request and note.method == "notifications/initialized"
    resp = jsonrpc.parse(b'{"jsonrpc": "2.0", "id": 3, "result": {}}')
    assert not resp.is_request and resp.method is None


@pytest.mark.parametrize(
    ("origin", "host", "ok"),
    [
        ("", "anything", True),  # not a browser
        ("http://127.0.0.1:8080", "127.0.0.1:8080", True),
        ("http://[::1]:8080", "[::1]:8080", True),
        ("https://mx.example", "mx.example", True),
        ("http://localhost:8080", "localhost:8080", True),
        ("http://evil.example", "evil.example", False),  # DNS rebinding: Host and Origin agree
        ("http://evil.example", "mx.example", False),
        ("http://127.0.0.1:9999", "127.0.0.1:8080", False),
        ("null", "mx.example", False),
        ("https://app.example", "mx.example", True),  # listed
    ],
)
def test_origin(origin, host, ok):
    assert origin_allowed(origin, host, ("mx.example", "localhost"), ["https://app.example"]) is ok
