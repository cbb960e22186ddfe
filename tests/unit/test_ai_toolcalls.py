"""Tool calls read back per model family (gk.ai.toolcalls), on the text real models write."""

from __future__ import annotations

import json

import pytest

from gk.ai import toolcalls

NAMES = ["get_weather", "send_mail"]

# what Qwen2.5-Instruct writes (its template's instructions: <tool_call> tags around a JSON object)
QWEN = 'I will check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Lyon", "unit": "c"}}\n</tool_call>'
QWEN_TWO = (
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Lyon"}}\n</tool_call>\n'
    '<tool_call>\n{"name": "send_mail", "arguments": {"to": "a@b.example"}}\n</tool_call>'
)
# what Llama 3.2 Instruct writes: the whole answer one JSON object with "parameters"
LLAMA = '{"name": "get_weather", "parameters": {"city": "Paris"}}'
LLAMA_TAG = '<|python_tag|>{"name": "send_mail", "parameters": {"to": "x@y.example"}}; {"name": "get_weather", "parameters": {}}'


def test_qwen_calls_and_the_text_before_them():
    text, calls = toolcalls.parse(QWEN, "qwen", NAMES)
    assert text == "I will check."
    assert calls == [{"name": "get_weather", "arguments": {"city": "Lyon", "unit": "c"}}]
    assert [c["name"] for c in toolcalls.parse(QWEN_TWO, "qwen", NAMES)[1]] == ["get_weather", "send_mail"]


def test_llama3_json_calls():
    assert toolcalls.parse(LLAMA, "llama3", NAMES) == ("", [{"name": "get_weather", "arguments": {"city": "Paris"}}])
    _, calls = toolcalls.parse(LLAMA_TAG, "llama3", NAMES)
    assert [c["name"] for c in calls] == ["send_mail", "get_weather"]


@pytest.mark.parametrize(
    "text",
    [
        "The weather in Lyon is sunny.",
        '{"name": "rm_rf", "parameters": {}}',  # not an offered tool
        '{"name": "get_weather", "parameters": "not json"}',
        '{"name": "get_weather", "parameters": {}} and then some prose',
        "<tool_call>\n{not json}\n</tool_call>",
        '{"temperature": 21}',
    ],
)
def test_text_that_is_not_a_call_stays_text(text):
    for fam in toolcalls.FAMILIES:
        assert toolcalls.parse(text, fam, NAMES) == (text, [])


def test_family_from_the_catalogue_or_the_template():
    assert toolcalls.family("{{ '<tool_call>' }}") == "qwen"
    assert toolcalls.family("<|start_header_id|>ipython ... parameters") == "llama3"
    assert toolcalls.family("<|im_start|>") == "none"
    assert toolcalls.family("<tool_call>", hint="llama3") == "llama3"


def test_openai_shape():
    (call,) = toolcalls.openai_calls([{"name": "get_weather", "arguments": {"city": "Nîmes"}}])
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert json.loads(call["function"]["arguments"]) == {"city": "Nîmes"}


def test_the_grammar_is_in_the_family_syntax():
    pytest.importorskip("llama_cpp")
    from llama_cpp import LlamaGrammar

    tools = [{"type": "function", "function": {"name": n, "parameters": {"type": "object", "properties": {}}}}
             for n in NAMES]  # fmt: skip
    for fam in toolcalls.FAMILIES:
        g = toolcalls.grammar(tools, fam)
        assert g.startswith("root ::=") and LlamaGrammar.from_string(g, verbose=False)
    assert "<tool_call>" in toolcalls.grammar(tools, "qwen") and "parameters" in toolcalls.grammar(tools, "llama3")
