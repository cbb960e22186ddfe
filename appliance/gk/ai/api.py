"""The OpenAI-compatible API at ``/v1``: what Open WebUI, Continue, scripts and the ``openai``
client speak, on GK's own web listeners (a bottle sub-app, no FastAPI/uvicorn/pydantic).

``POST /v1/chat/completions`` (``stream`` as server-sent events or one JSON body;
``response_format`` ``json_object``/``json_schema`` and forced ``tool_choice`` enforced by
llama.cpp's grammar sampler),
``GET /v1/models`` (the GGUF files in ``DATA_DIR/models``). Every request carries
``Authorization: Bearer gk-…`` (``gk token add``); the app is mounted CSRF-exempt because it is
authenticated per request, not by the session cookie. Errors use OpenAI's shape
(``{"error": {"message", "type", "param", "code"}}``) and status codes, so clients show them.
A client that goes away mid-stream closes the response iterator: the generation is cancelled
at the next token. Cost: one greenlet per request; the body is parsed once, capped at 1 MiB.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import bottle

from gk.ai import models
from gk.ai.models import ModelError, NotEnoughMemory
from gk.ai.runtime import Cancelled, ContextOverflow, QueueFull

MAX_BODY = 1024 * 1024
ROLES = ("system", "user", "assistant", "tool", "developer")


class APIError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None,
                 type_: str = "invalid_request_error"):  # fmt: skip
        super().__init__(message)
        self.status, self.code, self.param, self.type = status, code, param, type_

    def response(self) -> bottle.HTTPResponse:
        body = {"error": {"message": str(self), "type": self.type, "param": self.param, "code": self.code}}
        headers = {"Content-Type": "application/json"}
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="gk"'
        return bottle.HTTPResponse(json.dumps(body), self.status, headers)


def _json(obj: Any, status: int = 200) -> bottle.HTTPResponse:
    return bottle.HTTPResponse(json.dumps(obj), status, {"Content-Type": "application/json"})


def _text(content: Any, where: str) -> str:
    """A message's content: a string, or OpenAI's list of parts (text parts only)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise APIError(400, f"{where}: only text content parts are supported", param=where)
            parts.append(part["text"])
        return "".join(parts)
    raise APIError(400, f"{where}: content must be a string or a list of text parts", param=where)


def _number(body: dict[str, Any], key: str, kind: type, lo: float, hi: float) -> Any:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or (kind is int and not isinstance(v, int)):
        raise APIError(400, f"{key} must be a {kind.__name__}", param=key)
    if not lo <= v <= hi:
        raise APIError(400, f"{key} must be between {lo} and {hi}", param=key)
    return kind(v)


def _response_format(rf: Any) -> dict[str, Any] | None:
    """OpenAI's ``response_format`` in llama-cpp-python's shape (a grammar built from the schema)."""
    if rf is None:
        return None
    if not isinstance(rf, dict) or rf.get("type") not in ("text", "json_object", "json_schema"):
        raise APIError(400, "response_format.type must be text, json_object or json_schema", param="response_format")
    if rf["type"] == "text":
        return None
    if rf["type"] == "json_object":
        return {"type": "json_object"}
    spec = rf.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
        raise APIError(400, "response_format.json_schema.schema must be an object", param="response_format")
    return {"type": "json_object", "schema": spec.get("schema") or {"type": "object"}}


