"""Tools: a name, a title (a catalog msgid: English, or French by ``Accept-Language``), a
JSON-Schema input and output, annotations, and a function of (the user's address, arguments).

Arguments are checked against the input schema before the function runs, with the small
subset of JSON Schema the tools use (``type`` object/string/integer/boolean, ``properties``,
``required``, ``additionalProperties: false``, ``minimum``/``maximum``,
``minLength``/``maxLength``, ``enum``, ``minItems``/``maxItems``) — no ``jsonschema`` dependency in the server. An unknown keyword
in a tool's schema is a programming error (``Tool.__post_init__`` refuses it).
"""

from __future__ import annotations

import json
from builtins import list as builtins_list
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gk.locale import catalog
from gk.mcp import scopes

SCHEMA_KEYWORDS = {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "description",
    "default",
    "items",
    "enum",
    "minItems",
    "maxItems",
}
_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}


class InvalidArguments(ValueError):
    """Arguments that do not match a tool's input schema (the message names the field)."""


# why a call failed, a stable code beside the English text (``ToolFailed.kind``): a result with
# ``isError`` carries it in ``_meta[ERROR_KIND]``, and the assistant's page says it in the
# reader's language (``gk.web.assistant_tools.CALL_FAILURES``) while the model reads the text
INVALID = "invalid"  # the arguments: a bad value, a missing field (the caller may correct them)
NOT_FOUND = "not_found"  # what the arguments name does not exist (a message, folder, room, event)
DENIED = "denied"  # it exists but is not the user's to use (a room they are not in)
FAILED = "failed"  # the rest
ERROR_KIND = "gk/errorKind"


class ToolFailed(Exception):
    """A tool that ran and failed for a reason the caller can act on (no such folder…):
    answered as a tool result with ``isError`` so the model sees it; ``kind`` says which."""

    def __init__(self, message: str, kind: str = FAILED):
        super().__init__(message)
        self.kind = kind


def error_result(text: str, kind: str = FAILED) -> dict[str, Any]:
    """A ``tools/call`` result with ``isError``: ``text`` for the model, ``kind`` in ``_meta``."""
    return {"content": [{"type": "text", "text": text}], "isError": True, "_meta": {ERROR_KIND: kind}}


def error_kind(result: dict[str, Any]) -> str:
    """The kind of a failed result ('' when it did not fail or says no kind)."""
    meta = result.get("_meta")
    found = meta.get(ERROR_KIND) if isinstance(meta, dict) and result.get("isError") else None
    return found if isinstance(found, str) else ""


def _check_schema(schema: dict[str, Any], where: str) -> None:
    unknown = set(schema) - SCHEMA_KEYWORDS
    if unknown:
        raise ValueError(f"{where}: JSON Schema keywords not supported here: {sorted(unknown)}")
    for name, sub in schema.get("properties", {}).items():
        _check_schema(sub, f"{where}.{name}")
    if isinstance(schema.get("items"), dict):
        _check_schema(schema["items"], f"{where}[]")


def validate(schema: dict[str, Any], value: Any, where: str = "arguments") -> None:
    """Raise ``InvalidArguments`` when ``value`` does not match ``schema`` (the subset above)."""
    kind = schema.get("type")
    if kind is not None and not _TYPES[kind](value):
        raise InvalidArguments(f"{where}: expected {kind}, got {json.dumps(value)[:40]}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value:
                raise InvalidArguments(f"{where}.{name}: required")
        if schema.get("additionalProperties") is False:
            extra = sorted(set(value) - set(props))
            if extra:
                raise InvalidArguments(f"{where}: unknown argument {extra[0]!r}")
        for name, sub in props.items():
            if name in value:
                validate(sub, value[name], f"{where}.{name}")
    if "enum" in schema and value not in schema["enum"]:
        raise InvalidArguments(f"{where}: one of {', '.join(json.dumps(v) for v in schema['enum'])}")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            raise InvalidArguments(f"{where}: at least {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise InvalidArguments(f"{where}: at most {schema['maxItems']} items")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            validate(schema["items"], item, f"{where}[{i}]")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise InvalidArguments(f"{where}: at least {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise InvalidArguments(f"{where}: at most {schema['maximum']}")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            raise InvalidArguments(f"{where}: at least {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise InvalidArguments(f"{where}: at most {schema['maxLength']} characters")


@dataclass(frozen=True)
class Tool:
    name: str
    title: str  # a catalog msgid, marked with N_ where the tool is declared
    description: str  # for the model: English
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    run: Callable[[str, dict[str, Any]], dict[str, Any]]  # (address, arguments) -> structured result
    text: Callable[[dict[str, Any]], str] = field(default=lambda out: json.dumps(out, ensure_ascii=False))
    read_only: bool = True
    destructive: bool = False
    idempotent: bool = True
    open_world: bool = False

    def __post_init__(self) -> None:
        _check_schema(self.input_schema, self.name + ".input")
        _check_schema(self.output_schema, self.name + ".output")
        if self.input_schema.get("type") != "object" or self.output_schema.get("type") != "object":
            raise ValueError(f"{self.name}: input and output schemas are objects")

    def describe(self, lang: str = "en") -> dict[str, Any]:
        title = catalog(lang).gettext(self.title)
        return {
            "name": self.name,
            "title": title,
            "description": self.description,
            "inputSchema": self.input_schema,
            "outputSchema": self.output_schema,
            "annotations": {
                "title": title,
                "readOnlyHint": self.read_only,
                "destructiveHint": self.destructive,
                "idempotentHint": self.idempotent,
                "openWorldHint": self.open_world,
            },
        }


class UnknownTool(KeyError):
    pass


class Registry:
    def __init__(self, tools: list[Tool] | tuple[Tool, ...] = ()):
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.add(tool)

    def add(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} registered twice")
        self._tools[tool.name] = tool

    def tools(self) -> list[Tool]:
        """Every tool registered (the assistant's toolbox builds its own audited registry)."""
        return builtins_list(self._tools.values())

    def list(self, lang: str = "en") -> list[dict[str, Any]]:
        return [t.describe(lang) for t in self._tools.values() if scopes.listed(t)]

    def call(self, address: str, name: str, arguments: Any) -> dict[str, Any]:
        """The ``tools/call`` result for ``name``: ``UnknownTool`` when there is none; invalid
        arguments and ``ToolFailed`` become a result with ``isError`` (the 2025-11-25 rule: the
        model can read and correct them), never a crash. A tool out of the token's scopes
        raises ``scopes.InsufficientScope`` (the transport's 403 step-up challenge)."""
        tool = self._tools.get(name)
        if tool is None:
            raise UnknownTool(name)
        scopes.require(tool)
        try:
            validate(tool.input_schema, {} if arguments is None else arguments)
            out = tool.run(address, dict(arguments or {}))
        except InvalidArguments as exc:
            return error_result(str(exc), INVALID)
        except ToolFailed as exc:
            return error_result(str(exc), exc.kind)
        return {"content": [{"type": "text", "text": tool.text(out)}], "structuredContent": out, "isError": False}
