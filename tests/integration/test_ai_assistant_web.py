"""The assistant's web page against a real ``gk serve`` with the tiny random-weight GGUF: a
conversation's answer streamed as server-sent events, Stop, a browser that goes away, the queue
position of a second user, per-user isolation, rename/search/delete/export, and the page without
a model. The answers are gibberish (random weights) but every path is llama.cpp's real one."""

from __future__ import annotations

import html
import json
import re
import shutil
import time

import pytest

pytest.importorskip("llama_cpp", reason="the `ai` extra is not installed (make setup installs it)")

from test_web_http import NO_MAIL, Client

ALICE, BOB, PW = "alice@test.example", "bob@test.example", "correct horse battery"
MAX_TOKENS = 1500


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from support.gkserver import GKServer

    from gk import claim

    srv = GKServer(
        tmp_path_factory.mktemp("assistant") / "gk",
        {**NO_MAIL, "ai": {"context_size": 4096, "threads": 1, "max_tokens": MAX_TOKENS}},
    )
    srv.write_config()
    (srv.data_dir / "models").mkdir()
    srv.add_user(ALICE, PW, admin=True)
    srv.add_user(BOB, PW)
    claim.complete(srv.data_dir)
    srv.start(wait=120)
    yield srv
    srv.stop()


def login(srv, address: str) -> Client:
    c = Client(srv)
    c.login(address, PW)
    return c


def new_conversation(c: Client, text: str) -> int:
    c.get("/assistant")
    resp, _ = c.post("/assistant/new", {"message": text})
    assert resp.status == 303, resp.status
    return int(resp.headers["Location"].rsplit("/", 1)[1])


class Stream:
    """A server-sent event stream read as a browser's EventSource would, on its own connection."""

    def __init__(self, c: Client, conv: int):
        self.conn = c.connection()
        self.conn.timeout = 120
        self.conn.request("GET", f"/assistant/c/{conv}/stream", headers={"Cookie": c.cookie_header(),
                                                                         "Accept": "text/event-stream"})  # fmt: skip
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200 and self.resp.headers["Content-Type"].startswith("text/event-stream")

    def events(self):
        name, data = "message", []
        while True:
            line = self.resp.fp.readline()
            if not line:
                return
            line = line.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            elif line == "data:":
                data.append("")
            elif not line and (data or name != "message"):
                yield name, "\n".join(data)
                name, data = "message", []

    def close(self):
        self.conn.sock.close()
        self.conn.close()


def until_done(stream: Stream) -> tuple[list[str], str]:
    texts = []
    for name, data in stream.events():
        if name == "text":
            texts.append(data)
        elif name == "done":
            return texts, data
    raise AssertionError("the stream ended without its done event")


def test_without_a_model_the_page_says_so_and_links_to_the_models_page(server):
    alice = login(server, ALICE)
    _, page = alice.get("/assistant")
    assert "No model is installed yet" in page and 'href="/admin/models"' in page
    bob = login(server, BOB)
    _, page = bob.get("/assistant")
    assert "Ask an administrator" in page and 'href="/admin/models"' not in page
    # then the model arrives (the tests below use it)
    shutil.copy(server.tiny, server.data_dir / "models" / "tiny.gguf")
    _, page = alice.get("/assistant")
    assert "No model is installed yet" not in page


@pytest.fixture(autouse=True)
def _tiny(request, server, tiny_gguf):
    """Every test but the first has the model (the first removes it to see the page without one)."""
    server.tiny = tiny_gguf
    model = server.data_dir / "models" / "tiny.gguf"
    if request.node.name.startswith("test_without_a_model"):
        model.unlink(missing_ok=True)
    elif not model.exists():
        shutil.copy(tiny_gguf, model)


