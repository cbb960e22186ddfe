"""Tool calls through the OpenAI-compatible API with the official ``openai`` client, on tiny
random-weight GGUFs whose chat templates are those of three families: ChatML without tools
(no known syntax), a Qwen-style template (``<tool_call>`` tags) and a Llama-3-style one (bare JSON
with "parameters"). With ``tool_choice="required"`` llama.cpp's grammar (gk.ai.toolcalls) makes
even the random model write one valid call in its family's syntax, and GK parses it back into
``tool_calls`` — in one response and streamed."""

from __future__ import annotations

import json
import shutil

import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("llama_cpp", reason="the `ai` extra is not installed (make setup installs it)")

from support import tinygguf  # noqa: E402
from support.gkserver import gk  # noqa: E402

USER = "alice@test.example"

QWEN_TEMPLATE = (
    "{% if tools %}<|im_start|>system\nYou may call one or more functions. For each call, return a JSON object "
    'inside <tool_call></tool_call> tags: <tool_call>{"name": ..., "arguments": ...}</tool_call>\n'
    "{% for t in tools %}{{ t | tojson }}\n{% endfor %}<|im_end|>\n{% endif %}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + (message['content'] or '') + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA3_TEMPLATE = (
    "{% for message in messages %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{{ message['content'] or '' }}<|eot_id|>{% endfor %}"
    '{% if tools %}Respond with a JSON object {"name": function name, "parameters": its arguments}.'
    "{% for t in tools %}{{ t | tojson }}{% endfor %}{% endif %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "file_mail",
            "description": "Move a mail to a folder",
            "parameters": {
                "type": "object",
                "properties": {"folder": {"enum": ["inbox", "bills"]}, "flag": {"type": "boolean"}},
                "required": ["folder", "flag"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "set_light",
            "description": "Turn a light on or off",
            "parameters": {
                "type": "object",
                "properties": {"room": {"enum": ["kitchen", "garden"]}, "on": {"type": "boolean"}},
                "required": ["room", "on"],
                "additionalProperties": False,
            },
        },
    },
]
MESSAGES = [{"role": "user", "content": "file the electricity bill and light the garden"}]
MODELS = ("tiny.gguf", "tiny-qwen.gguf", "tiny-llama3.gguf")


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_gguf):
    from support.gkserver import GKServer

    from gk import claim

    tmp = tmp_path_factory.mktemp("tools")
    srv = GKServer(tmp / "gk", {"ai": {"context_size": 2048, "threads": 1}})
    srv.write_config()
    models = srv.data_dir / "models"
    models.mkdir()
    shutil.copy(tiny_gguf, models / "tiny.gguf")
    tinygguf.write(models / "tiny-qwen.gguf", chat_template=QWEN_TEMPLATE)
    tinygguf.write(models / "tiny-llama3.gguf", chat_template=LLAMA3_TEMPLATE)
    srv.add_user(USER, "correct horse battery")
    claim.complete(srv.data_dir)
    srv.token = gk(srv.data_dir, "token", "add", USER).stdout.strip()
    srv.start(wait=120)
    yield srv
    srv.stop()


def client(srv):
    base = f"http://127.0.0.1:{srv.port('http.port')}/v1"
    return openai.OpenAI(base_url=base, api_key=srv.token, max_retries=0, timeout=180)


def check_call(call) -> None:
    assert call.type == "function" and call.id.startswith("call_")
    args = json.loads(call.function.arguments)
    if call.function.name == "file_mail":
        assert args["folder"] in ("inbox", "bills") and isinstance(args["flag"], bool)
    else:
        assert call.function.name == "set_light"
        assert args["room"] in ("kitchen", "garden") and isinstance(args["on"], bool)


@pytest.mark.parametrize("model", MODELS)
def test_required_gives_a_valid_call_in_every_family(server, model):
    out = client(server).chat.completions.create(
        model=model, messages=MESSAGES, tools=TOOLS, tool_choice="required", max_tokens=400, seed=7
    )
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    assert len(choice.message.tool_calls) == 1
    check_call(choice.message.tool_calls[0])


@pytest.mark.parametrize("model", MODELS)
def test_required_streamed(server, model):
    stream = client(server).chat.completions.create(
        model=model, messages=MESSAGES, tools=TOOLS, tool_choice="required", max_tokens=400, seed=8, stream=True
    )
    chunks = list(stream)
    calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert len(calls) == 1 and chunks[-1].choices[0].finish_reason == "tool_calls"
    check_call(calls[0])


def test_a_call_and_its_result_go_back_to_the_model(server):
    """A follow-up turn carrying the assistant's call and the tool's result (rendered by the
    model's template) is accepted and answered."""
    first = client(server).chat.completions.create(
        model="tiny-qwen.gguf", messages=MESSAGES, tools=TOOLS, tool_choice="required", max_tokens=400, seed=9
    )
    call = first.choices[0].message.tool_calls[0]
    follow = [
        *MESSAGES,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": '{"ok": true}'},
    ]
    out = client(server).chat.completions.create(model="tiny-qwen.gguf", messages=follow, max_tokens=8, seed=1)
    assert out.choices[0].message.role == "assistant"


def test_auto_with_a_model_that_writes_text_returns_text(server):
    out = client(server).chat.completions.create(
        model="tiny.gguf", messages=MESSAGES, tools=TOOLS, max_tokens=12, seed=3
    )
    choice = out.choices[0]
    assert choice.message.tool_calls is None and choice.message.content
    assert choice.finish_reason in ("stop", "length")


def test_tool_choice_none_offers_no_tools(server):
    out = client(server).chat.completions.create(
        model="tiny-qwen.gguf", messages=MESSAGES, tools=TOOLS, tool_choice="none", max_tokens=8, seed=3
    )
    assert out.choices[0].message.tool_calls is None