def _tools(tools: Any, choice: Any) -> tuple[list[dict[str, Any]], dict[str, Any] | str | None]:
    """``tools`` for the chat template, and the choice: a named function (its arguments made by
    llama.cpp's grammar from the function's JSON schema), ``required`` (one call of any tool, by
    ``gk.ai.toolcalls.grammar``), or None for ``auto`` (the model's text is parsed for calls in
    its family's syntax). ``none`` offers no tools."""
    if tools is None:
        return [], None
    if not isinstance(tools, list) or len(tools) > 128:
        raise APIError(400, "tools must be a list of functions", param="tools")
    names = []
    for i, t in enumerate(tools):
        fn = t.get("function") if isinstance(t, dict) and t.get("type") == "function" else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise APIError(400, f"tools[{i}] must be {{type: function, function: {{name, parameters}}}}", param="tools")
        if not isinstance(fn.get("parameters", {}), dict):
            raise APIError(400, f"tools[{i}].function.parameters must be a JSON schema object", param="tools")
        fn.setdefault("parameters", {"type": "object", "properties": {}})
        names.append(fn["name"])
    if choice is None or choice == "auto":
        return tools, None
    if choice == "none":
        return [], None
    if choice == "required":  # one call of any of the tools: the grammar of gk.ai.toolcalls
        return tools, "required"
    name = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
    if name not in names:
        raise APIError(400, "tool_choice must be auto, none, required or a function among tools", param="tool_choice")
    return tools, {"type": "function", "function": {"name": name}}


def _past_calls(calls: Any, where: str) -> list[dict[str, Any]]:
    """An earlier assistant turn's ``tool_calls``, for the chat template (arguments as objects)."""
    if not isinstance(calls, list):
        raise APIError(400, f"{where} must be a list", param=where)
    out = []
    for c in calls:
        fn = c.get("function") if isinstance(c, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise APIError(400, f"{where}: each call needs function.name", param=where)
        args: Any = fn.get("arguments", "{}")
        if isinstance(args, str):
            try:
                args = json.loads(args or "{}")
            except ValueError:
                raise APIError(400, f"{where}: function.arguments must be JSON", param=where) from None
        out.append(
            {"id": str(c.get("id", "")), "type": "function", "function": {"name": fn["name"], "arguments": args}}
        )
    return out


def parse_chat_request(body: Any, default_max_tokens: int) -> tuple[str, bool, dict[str, Any]]:
    """Validate a chat completion body; returns (model, stream, llama.cpp parameters)."""
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object")
    model = body.get("model", "")
    if not isinstance(model, str):
        raise APIError(400, "model must be a string", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise APIError(400, "messages must be a non-empty list", param="messages")
    clean = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise APIError(400, f"messages[{i}] needs a role among {', '.join(ROLES)}", param=f"messages[{i}]")
        role = "system" if m["role"] == "developer" else m["role"]
        msg: dict[str, Any] = {"role": role, "content": _text(m.get("content"), f"messages[{i}].content")}
        if role == "assistant" and m.get("tool_calls") is not None:
            msg["tool_calls"] = _past_calls(m["tool_calls"], f"messages[{i}].tool_calls")
        if role == "tool":
            for key in ("tool_call_id", "name"):
                if isinstance(m.get(key), str):
                    msg[key] = m[key]
        clean.append(msg)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise APIError(400, "stream must be true or false", param="stream")
    max_tokens = _number(body, "max_completion_tokens", int, 1, 1 << 20) or _number(body, "max_tokens", int, 1, 1 << 20)
    params: dict[str, Any] = {"messages": clean, "max_tokens": max_tokens or default_max_tokens}
    for key, lo, hi in (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0), ("presence_penalty", -2.0, 2.0),
                        ("frequency_penalty", -2.0, 2.0)):  # fmt: skip
        v = _number(body, key, float, lo, hi)
        if v is not None:
            params[key] = v
    seed = _number(body, "seed", int, -(1 << 63), (1 << 63) - 1)
    if seed is not None:
        params["seed"] = seed & 0xFFFFFFFF
    stop = body.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) and s for s in stop):
            raise APIError(400, "stop must be a string or up to 4 strings", param="stop")
        params["stop"] = stop
    bias = body.get("logit_bias")
    if bias is not None:
        try:
            params["logit_bias"] = {int(k): float(v) for k, v in bias.items() if -100 <= float(v) <= 100}
        except (AttributeError, TypeError, ValueError):
            raise APIError(400, "logit_bias maps token ids to numbers in -100..100", param="logit_bias") from None
        if len(params["logit_bias"]) != len(bias) or len(bias) > 1024:
            raise APIError(400, "logit_bias maps token ids to numbers in -100..100", param="logit_bias")
    tools, tool_choice = _tools(body.get("tools"), body.get("tool_choice"))
    if tools:
        params["tools"] = tools
        if tool_choice == "required":
            params["gk_required"] = True
        elif tool_choice is not None:
            params["tool_choice"] = tool_choice
    if rf := _response_format(body.get("response_format")):
        params["response_format"] = rf
    return model, stream, params