def test_an_answer_streams_in_and_is_stored(server):
    alice = login(server, ALICE)
    conv = new_conversation(alice, "Bonjour, **qui** es-tu ?")
    _, page = alice.get(f"/assistant/c/{conv}")
    assert f'sse-connect="/assistant/c/{conv}/stream"' in page and "htmx-ext-sse" in page
    texts, done = until_done(Stream(alice, conv))
    assert len(texts) >= 3, texts[:3]  # streamed in several updates, each the whole answer so far
    assert len(texts[-1]) >= len(texts[0])
    assert '<article class="msg assistant">' in done
    _, page = alice.get(f"/assistant/c/{conv}")
    assert page.count('class="msg user"') == 1 and page.count('class="msg assistant"') == 1
    assert "sse-connect" not in page  # answered: nothing to stream any more
    exported = json.loads(alice.get(f"/assistant/c/{conv}/export")[1])
    assert [m["role"] for m in exported["messages"]] == ["user", "assistant"]
    assert exported["messages"][0]["content"] == "Bonjour, **qui** es-tu ?"
    # the stream of an answered conversation only says it is done
    texts, done = until_done(Stream(alice, conv))
    assert texts == [] and "msg assistant" in done


def test_htmx_send_returns_the_message_and_a_streaming_answer(server):
    alice = login(server, ALICE)
    conv = new_conversation(alice, "")
    resp, frag = alice.request(
        "POST", f"/assistant/c/{conv}/send", {"message": "<script>alert(1)</script> hello", "csrf": alice.csrf},
        headers={"HX-Request": "true"},
    )  # fmt: skip
    assert resp.status == 200
    assert "&lt;script&gt;" in frag and "<script>alert" not in frag
    assert f'sse-connect="/assistant/c/{conv}/stream"' in frag and 'hx-swap-oob="true"' in frag
    # a second question while the first is unanswered is refused until the answer is done
    stream = Stream(alice, conv)
    events = stream.events()
    assert next(e for e in events if e[0] == "text")
    resp, _ = alice.request(
        "POST", f"/assistant/c/{conv}/send", {"message": "again", "csrf": alice.csrf}, headers={"HX-Request": "true"}
    )
    assert resp.status == 409
    resp, _ = alice.request("POST", f"/assistant/c/{conv}/stop", {"csrf": alice.csrf})
    assert resp.status == 204
    done = next(data for name, data in events if name == "done")
    assert "Stopped." in done
    stored = json.loads(alice.get(f"/assistant/c/{conv}/export")[1])["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant"] and stored[1]["content"]


def test_a_browser_that_goes_away_stops_the_generation(server):
    alice = login(server, ALICE)
    conv = new_conversation(alice, "tell me a long story")
    stream = Stream(alice, conv)
    seen = 0
    for name, _ in stream.events():
        seen += name == "text"
        if seen == 3:
            break
    stream.close()
    deadline = time.monotonic() + 90
    found = []
    while time.monotonic() < deadline and not found:
        found = re.findall(
            r"ai: request \d+ cancelled: \d+ token\(s\) read, (\d+) sampled in [\d.]+ s, \d+ in the context"
            r" \((\d+) after the cancel\)",
            server.log(),
        )
        time.sleep(0.2)
    assert found, server.log()[-3000:]
    left = re.findall(r"assistant: the browser left conversation (\d+) after \d+ chunk", server.log())
    assert left and int(left[-1]) == conv
    sampled, after_cancel = int(found[-1][0]), int(found[-1][1])
    assert sampled < MAX_TOKENS
    assert after_cancel <= 3, found[-1]  # stopped within a token or two of the browser leaving
    stored = json.loads(alice.get(f"/assistant/c/{conv}/export")[1])["messages"]
    assert stored[-1]["role"] == "assistant"  # what was written is kept


def test_a_second_user_sees_the_queue_position(server):
    alice, bob = login(server, ALICE), login(server, BOB)
    first = new_conversation(alice, "a long answer please")
    second = new_conversation(bob, "and me?")
    a = Stream(alice, first)
    a_events = a.events()
    assert next(e for e in a_events if e[0] == "text")  # alice's answer is being generated
    b = Stream(bob, second)
    b_events = b.events()
    status = next(data for name, data in b_events if name == "status" and data)
    assert "1 answer(s) before yours" in status
    alice.request("POST", f"/assistant/c/{first}/stop", {"csrf": alice.csrf})
    assert "Stopped." in next(data for name, data in a_events if name == "done")
    # then bob's turn: the waiting line is cleared and his answer streams
    rest = []
    for name, data in b_events:
        rest.append((name, data))
        if name == "text":
            break
    assert ("status", "") in rest
    bob.request("POST", f"/assistant/c/{second}/stop", {"csrf": bob.csrf})
    assert next(data for name, data in b_events if name == "done")


