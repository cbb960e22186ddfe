"""Tool calls read back from a model's text, per model family, and the grammar that forces one.

A GGUF's chat template renders the ``tools`` into the prompt, but what the model writes back is
text in its family's own syntax, which llama-cpp-python does not parse:

- **qwen** (Qwen2.5, Qwen3, and Hermes-style templates): ``<tool_call>\\n{"name": …, "arguments": {…}}\\n</tool_call>``,
  possibly several, possibly after some text;
- **llama3** (Llama 3.1/3.2): the whole answer is one JSON object ``{"name": …, "parameters": {…}}``
  (sometimes after ``<|python_tag|>``, several separated by ``;``);
- **none**: a family without a documented syntax; a bare ``{"name", "arguments"}`` object is still
  recognised.

``family`` picks it from the catalogue's ``tool_format`` or, for another GGUF, from its chat
template. ``parse`` returns the text left and the calls (only of tools that were offered, with
arguments that are a JSON object). ``grammar`` is the constrained fallback: a llama.cpp GBNF
grammar that admits exactly one call, in the family's syntax, whose name is one of the tools and
whose arguments follow that tool's JSON schema (llama.cpp's own schema converter), so even a
model that never learnt tools (or the tests' random one) produces a valid call when a call is
required.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

FAMILIES = ("qwen", "llama3", "none")
QWEN_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)


def family(chat_template: str, hint: str = "") -> str:
    """The tool-call syntax of a model: the catalogue's ``hint`` when it names one, else its template's."""
    if hint in FAMILIES:
        return hint
    if "<tool_call>" in chat_template:
        return "qwen"
    if "<|python_tag|>" in chat_template or ("<|start_header_id|>" in chat_template and "parameters" in chat_template):
        return "llama3"
    return "none"


def _call(obj: Any, names: set[str] | None) -> dict[str, Any] | None:
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not obj["name"]:
        return None
    if names is not None and obj["name"] not in names:
        return None
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):  # some models write the arguments as a JSON string
        try:
            args = json.loads(args)
        except ValueError:
            return None
    if not isinstance(args, dict):
        return None
    return {"name": obj["name"], "arguments": args}


def _objects(text: str) -> Iterable[Any]:
    """The JSON values in ``text``, one after another (separated by spaces, ``;`` or newlines)."""
    decoder = json.JSONDecoder()
    i = 0
    while i < len(text):
        while i < len(text) and text[i] in " \t\r\n;":
            i += 1
        if i >= len(text):
            return
        try:
            value, i = decoder.raw_decode(text, i)
        except ValueError:
            yield None  # not JSON all the way
            return
        yield value


def parse(text: str, fam: str, names: Iterable[str] | None) -> tuple[str, list[dict[str, Any]]]:
    """(text outside the calls, the calls as ``{"name", "arguments": dict}``) in ``text``; ``names``
    None accepts any tool name (the web assistant shows a call it cannot run)."""
    wanted = set(names) if names is not None else None
    if fam == "qwen" or "<tool_call>" in text:
        calls = []
        for m in QWEN_CALL.finditer(text):
            for obj in _objects(m.group(1)):
                call = _call(obj, wanted)
                if call is not None:
                    calls.append(call)
        if calls:
            return QWEN_CALL.sub("", text).strip(), calls
    body = text.strip().removeprefix("<|python_tag|>").strip()
    if body.startswith("{") and (fam != "none" or wanted is not None):
        objs = list(_objects(body))
        calls = [c for c in (_call(o, wanted) for o in objs) if c is not None]
        if calls and len(calls) == len(objs):  # the whole answer is calls, nothing else
            return "", calls
    return text, []


def model_family(data_dir: Path, model: str, catalogue_path: str = "") -> str:
    """The tool-call family of an installed model: its catalogue entry's, else its template's."""
    from gk.ai import models

    path = models.resolve(data_dir, model)
    if path is None:
        return "none"
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return "none"
    return _file_family(str(path), stamp, catalogue_path)


@lru_cache(maxsize=8)
def _file_family(path: str, stamp: int, catalogue_path: str) -> str:
    """``model_family`` of one version of a file (its header is read once, not per page)."""
    from gk.ai import catalogue, models

    try:
        template = models.inspect(Path(path)).chat_template
    except models.ModelError:
        template = ""
    try:
        entry = catalogue.find(catalogue.cached(catalogue_path), Path(path).name)
    except catalogue.CatalogueError:
        entry = None
    return family(template, entry.tool_format if entry else "")


def openai_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The calls in the shape of OpenAI's ``message.tool_calls``."""
    return [
        {
            "id": "call_" + secrets.token_hex(12),
            "type": "function",
            "function": {"name": c["name"], "arguments": json.dumps(c["arguments"], ensure_ascii=False)},
        }
        for c in calls
    ]


def _call_schema(tools: list[dict[str, Any]], key: str) -> dict[str, Any]:
    alternatives = []
    for t in tools:
        fn = t["function"]
        alternatives.append(
            {
                "type": "object",
                "properties": {"name": {"const": fn["name"]}, key: fn.get("parameters") or {"type": "object"}},
                "required": ["name", key],
                "additionalProperties": False,
            }
        )
    return alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}


def grammar(tools: list[dict[str, Any]], fam: str) -> str:
    """A GBNF grammar for exactly one call of one of ``tools``, written in ``fam``'s syntax."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    key = "parameters" if fam == "llama3" else "arguments"
    body = json_schema_to_gbnf(json.dumps(_call_schema(tools, key)))
    body = re.sub(r"^root ::=", "gk-call ::=", body, flags=re.M)
    if fam == "qwen":
        return 'root ::= "<tool_call>\\n" gk-call "\\n</tool_call>"\n' + body
    return "root ::= gk-call\n" + body
