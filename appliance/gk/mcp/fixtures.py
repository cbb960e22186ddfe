"""The official conformance suite's fixtures (``@modelcontextprotocol/conformance``): the tools,
resources and prompts its server scenarios call by name (``test_simple_text``,
``test://static-text``, ``test_simple_prompt``…), served only in GK's test mode.

Test mode is the environment variable ``GK_MCP_CONFORMANCE=1``, set by
tests/integration/test_mcp_conformance.py and nothing else: ``gk serve`` then answers
``POST /mcp/conformance`` — the same transport as ``/mcp`` (Origin, headers, versions, errors,
SSE), without a bearer token (the suite has no way to send one) and with these fixtures only:
no user, no mailbox, no data of anyone's behind it.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import gevent

from gk.mcp import jsonrpc, protocol
from gk.mcp.jsonrpc import RPCError
from gk.mcp.prompts import Argument, Prompt, user_text
from gk.mcp.resources import not_found

ENV = "GK_MCP_CONFORMANCE"

# a 1x1 transparent PNG and a 44-byte silent WAV
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c63000100000500010d0a2db40000000049454e44ae426082"
    )
).decode()
WAV = base64.b64encode(
    b"RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00@\x1f\x00\x00@\x1f\x00\x00\x01\x00\x08\x00data\x00\x00\x00\x00"
).decode()

# a tool's work: yields notifications (sent on the response's SSE stream, ``None`` comes back) and,
# 2025-era only, requests to the client (``elicitation/create``…: the client's response comes
# back), returns the result
Notes = Generator[dict[str, Any], dict[str, Any] | None, dict[str, Any]]


def enabled() -> bool:
    return os.environ.get(ENV) == "1"


@dataclass
class Call:
    """One ``tools/call``: its envelope, a way to tell the listen streams of a change, and for a
    retried multi-round request its ``inputResponses`` and verified ``requestState``."""

    env: protocol.Envelope
    changed: Callable[[str], None]
    responses: dict[str, dict[str, Any]] = field(default_factory=dict)
    state: dict[str, Any] | None = None
    sign: Callable[[dict[str, Any]], str] = lambda state: ""


@dataclass(frozen=True)
class FixtureTool:
    name: str
    description: str
    run: Callable[[Call, dict[str, Any]], Notes]
    input_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    requires: dict[str, Any] = field(default_factory=dict)  # client capabilities (2026-07-28: -32021)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "inputSchema": self.input_schema}


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _done(*content: dict[str, Any], error: bool = False) -> dict[str, Any]:
    return {"content": list(content), "isError": error}


def _simple(c: Call, a: dict[str, Any]) -> Notes:
    return _done(_text("This is a simple text response for testing."))
    yield  # a generator: no notification


def _image(c: Call, a: dict[str, Any]) -> Notes:
    return _done({"type": "image", "data": PNG, "mimeType": "image/png"})
    yield


def _audio(c: Call, a: dict[str, Any]) -> Notes:
    return _done({"type": "audio", "data": WAV, "mimeType": "audio/wav"})
    yield


def _embedded(c: Call, a: dict[str, Any]) -> Notes:
    res = {"uri": "test://embedded-resource", "mimeType": "text/plain", "text": "This is an embedded resource content."}
    return _done({"type": "resource", "resource": res})
    yield


def _mixed(c: Call, a: dict[str, Any]) -> Notes:
    res = {
        "uri": "test://mixed-content-resource",
        "mimeType": "application/json",
        "text": '{"test":"data","value":123}',
    }
    return _done(
        _text("Multiple content types test:"),
        {"type": "image", "data": PNG, "mimeType": "image/png"},
        {"type": "resource", "resource": res},
    )
    yield


def _error(c: Call, a: dict[str, Any]) -> Notes:
    return _done(_text("This tool intentionally returns an error for testing"), error=True)
    yield


def _progress(c: Call, a: dict[str, Any]) -> Notes:
    for step in (0, 50, 100):
        if c.env.progress_token is not None:
            yield jsonrpc.notification(
                "notifications/progress", {"progressToken": c.env.progress_token, "progress": step, "total": 100}
            )
        gevent.sleep(0.05)
    return _done(_text("Progress test completed"))


def _logging(c: Call, a: dict[str, Any]) -> Notes:
    # 2026-07-28: logs only when the request asked for a level; 2025: logging/setLevel is not
    # remembered (no session), so the messages go out at the default level
    loud = c.env.log_level is not None or not c.env.modern
    for text in ("Tool execution started", "Tool processing data", "Tool execution completed"):
        if loud:
            yield jsonrpc.notification("notifications/message", {"level": "info", "logger": "gk", "data": text})
        gevent.sleep(0.05)
    return _done(_text("Logging test completed"))


def _needs_sampling(c: Call, a: dict[str, Any]) -> Notes:
    return _done(_text("the client declared sampling"))
    yield


def _trigger_tools(c: Call, a: dict[str, Any]) -> Notes:
    c.changed("tools")
    return _done(_text("tools list changed"))
    yield


def _trigger_prompts(c: Call, a: dict[str, Any]) -> Notes:
    c.changed("prompts")
    return _done(_text("prompts list changed"))
    yield


# -- multi-round-trip requests (SEP-2322) ---------------------------------------------------------


def _elicit(message: str, prop: str, kind: str = "string") -> dict[str, Any]:
    schema = {"type": "object", "properties": {prop: {"type": kind}}, "required": [prop]}
    return {"method": "elicitation/create", "params": {"message": message, "requestedSchema": schema}}


def _sample(text: str, max_tokens: int) -> dict[str, Any]:
    msg = {"role": "user", "content": {"type": "text", "text": text}}
    return {"method": "sampling/createMessage", "params": {"messages": [msg], "maxTokens": max_tokens}}


ROOTS = {"method": "roots/list", "params": {}}


def _needs(requests: dict[str, Any], state: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"resultType": "input_required", "inputRequests": requests}
    if state is not None:
        out["requestState"] = state
    return out


def _accepted(c: Call, key: str, field_: str) -> Any:
    """The value of ``field_`` in an accepted elicitation answer, None when not answered."""
    answer = c.responses.get(key) or {}
    content = answer.get("content")
    if answer.get("action") != "accept" or not isinstance(content, dict):
        return None
    return content.get(field_)


def _sampled(c: Call, key: str) -> str | None:
    content = (c.responses.get(key) or {}).get("content")
    return content.get("text") if isinstance(content, dict) and isinstance(content.get("text"), str) else None


def _ir_elicitation(c: Call, a: dict[str, Any]) -> Notes:
    name = _accepted(c, "user_name", "name")
    if not isinstance(name, str):
        return _needs({"user_name": _elicit("What is your name?", "name")})
    return _done(_text(f"Hello, {name}!"))
    yield


def _ir_sampling(c: Call, a: dict[str, Any]) -> Notes:
    answer = _sampled(c, "capital_question")
    if answer is None:
        return _needs({"capital_question": _sample("What is the capital of France?", 100)})
    return _done(_text(f"The model answered: {answer}"))
    yield


def _ir_roots(c: Call, a: dict[str, Any]) -> Notes:
    roots = (c.responses.get("client_roots") or {}).get("roots")
    if not isinstance(roots, list):
        return _needs({"client_roots": ROOTS})
    return _done(_text("Roots: " + ", ".join(str(r.get("uri")) for r in roots if isinstance(r, dict))))
    yield


def _ir_state(c: Call, a: dict[str, Any]) -> Notes:
    ok = _accepted(c, "confirm", "ok")
    if c.state is None or c.state.get("step") != "confirm" or ok is None:
        return _needs({"confirm": _elicit("Please confirm", "ok", "boolean")}, c.sign({"step": "confirm"}))
    return _done(_text(f"Confirmed: {ok}"))
    yield


def _ir_multiple(c: Call, a: dict[str, Any]) -> Notes:
    name, greeting = _accepted(c, "user_name", "name"), _sampled(c, "greeting")
    roots = (c.responses.get("client_roots") or {}).get("roots")
    if c.state is None or name is None or greeting is None or not isinstance(roots, list):
        requests = {
            "user_name": _elicit("What is your name?", "name"),
            "greeting": _sample("Generate a greeting", 50),
            "client_roots": ROOTS,
        }
        return _needs(requests, c.sign({"step": "all"}))
    return _done(_text(f"{greeting} {name} ({len(roots)} root(s))"))
    yield


def _ir_multi_round(c: Call, a: dict[str, Any]) -> Notes:
    state = c.state or {}
    if state.get("round") == 2:
        color = _accepted(c, "step2", "color")
        if isinstance(color, str):
            return _done(_text(f"{state.get('name')} likes {color}"))
        return _needs({"step2": _elicit("Step 2: What is your favorite color?", "color")}, c.sign(state))
    name = _accepted(c, "step1", "name") if state.get("round") == 1 else None
    if isinstance(name, str):
        return _needs(
            {"step2": _elicit("Step 2: What is your favorite color?", "color")}, c.sign({"round": 2, "name": name})
        )
    return _needs({"step1": _elicit("Step 1: What is your name?", "name")}, c.sign({"round": 1}))
    yield


def _ir_tampered(c: Call, a: dict[str, Any]) -> Notes:
    ok = _accepted(c, "confirm", "ok")
    if c.state is None or ok is None:
        return _needs({"confirm": _elicit("Please confirm", "ok", "boolean")}, c.sign({"step": "confirm"}))
    return _done(_text("state verified"))
    yield


def _ir_capabilities(c: Call, a: dict[str, Any]) -> Notes:
    caps = c.env.capabilities
    requests: dict[str, Any] = {}
    if "elicitation" in caps:
        requests["user_name"] = _elicit("What is your name?", "name")
    if "sampling" in caps:
        requests["capital_question"] = _sample("What is the capital of France?", 100)
    if "roots" in caps:
        requests["client_roots"] = ROOTS
    if not requests or all(k in c.responses for k in requests):
        return _done(_text("nothing (more) to ask this client"))
    return _needs(requests)
    yield


# -- requests to the client on the response stream (2025-11-25 and before) ------------------------


def _ask(c: Call, method: str, params: dict[str, Any]) -> Notes:
    if c.env.modern:  # 2026-07-28 forbids requests on a response stream: the MRTR tools ask instead
        raise RPCError(jsonrpc.INVALID_PARAMS, "this tool asks the client mid-call: a 2025-era protocol only")
    answer = yield {"jsonrpc": "2.0", "id": secrets.token_hex(16), "method": method, "params": params}
    if not answer or "result" not in answer or not isinstance(answer["result"], dict):
        return _done(
            _text(f"the client did not answer {method}: {json.dumps((answer or {}).get('error'))}"), error=True
        )
    return answer["result"]


def _sampling(c: Call, a: dict[str, Any]) -> Notes:
    prompt = str(a.get("prompt", ""))
    out = yield from _ask(c, "sampling/createMessage", _sample(prompt, 100)["params"])
    if "isError" in out:
        return out
    content = out.get("content")
    text = content.get("text") if isinstance(content, dict) else None
    return _done(_text(f"LLM response: {text}"))


def _elicit_and_report(c: Call, params: dict[str, Any]) -> Notes:
    out = yield from _ask(c, "elicitation/create", params)
    if "isError" in out:
        return out
    return _done(_text(f"Elicitation completed: action={out.get('action')}, content={json.dumps(out.get('content'))}"))


def _elicitation(c: Call, a: dict[str, Any]) -> Notes:
    schema = {
        "type": "object",
        "properties": {
            "username": {"type": "string", "description": "User's response"},
            "email": {"type": "string", "description": "User's email address"},
        },
        "required": ["username", "email"],
    }
    return (yield from _elicit_and_report(c, {"message": str(a.get("message", "")), "requestedSchema": schema}))


def _elicitation_defaults(c: Call, a: dict[str, Any]) -> Notes:
    props = {
        "name": {"type": "string", "default": "John Doe"},
        "age": {"type": "integer", "default": 30},
        "score": {"type": "number", "default": 95.5},
        "status": {"type": "string", "enum": ["active", "inactive", "pending"], "default": "active"},
        "verified": {"type": "boolean", "default": True},
    }
    params = {"message": "Please review your details", "requestedSchema": {"type": "object", "properties": props}}
    return (yield from _elicit_and_report(c, params))


def _elicitation_enums(c: Call, a: dict[str, Any]) -> Notes:
    titled = [
        {"const": f"value{i}", "title": t} for i, t in enumerate(("First Option", "Second Option", "Third Option"), 1)
    ]
    choices = [
        {"const": f"value{i}", "title": t} for i, t in enumerate(("First Choice", "Second Choice", "Third Choice"), 1)
    ]
    props = {
        "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
        "titledSingle": {"type": "string", "oneOf": titled},
        "legacyEnum": {
            "type": "string",
            "enum": ["opt1", "opt2", "opt3"],
            "enumNames": ["Option One", "Option Two", "Option Three"],
        },
        "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
        "titledMulti": {"type": "array", "items": {"anyOf": choices}},
    }
    params = {"message": "Please choose", "requestedSchema": {"type": "object", "properties": props}}
    return (yield from _elicit_and_report(c, params))


INPUT_PROMPT = "test_input_required_result_prompt"


def input_prompt(c: Call) -> dict[str, Any]:
    """``prompts/get`` of ``test_input_required_result_prompt``: asks for a context first."""
    context = _accepted(c, "user_context", "context")
    if not isinstance(context, str):
        return _needs({"user_context": _elicit("What context should the prompt use?", "context")})
    return {"description": "A prompt that asked for its context", "messages": [user_text(f"Context: {context}")]}


# a JSON Schema 2020-12 input schema the listing must pass on untouched ($defs, $ref, if/then/else)
SCHEMA_2020_12: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


def _schema_tool(c: Call, a: dict[str, Any]) -> Notes:
    return _done(_text(f"received {sorted(a)}"))
    yield


TOOLS = (
    FixtureTool("test_simple_text", "Returns simple text", _simple),
    FixtureTool("test_image_content", "Returns an image", _image),
    FixtureTool("test_audio_content", "Returns audio", _audio),
    FixtureTool("test_embedded_resource", "Returns an embedded resource", _embedded),
    FixtureTool("test_multiple_content_types", "Returns text, an image and a resource", _mixed),
    FixtureTool("test_error_handling", "Returns a tool error", _error),
    FixtureTool("test_tool_with_progress", "Reports progress", _progress),
    FixtureTool("test_tool_with_logging", "Logs while running", _logging),
    FixtureTool("test_logging_tool", "Logs only when asked to", _logging),
    FixtureTool("test_missing_capability", "Needs the client's sampling", _needs_sampling, requires={"sampling": {}}),
    FixtureTool("test_trigger_tool_change", "Announces a tools list change", _trigger_tools),
    FixtureTool("test_trigger_prompt_change", "Announces a prompts list change", _trigger_prompts),
    FixtureTool("test_sampling", "Asks the client's model (2025)", _sampling, requires={"sampling": {}}),
    FixtureTool("test_elicitation", "Asks the user (2025)", _elicitation, requires={"elicitation": {}}),
    FixtureTool("test_elicitation_sep1034_defaults", "Asks with defaults (2025)", _elicitation_defaults),
    FixtureTool("test_elicitation_sep1330_enums", "Asks with enums (2025)", _elicitation_enums),
    FixtureTool("json_schema_2020_12_tool", "Has a JSON Schema 2020-12 input", _schema_tool, SCHEMA_2020_12),
    FixtureTool("test_streaming_elicitation", "Asks for input", _ir_elicitation, requires={"elicitation": {}}),
    FixtureTool("test_input_required_result_elicitation", "Asks the user's name", _ir_elicitation),
    FixtureTool("test_input_required_result_sampling", "Asks the client's model", _ir_sampling),
    FixtureTool("test_input_required_result_list_roots", "Asks the client's roots", _ir_roots),
    FixtureTool("test_input_required_result_request_state", "Round-trips its state", _ir_state),
    FixtureTool("test_input_required_result_multiple_inputs", "Asks three things at once", _ir_multiple),
    FixtureTool("test_input_required_result_multi_round", "Asks in two rounds", _ir_multi_round),
    FixtureTool("test_input_required_result_tampered_state", "Checks its state's integrity", _ir_tampered),
    FixtureTool("test_input_required_result_capabilities", "Asks only what the client can answer", _ir_capabilities),
)


class FixtureTools:
    def __init__(self) -> None:
        self._tools = {t.name: t for t in TOOLS}

    def list(self) -> list[dict[str, Any]]:
        return [t.describe() for t in self._tools.values()]

    def get(self, name: str) -> FixtureTool | None:
        return self._tools.get(name)


class FixtureResources:
    feature: str | None = None
    STATIC = {
        "test://static-text": ("text/plain", {"text": "This is the content of the static text resource."}),
        "test://static-binary": ("image/png", {"blob": PNG}),
        "test://watched-resource": ("text/plain", {"text": "Watched resource content."}),
    }

    def entries(self, address: str, lang: str) -> list[dict[str, Any]]:
        return [
            {"uri": uri, "name": uri.removeprefix("test://"), "description": "conformance fixture", "mimeType": mime}
            for uri, (mime, _) in self.STATIC.items()
        ]

    def templates(self, lang: str) -> list[dict[str, Any]]:
        return [
            {
                "uriTemplate": "test://template/{id}/data",
                "name": "template",
                "description": "conformance fixture template",
                "mimeType": "application/json",
            }
        ]

    def read(self, address: str, uri: str) -> list[dict[str, Any]] | None:
        if uri in self.STATIC:
            mime, body = self.STATIC[uri]
            return [{"uri": uri, "mimeType": mime, **body}]
        if uri.startswith("test://template/") and uri.endswith("/data"):
            ident = uri.removeprefix("test://template/").removesuffix("/data")
            if ident and "/" not in ident:
                text = json.dumps({"id": ident, "templateTest": True, "data": f"Data for ID: {ident}"})
                return [{"uri": uri, "mimeType": "application/json", "text": text}]
        if uri.startswith("test://"):
            raise not_found(uri)
        return None


def _prompt_args(args: dict[str, str], tr: Callable[[str], str]) -> list[dict[str, Any]]:
    return [user_text(f"Prompt with arguments: arg1='{args.get('arg1', '')}', arg2='{args.get('arg2', '')}'")]


def _prompt_resource(args: dict[str, str], tr: Callable[[str], str]) -> list[dict[str, Any]]:
    res = {"uri": args["resourceUri"], "mimeType": "text/plain", "text": "Embedded resource content for testing."}
    return [
        {"role": "user", "content": {"type": "resource", "resource": res}},
        user_text("Please process the embedded resource above."),
    ]


def _prompt_image(args: dict[str, str], tr: Callable[[str], str]) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": {"type": "image", "data": PNG, "mimeType": "image/png"}},
        user_text("Please analyze the image above."),
    ]


def _complete_args(address: str, argument: str, prefix: str) -> list[str]:
    return [v for v in ("paris", "park", "party", "test", "testValue") if v.startswith(prefix)]


PROMPTS = (
    Prompt(
        "test_simple_prompt",
        "Simple prompt",
        "A simple prompt without arguments",
        lambda args, tr: [user_text("This is a simple prompt for testing.")],
    ),
    Prompt(
        "test_prompt_with_arguments",
        "Prompt with arguments",
        "A prompt with two required arguments",
        _prompt_args,
        (Argument("arg1", "First test argument", True), Argument("arg2", "Second test argument", True)),
        _complete_args,
    ),
    Prompt(
        "test_prompt_with_embedded_resource",
        "Prompt with an embedded resource",
        "A prompt embedding a resource",
        _prompt_resource,
        (Argument("resourceUri", "URI of the resource to embed", True),),
    ),
    Prompt("test_prompt_with_image", "Prompt with an image", "A prompt with image content", _prompt_image),
    Prompt(
        INPUT_PROMPT,
        "Prompt that asks for input",
        "A prompt that asks the user for its context first",
        lambda args, tr: [user_text("Context: (a 2025 client cannot be asked)")],
    ),
)


def bad_tool(name: str) -> RPCError:
    return RPCError(jsonrpc.INVALID_PARAMS, f"Unknown tool: {name}")