def test_conversations_are_their_owners_only(server):
    alice, bob = login(server, ALICE), login(server, BOB)
    conv = new_conversation(alice, "secret plans for the garden")
    for method, path in (
        ("GET", f"/assistant/c/{conv}"),
        ("GET", f"/assistant/c/{conv}/stream"),
        ("GET", f"/assistant/c/{conv}/export"),
        ("POST", f"/assistant/c/{conv}/rename"),
        ("POST", f"/assistant/c/{conv}/delete"),
        ("POST", f"/assistant/c/{conv}/send"),
        ("POST", f"/assistant/c/{conv}/stop"),
    ):
        bob.get("/assistant")
        resp, _ = bob.request(
            method, path, {"csrf": bob.csrf, "title": "mine", "message": "x"} if method == "POST" else None
        )
        assert resp.status == 404, (method, path, resp.status)
    _, page = bob.get("/assistant?q=garden")
    assert "secret plans" not in page
    # and without the CSRF token even the owner changes nothing
    resp, _ = alice.request("POST", f"/assistant/c/{conv}/delete", {})
    assert resp.status == 403
    assert alice.get(f"/assistant/c/{conv}")[0].status == 200


def test_rename_search_export_delete(server):
    alice = login(server, ALICE)
    conv = new_conversation(alice, "recette de la tarte aux pommes")
    alice.get(f"/assistant/c/{conv}")
    resp, _ = alice.post(f"/assistant/c/{conv}/rename", {"title": "Tarte"})
    assert resp.status == 303
    _, page = alice.get("/assistant?q=pommes")
    assert f'href="/assistant/c/{conv}"' in page and "Tarte" in page
    _, page = alice.get("/assistant?q=zzz-nothing")
    assert f'href="/assistant/c/{conv}"' not in page and "No conversation matches." in page
    resp, md = alice.get(f"/assistant/c/{conv}/export?format=md")
    assert resp.headers["Content-Disposition"].startswith("attachment") and md.startswith("# Tarte")
    alice.get(f"/assistant/c/{conv}")
    resp, _ = alice.post(f"/assistant/c/{conv}/delete", {})
    assert resp.status == 303
    assert alice.get(f"/assistant/c/{conv}")[0].status == 404


def test_the_page_in_french(server):
    alice = login(server, ALICE)
    conv = new_conversation(alice, "bonjour")
    _, page = alice.request("GET", f"/assistant/c/{conv}", headers={"Accept-Language": "fr"})
    assert "Nouvelle conversation" in page and "Arrêter" in page and "Envoyer" in page
    _, page = alice.request("GET", "/admin/models", headers={"Accept-Language": "fr"})
    assert "Modèles de l'assistant" in html.unescape(page)


def test_models_page_lists_the_catalogue_and_switches_models(server):
    alice = login(server, ALICE)
    _, page = alice.get("/admin/models")
    assert "Llama 3.2 3B Instruct" in page and "tiny.gguf" in page
    shutil.copy(server.tiny, server.data_dir / "models" / "other.gguf")
    alice.get("/admin/models")
    resp, _ = alice.post("/admin/models/use", {"file": "other.gguf"})
    assert resp.status == 303
    _, page = alice.get("/admin/models")
    assert re.search(r"other\.gguf\s*<strong>in use</strong>", page)
    resp, page = alice.post("/admin/models/remove", {"file": "other.gguf"})
    assert resp.status == 200 and "Removed other.gguf." in page
    assert not (server.data_dir / "models" / "other.gguf").exists()
    bob = login(server, BOB)
    assert bob.get("/admin/models")[0].status == 403


def logged_request(server, since: int) -> tuple[int, int, int]:
    """(tokens read, sampled, in the context after) of the first request logged after ``since``."""
    deadline = time.monotonic() + 60
    while True:
        found = re.findall(
            r"ai: request \d+ \w+: (\d+) token\(s\) read, (\d+) sampled in [\d.]+ s, (\d+) in the context",
            server.log()[since:],
        )
        if found:
            return int(found[0][0]), int(found[0][1]), int(found[0][2])
        assert time.monotonic() < deadline, server.log()[since:][-2000:]
        time.sleep(0.2)