def make_app(svc: Any) -> bottle.Bottle:
    """The ``/v1`` app over ``svc`` (an ``AIService``: ``runtime``, ``tokens``, ``data_dir``)."""
    app = bottle.Bottle()

    def authenticate() -> str:
        header = bottle.request.get_header("Authorization") or ""
        scheme, _, token = header.partition(" ")
        address = svc.tokens.verify(token.strip()) if scheme.lower() == "bearer" else None
        if address is None:
            raise APIError(401, "invalid or missing API token (create one with: gk token add ADDRESS)",
                           code="invalid_api_key")  # fmt: skip
        return address

    def guarded(handler: Any) -> Any:
        def wrapper(*a: Any, **kw: Any) -> Any:
            try:
                authenticate()
                return handler(*a, **kw)
            except APIError as exc:
                return exc.response()

        return wrapper

    @app.get("/models")
    @guarded
    def list_models() -> bottle.HTTPResponse:
        data = [
            {"id": p.name, "object": "model", "created": int(p.stat().st_mtime), "owned_by": "gk"}
            for p in models.list_models(svc.data_dir)
        ]
        return _json({"object": "list", "data": data})

    @app.post("/chat/completions")
    @guarded
    def chat_completions() -> Any:
        length = bottle.request.content_length
        if length > MAX_BODY:
            raise APIError(413, f"request body over {MAX_BODY} bytes")
        try:
            body = json.loads(bottle.request.body.read(MAX_BODY + 1) or b"null")
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested too deep
            raise APIError(400, f"the body is not valid JSON: {exc}") from exc
        model, stream, params = parse_chat_request(body, svc.max_tokens)
        asked = model or svc.runtime.default_model()
        model = _installed(svc, asked)
        if not model:
            raise APIError(404, f"the model {asked!r} does not exist (GET /v1/models lists them)",
                           code="model_not_found", param="model")  # fmt: skip
        calls = _tool_parsing(svc, model, params)
        if calls is not None and stream:  # generated whole, parsed, then sent as chunks
            return _streamed_whole(svc, model, params, calls)
        try:
            req = svc.runtime.submit(model, params, stream=stream)
        except QueueFull as exc:
            raise APIError(503, str(exc), code="queue_full", type_="server_error") from exc
        try:
            chunks = req.chunks()
            first = next(chunks, None)  # errors of load and prompt come before any byte is sent
        except BaseException as exc:
            req.cancel()
            raise _runtime_error(exc) from exc
        if not stream:
            if first is None:
                raise APIError(500, "no completion was produced", type_="server_error")
            first["model"] = model
            if calls is not None:
                _with_calls(first, *calls)
            return _json(first)
        bottle.response.content_type = "text/event-stream"
        bottle.response.set_header("Cache-Control", "no-cache")
        bottle.response.set_header("X-Accel-Buffering", "no")
        return _sse(req, first, chunks, model)

    for status in (404, 405, 500):
        app.error(status)(lambda err: _error_body(err))
    return app


def _installed(svc: Any, name: str) -> str:
    """The installed file ``name`` names: a file in ``DATA_DIR/models`` (``.gguf`` optional), or a
    catalogue id as ``gk ai models`` lists it and ``gk ai use`` takes it; '' when not installed."""
    path = models.resolve(svc.data_dir, name)
    if path is None:
        from gk.ai import catalogue

        try:
            entry = catalogue.find(catalogue.cached(getattr(svc.cfg, "catalogue", "")), name)
        except catalogue.CatalogueError:
            entry = None
        path = models.resolve(svc.data_dir, entry.file) if entry is not None else None
    return path.name if path is not None else ""


