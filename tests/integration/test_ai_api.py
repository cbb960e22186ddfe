"""The OpenAI-compatible API of a real ``gk serve``, driven by the official ``openai`` client.

The model is the tiny random-weight GGUF the tests generate (gibberish, but llama.cpp's real
load, sampling, streaming and grammar paths); the token is made with the real ``gk token add``.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import time
import urllib.error
import urllib.request

import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("llama_cpp", reason="the `ai` extra is not installed (make setup installs it)")

from support.gkserver import gk  # noqa: E402

USER = "alice@test.example"


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_gguf):
    from support.gkserver import GKServer

    from gk import claim

    base = tmp_path_factory.mktemp("ai")
    cat = base / "catalogue.toml"  # the tiny model as a catalogue entry: its id is a model name too
    cat.write_text(
        '[[model]]\nid = "tiny-chat"\nname = "Tiny"\nrepo = "t/t"\ncommit = ""\nfile = "tiny.gguf"\nsize = 0\n'
        'approx_mb = 1\nsha256 = ""\nlicence = "MIT"\nram_class = 1\nram_mb = 64\nchat_format = "chatml"\n'
        'tool_format = "template"\ngood = true\n'
    )
    srv = GKServer(base / "gk", {"ai": {"context_size": 2048, "threads": 1, "catalogue": str(cat)}})
    srv.write_config()
    (srv.data_dir / "models").mkdir()
    shutil.copy(tiny_gguf, srv.data_dir / "models" / "tiny.gguf")
    srv.add_user(USER, "correct horse battery")
    claim.complete(srv.data_dir)  # past the first-boot wizard
    srv.token = gk(srv.data_dir, "token", "add", USER, "--label", "tests").stdout.strip()
    srv.start(wait=120)
    yield srv
    srv.stop()


def client(srv, token: str | None = None):
    base = f"http://127.0.0.1:{srv.port('http.port')}/v1"
    return openai.OpenAI(base_url=base, api_key=token or srv.token, max_retries=0, timeout=120)


# no end of turn, no lone UTF-8 bytes: a long generation runs to max_tokens
LONG = {str(i): -100 for i in [0, 1, 2, 3, 4, *range(5 + 0x80, 5 + 0x100)]}
MESSAGES = [{"role": "system", "content": "Tu es l'assistant de la maison."}, {"role": "user", "content": "hello"}]


def test_token_is_printed_once_and_listed_without_its_value(server):
    assert server.token.startswith("gk-") and len(server.token) > 40
    listing = gk(server.data_dir, "token", "list").stdout
    assert USER in listing and "tests" in listing and server.token not in listing
    assert server.token.encode() not in (server.data_dir / "ai.sqlite3").read_bytes()


def test_models_lists_the_gguf_files(server):
    ids = [m.id for m in client(server).models.list().data]
    assert ids == ["tiny.gguf"]


def test_chat_completion(server):
    out = client(server).chat.completions.create(model="tiny.gguf", messages=MESSAGES, max_tokens=16, seed=11)
    assert out.object == "chat.completion" and out.model == "tiny.gguf"
    assert out.choices[0].message.role == "assistant" and out.choices[0].message.content
    assert out.choices[0].finish_reason in ("stop", "length")
    assert 0 < out.usage.completion_tokens <= 16
    again = client(server).chat.completions.create(model="tiny.gguf", messages=MESSAGES, max_tokens=16, seed=11)
    assert again.choices[0].message.content == out.choices[0].message.content


def test_streaming(server):
    stream = client(server).chat.completions.create(
        model="tiny.gguf", messages=MESSAGES, max_tokens=24, seed=11, stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) > 3 and text
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    same = client(server).chat.completions.create(model="tiny.gguf", messages=MESSAGES, max_tokens=24, seed=11)
    assert same.choices[0].message.content == text


def test_json_schema_output_parses(server):
    schema = {
        "type": "object",
        "properties": {"urgent": {"type": "boolean"}, "folder": {"enum": ["inbox", "bills", "family"]}},
        "required": ["urgent", "folder"],
        "additionalProperties": False,
    }
    out = client(server).chat.completions.create(
        model="tiny.gguf",
        messages=[{"role": "user", "content": "classify this mail"}],
        max_tokens=200,
        seed=3,
        response_format={"type": "json_schema", "json_schema": {"name": "triage", "schema": schema, "strict": True}},
    )
    data = json.loads(out.choices[0].message.content)
    assert isinstance(data["urgent"], bool) and data["folder"] in ("inbox", "bills", "family")


def test_bad_token_is_401(server):
    with pytest.raises(openai.AuthenticationError) as err:
        client(server, token="gk-not-a-real-token").models.list()
    assert err.value.status_code == 401
    with pytest.raises(openai.AuthenticationError):
        client(server, token="gk-nope").chat.completions.create(model="tiny.gguf", messages=MESSAGES)


def test_a_catalogue_id_names_its_installed_file(server):
    """What `gk ai models` lists and `gk ai use` takes works as the API's model name too."""
    answer = client(server).chat.completions.create(model="tiny-chat", messages=MESSAGES, max_tokens=2)
    assert answer.model == "tiny.gguf" and answer.choices[0].message.role == "assistant"