def test_the_second_turn_reads_only_its_new_tokens(server):
    """KV reuse across turns: the history is sent again verbatim after the same system prompt, so
    llama.cpp's prefix match spares re-reading it (the runtime logs the tokens it evaluated and
    the context's length). The first prompt (system prompt and first question) is not read again;
    the first answer may be (the random model's sampled tokens are not always how its text
    tokenizes again), as may the new question."""
    alice = login(server, ALICE)
    conv = new_conversation(alice, "first question")
    mark = len(server.log())
    stream = Stream(alice, conv)
    events = stream.events()
    for _ in range(40):  # a first answer of some length (stopped: the context holds 2,048 tokens)
        assert next(e for e in events if e[0] == "text")
    alice.request("POST", f"/assistant/c/{conv}/stop", {"csrf": alice.csrf})
    assert next(data for name, data in events if name == "done")
    read1, sampled1, context1 = logged_request(server, mark)
    assert sampled1 >= 40  # the history the second turn must not re-read
    alice.get(f"/assistant/c/{conv}")
    alice.request("POST", f"/assistant/c/{conv}/send", {"message": "second question", "csrf": alice.csrf},
                  headers={"HX-Request": "true"})  # fmt: skip
    mark = len(server.log())
    stream = Stream(alice, conv)
    events = stream.events()
    assert next(e for e in events if e[0] == "text")
    alice.request("POST", f"/assistant/c/{conv}/stop", {"csrf": alice.csrf})
    assert next(data for name, data in events if name == "done")
    read2, sampled2, context2 = logged_request(server, mark)
    prompt1 = context1 - sampled1  # the first prompt: the system prompt and the first question
    reused = context2 - read2  # tokens of the second prompt that were already in the context
    assert reused >= prompt1 > 100, (read1, sampled1, context1, read2, sampled2, context2)


def test_deleting_a_conversation_while_it_is_answered(server):
    alice = login(server, ALICE)
    conv = new_conversation(alice, "write until I delete you")
    stream = Stream(alice, conv)
    events = stream.events()
    assert next(e for e in events if e[0] == "text")
    alice.get(f"/assistant/c/{conv}")
    resp, _ = alice.post(f"/assistant/c/{conv}/delete", {})
    assert resp.status == 303
    assert next(name for name, _ in events if name == "done")  # the answer stops, the stream ends cleanly
    assert alice.get(f"/assistant/c/{conv}")[0].status == 404
    assert "Traceback" not in server.log()


def test_a_conversation_longer_than_the_context_leaves_its_oldest_turn_out_and_says_so(server):
    """Issue 14 item 5: a conversation that outgrew the context is answered from its latest turns
    (the oldest are left out, and the note says so) instead of ending in an error."""
    alice = login(server, ALICE)
    # the tiny model: 2,048 tokens of context, about a token a character, ~1,160 of system prompt
    conv = new_conversation(alice, "bonjour the mail box " * 20)  # ~420 tokens: fits
    events = Stream(alice, conv).events()
    assert next(e for e in events if e[0] == "text")
    alice.request("POST", f"/assistant/c/{conv}/stop", {"csrf": alice.csrf})
    assert next(data for name, data in events if name == "done")
    alice.get(f"/assistant/c/{conv}")
    alice.request("POST", f"/assistant/c/{conv}/send", {"message": "hello value name " * 30, "csrf": alice.csrf},
                  headers={"HX-Request": "true"})  # fmt: skip  # ~510 more: over
    events = Stream(alice, conv).events()
    first = next(e for e in events if e[0] in ("text", "done"))
    assert first[0] == "text", first  # an answer, not the error that ended the conversation
    alice.request("POST", f"/assistant/c/{conv}/stop", {"csrf": alice.csrf})
    done = next(data for name, data in events if name == "done")
    assert "oldest messages were left out" in done and "too long for the model" not in done
    # the stored conversation keeps every message: only the model's prompt left the first turn out
    exported = json.loads(alice.get(f"/assistant/c/{conv}/export")[1])
    assert [m["role"] for m in exported["messages"]][:3] == ["user", "assistant", "user"]