def _tool_parsing(svc: Any, model: str, params: dict[str, Any]) -> tuple[str, list[str]] | None:
    """(family, tool names) when the answer must be parsed for calls: ``auto`` and ``required``
    (a named function is llama-cpp-python's own path). ``required`` adds the family's grammar."""
    if not params.get("tools") or "tool_choice" in params:
        params.pop("gk_required", None)
        return None
    from gk.ai import toolcalls

    fam = toolcalls.model_family(svc.data_dir, model, getattr(svc.cfg, "catalogue", ""))
    if params.pop("gk_required", False):
        params["gk_grammar"] = toolcalls.grammar(params["tools"], fam)
    return fam, [t["function"]["name"] for t in params["tools"]]


def _with_calls(result: dict[str, Any], fam: str, names: list[str]) -> None:
    """Turn the calls written in ``result``'s text into OpenAI ``tool_calls``."""
    from gk.ai import toolcalls

    choice = result["choices"][0]
    message = choice["message"]
    text, calls = toolcalls.parse(message.get("content") or "", fam, names)
    if calls:
        message["tool_calls"] = toolcalls.openai_calls(calls)
        message["content"] = text or None
        choice["finish_reason"] = "tool_calls"


def _streamed_whole(svc: Any, model: str, params: dict[str, Any], calls: tuple[str, list[str]]) -> Any:
    """A streamed request with tools: the answer is generated whole (a call's text cannot be told
    from an answer's until it ends), parsed, then sent as the chunks OpenAI clients expect."""
    try:
        req = svc.runtime.submit(model, params, stream=False)
    except QueueFull as exc:
        raise APIError(503, str(exc), code="queue_full", type_="server_error") from exc
    try:
        result = req.result()
    except BaseException as exc:
        req.cancel()
        raise _runtime_error(exc) from exc
    _with_calls(result, *calls)
    choice = result["choices"][0]
    message = choice["message"]
    base = {"id": result["id"], "object": "chat.completion.chunk", "created": result["created"], "model": model}
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": message.get("content")}]
    for i, call in enumerate(message.get("tool_calls") or []):
        deltas.append({"tool_calls": [{"index": i, **call}]})
    chunks = [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]})
    bottle.response.content_type = "text/event-stream"
    bottle.response.set_header("Cache-Control", "no-cache")
    return [f"data: {json.dumps(c)}\n\n".encode() for c in chunks] + [b"data: [DONE]\n\n"]


def _error_body(err: bottle.HTTPError) -> str:
    bottle.response.content_type = "application/json"
    return json.dumps({"error": {"message": str(err.body or err.status_line), "type": "invalid_request_error",
                                 "param": None, "code": None}})  # fmt: skip


def _runtime_error(exc: BaseException) -> APIError:
    if isinstance(exc, ContextOverflow):
        return APIError(400, str(exc), code="context_length_exceeded", param="messages")
    if isinstance(exc, NotEnoughMemory):
        return APIError(503, str(exc), code="insufficient_memory", type_="server_error")
    if isinstance(exc, ModelError):
        return APIError(503, str(exc), code="model_unavailable", type_="server_error")
    if isinstance(exc, Cancelled):
        return APIError(503, str(exc), code="cancelled", type_="server_error")
    return APIError(500, f"generation failed: {exc}", type_="server_error")


def _sse(req: Any, first: dict[str, Any] | None, rest: Iterator[dict[str, Any]], model: str) -> Iterator[bytes]:
    """The event stream; closed by the server when the client goes away, which cancels ``req``."""
    finished = False
    try:
        chunk = first
        while chunk is not None:
            chunk["model"] = model
            yield f"data: {json.dumps(chunk)}\n\n".encode()
            chunk = next(rest, None)
        finished = True
        yield b"data: [DONE]\n\n"
    except (ContextOverflow, ModelError, Cancelled, RuntimeError, ValueError) as exc:
        finished = True
        err = _runtime_error(exc)
        payload = {"error": {"message": str(err), "type": err.type, "param": err.param, "code": err.code}}
        yield f"data: {json.dumps(payload)}\n\n".encode()
    finally:
        if not finished:  # the client went away (the server closed this iterator): stop generating
            req.cancel()