def test_unknown_model_is_404(server):
    with pytest.raises(openai.NotFoundError) as err:
        client(server).chat.completions.create(model="gpt-5", messages=MESSAGES, max_tokens=4)
    assert err.value.status_code == 404 and "gpt-5" in err.value.message


def post_raw(srv, body: bytes, token: str | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{srv.port('http.port')}/v1/chat/completions",
        data=body,
        headers={"Authorization": f"Bearer {token or srv.token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "tiny.gguf", "messages": [',
        b"\xff\xfe not json",
        b'["a", "list"]',
        b'{"model": "tiny.gguf", "messages": "hello"}',
        b'{"model": "tiny.gguf", "messages": [{"role": "wizard", "content": "x"}]}',
        b'{"model": "tiny.gguf", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}',
    ],
)
def test_malformed_requests_are_400(server, body):
    status, reply = post_raw(server, body)
    assert status == 400 and reply["error"]["message"]


def test_oversize_prompt_is_a_clear_error(server):
    long = [{"role": "user", "content": "bonjour " * 3000}]
    with pytest.raises(openai.BadRequestError) as err:
        client(server).chat.completions.create(model="tiny.gguf", messages=long, max_tokens=8)
    assert err.value.code == "context_length_exceeded" and "context window of 2048" in err.value.message
    # the server still answers afterwards
    assert client(server).chat.completions.create(model="tiny.gguf", messages=MESSAGES, max_tokens=2)


def test_client_gone_mid_stream_stops_the_generation(server):
    body = json.dumps(
        {"model": "tiny.gguf", "messages": MESSAGES, "max_tokens": 1500, "stream": True, "logit_bias": LONG}
    ).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {server.token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port("http.port")), timeout=120) as s:
        s.sendall(head + body)
        seen = b""
        while seen.count(b"data: ") < 3:
            data = s.recv(4096)
            assert data, seen
            seen += data
        assert b" 200 " in seen.split(b"\r\n", 1)[0]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.findall(r"ai: request \d+ cancelled: \d+ token\(s\) read, (\d+) sampled", server.log())
        if found:
            break
        time.sleep(0.2)
    assert found, server.log()[-2000:]
    assert int(found[-1]) < 1500  # stopped when the writes failed, not at max_tokens


def test_revoked_token_is_refused_and_status_shows_the_model(server):
    other = gk(server.data_dir, "token", "add", USER, "--label", "to revoke").stdout.strip()
    assert [m.id for m in client(server, token=other).models.list().data] == ["tiny.gguf"]
    token_id = next(
        line.split("\t")[0] for line in gk(server.data_dir, "token", "list").stdout.splitlines() if "to revoke" in line
    )
    assert "revoked" in gk(server.data_dir, "token", "del", token_id).stdout
    with pytest.raises(openai.AuthenticationError):
        client(server, token=other).models.list()
    assert gk(server.data_dir, "token", "add", "nobody@test.example", check=False).returncode == 1
    status = gk(server.data_dir, "ai", "status").stdout
    assert "* tiny.gguf: llama" in status and "fits" in status


def test_a_model_too_big_for_the_memory_is_refused_with_the_numbers(make_server, tiny_gguf):
    from gk import claim

    srv = make_server("small-box", {"ai": {"min_free_mb": 50_000_000, "threads": 1}})
    srv.write_config()
    (srv.data_dir / "models").mkdir()
    shutil.copy(tiny_gguf, srv.data_dir / "models" / "tiny.gguf")
    srv.add_user(USER, "correct horse battery")
    claim.complete(srv.data_dir)
    token = gk(srv.data_dir, "token", "add", USER).stdout.strip()
    srv.start(wait=120)
    with pytest.raises(openai.InternalServerError) as err:
        client(srv, token).chat.completions.create(model="tiny.gguf", messages=MESSAGES, max_tokens=4)
    assert err.value.status_code == 503 and err.value.code == "insufficient_memory"
    assert re.search(r"needs about \d+ MiB of memory but only \d+ MiB is available", err.value.message)
    assert srv.proc.poll() is None  # refused, not killed


def test_forced_tool_call_has_arguments_matching_the_schema(server):
    tool = {
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
    }
    out = client(server).chat.completions.create(
        model="tiny.gguf",
        messages=[{"role": "user", "content": "file the electricity bill"}],
        tools=[tool],
        tool_choice={"type": "function", "function": {"name": "file_mail"}},
        max_tokens=200,
        seed=5,
    )
    call = out.choices[0].message.tool_calls[0]
    assert call.function.name == "file_mail"
    args = json.loads(call.function.arguments)
    assert args["folder"] in ("inbox", "bills") and isinstance(args["flag"], bool)
    with pytest.raises(openai.BadRequestError):
        client(server).chat.completions.create(
            model="tiny.gguf",
            messages=MESSAGES,
            tools=[tool],
            tool_choice={"type": "function", "function": {"name": "x"}},
        )
