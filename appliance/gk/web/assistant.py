"""The assistant in the web UI: each user's conversations, and answers streamed as they are written.

Pages: ``/assistant`` (the conversations, newest first, with search and a box to start one),
``/assistant/c/<id>`` (one conversation). Sending a message stores it and answers with the
message and an empty answer bubble that opens a server-sent event stream
(``/assistant/c/<id>/stream``, htmx's SSE extension: no script of ours, nothing inline, the CSP
stays ``script-src 'self'``). The answer is generated *inside* that stream: the request to the
runtime is made when the browser connects and cancelled when it goes away (the server's next
write fails: pywsgi closes the generator, which cancels; the runtime stops at its next token),
so a closed tab stops the work. While another user's answer runs, the stream says the answer's
place in the queue. ``Stop`` (``/assistant/c/<id>/stop``) cancels the answer; what was written
so far is kept. Each update sends the whole answer so far as sanitized HTML
(``assistant_markdown``), made from the chunks that arrived while the previous update was being
sent (a slow browser gets fewer, larger updates; nothing queues up).

The history sent to the model is the conversation's stored messages after a system prompt in
the reader's language, identical from one turn to the next, so llama.cpp re-reads only the new
turn (the runtime's prefix match / saved KV states). Every conversation is its owner's: another
user's id is a 404, as is a missing one. Forms carry the CSRF token (htmx sends the header).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import bottle

from gk.locale import N_
from gk.web import forms, i18n
from gk.web.app import Web
from gk.web.assistant_markdown import render

if TYPE_CHECKING:
    from gk.ai.runtime import Request
    from gk.ai.service import AIService
    from gk.web.assistant_tools import AnswerTools

log = logging.getLogger("gk.web")

MAX_MESSAGE = 16_000  # characters of one message typed in the page
POLL_SECONDS = 1.0  # the stream wakes at least this often while waiting (queue position, a gone browser)
SSE_EXTENSION = "htmx-ext-sse-2.2.4.js"

SYSTEM_PROMPT = N_(
    "You are the private assistant of this home server. You run on the box itself: nothing the "
    "user writes leaves the house. Answer in English, clearly and briefly; use Markdown for lists, "
    "tables and code. If you do not know, say so."
)


def service(web: Web) -> AIService | None:
    from gk.ai.service import AIService

    return web.ctx.services.maybe(AIService)


def _svc(web: Web) -> AIService:
    svc = service(web)
    if svc is None:
        raise bottle.HTTPError(503, N_("The assistant is turned off on this server."))
    return svc


def system_prompt(lang: str) -> str:
    return i18n.translator(lang)(SYSTEM_PROMPT)


def _owned(web: Web, svc: AIService, conv: int) -> tuple[str, int]:
    address = web.signed_in().address
    cid = conv
    if svc.conversations.get(address, cid) is None:
        raise bottle.HTTPError(404, N_("Not found"))
    return address, cid


def _model_state(web: Web, svc: AIService) -> str:
    """The model the assistant would use ('' when none is installed)."""
    return svc.runtime.default_model()


def _pull_state(svc: AIService) -> Any:
    """While no model is installed: the download under way, else the last one that failed (the
    wizard's choice, started offline, failed without a word on the assistant's page), else None."""
    states = list(svc.pulls.states.values())
    running = [s for s in states if not s.finished]
    failed = [s for s in states if s.finished and s.error]
    shown = running or failed
    return shown[-1] if shown else None


def model_family(svc: AIService) -> str:
    """The tool-call syntax of the model in use (gk.ai.toolcalls), to show its calls as calls."""
    from gk.ai import toolcalls

    return toolcalls.model_family(svc.data_dir, svc.runtime.default_model(), svc.cfg.catalogue)


def render_answer(text: str, fam: str, lang: str, ran: bool = False) -> str:
    """An answer as HTML: its Markdown, and each tool call the model wrote in its family's syntax
    shown as a request, not as raw markup. ``ran``: the calls were run (each one's result is the
    next message, shown there), so only the text around them is rendered here."""
    import html

    from gk.ai import toolcalls

    _ = i18n.translator(lang)
    rest, calls = toolcalls.parse(text, fam, None)
    out = render(rest) if rest.strip() else ""
    if ran:
        return out
    for call in calls:
        args = json.dumps(call["arguments"], ensure_ascii=False, indent=2)
        out += (
            '<div class="tool-call"><p><strong>'
            + html.escape(_("The assistant asked to use the tool {name}:", name=call["name"]))
            + "</strong></p><pre><code>"
            + html.escape(args)
            + '</code></pre><p class="note">'
            + html.escape(_("This tool is not enabled for the assistant: nothing was done."))
            + "</p></div>"
        )
    return out


def render_live(text: str, fam: str, lang: str) -> str:
    """An answer being written: a tool call still being written shows as an ellipsis."""
    cut = text.find("<tool_call>")
    if cut >= 0:
        return (render(text[:cut]) if text[:cut].strip() else "") + '<p class="typing">…</p>'
    return render_answer(text, fam, lang)


def _messages(web: Web, svc: AIService, address: str, cid: int, lang: str) -> list[dict[str, Any]]:
    from gk.web import assistant_tools

    fam = model_family(svc)
    out = []
    for m in svc.conversations.messages(address, cid):
        if m["role"] == "assistant":
            out.append({**m, "html": render_answer(m["content"], fam, lang, bool(m["meta"].get("calls")))})
        elif m["role"] == "tool":
            out.append({**m, "html": assistant_tools.render_call(web, m["meta"], lang)})
        elif m["role"] == "user":
            out.append({**m, "html": ""})
    return out


def index(web: Web) -> str:
    svc = _svc(web)
    address = web.signed_in().address
    query = (bottle.request.query.getunicode("q", "") or "").strip()[:200]
    convs = svc.conversations.search(address, query) if query else svc.conversations.list(address)
    return web.render(
        "assistant/index.html",
        conversations=convs,
        query=query,
        model=_model_state(web, svc),
        pull=_pull_state(svc),
        current=None,
        messages=[],
        sse=SSE_EXTENSION,
        pending=False,
    )


def conversation(web: Web, conv: int) -> str:
    svc = _svc(web)
    address, cid = _owned(web, svc, conv)
    messages = _messages(web, svc, address, cid, web.lang())
    return web.render(
        "assistant/conversation.html",
        conversations=svc.conversations.list(address),
        query="",
        model=_model_state(web, svc),
        pull=_pull_state(svc),
        current=svc.conversations.get(address, cid),
        messages=messages,
        sse=SSE_EXTENSION,
        # the last question has no answer yet (sent from another page, or a reload): answer it now
        pending=bool(messages) and messages[-1]["role"] == "user",
    )


def _message_text() -> str:
    text = forms.raw("message").strip()
    if not text:
        raise bottle.HTTPError(400, N_("Write a message first."))
    if len(text) > MAX_MESSAGE:
        raise bottle.HTTPError(413, N_("This message is too long."))
    return text


def new(web: Web) -> None:
    svc = _svc(web)
    address = web.signed_in().address
    text = forms.raw("message").strip()
    cid = svc.conversations.create(address, model=svc.runtime.default_model())
    if text:
        svc.conversations.add_message(address, cid, "user", _message_text())
    raise bottle.redirect(f"/assistant/c/{cid}", 303)


def send(web: Web, conv: int) -> str:
    svc = _svc(web)
    address, cid = _owned(web, svc, conv)
    if (address, cid) in svc.active:
        raise bottle.HTTPError(409, N_("The assistant is still answering: wait for the answer or stop it."))
    text = _message_text()
    svc.conversations.add_message(address, cid, "user", text)
    if bottle.request.get_header("HX-Request") != "true":
        raise bottle.redirect(f"/assistant/c/{cid}", 303)
    current = svc.conversations.get(address, cid)
    return web.render(
        "assistant/sent.html",
        message={"role": "user", "content": text, "created": time.time()},
        current=current,
    )


def rename(web: Web, conv: int) -> None:
    svc = _svc(web)
    address, cid = _owned(web, svc, conv)
    title = forms.text("title")
    if title:
        svc.conversations.rename(address, cid, title)
    raise bottle.redirect(f"/assistant/c/{cid}", 303)


def delete(web: Web, conv: int) -> None:
    svc = _svc(web)
    address, cid = _owned(web, svc, conv)
    req = svc.active.get((address, cid))
    if req is not None:
        req.cancel()
    svc.conversations.delete(address, cid)
    raise bottle.redirect("/assistant", 303)


def export(web: Web, conv: int) -> str:
    svc = _svc(web)
    address, cid = _owned(web, svc, conv)
    data = svc.conversations.export(address, cid)
    assert data is not None
    fmt = bottle.request.query.get("format", "json")
    name = f"conversation-{cid}"
    if fmt == "md":
        bottle.response.content_type = "text/markdown; charset=utf-8"
        bottle.response.set_header("Content-Disposition", f'attachment; filename="{name}.md"')
        parts = [f"# {data['title'] or name}\n"]
        for m in data["messages"]:
            parts.append(f"## {m['role']}\n\n{m['content']}\n")
        return "\n".join(parts)
    bottle.response.content_type = "application/json"
    bottle.response.set_header("Content-Disposition", f'attachment; filename="{name}.json"')
    return json.dumps(data, ensure_ascii=False, indent=2)


def stop(web: Web, conv: int) -> bottle.HTTPResponse:
    svc = _svc(web)
    address, cid = _owned(web, svc, conv)
    req = svc.active.get((address, cid))
    if req is not None:
        req.cancel()
    return bottle.HTTPResponse(status=204)


# -- the stream -------------------------------------------------------------------------------


def event(name: str, data: str) -> bytes:
    """One server-sent event; each line of ``data`` is its own ``data:`` field (SSE joins them)."""
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {name}\n{lines}\n".encode()


def stream(web: Web, conv: int) -> Iterator[bytes]:
    from gk.web import assistant_tools

    svc = _svc(web)
    address, cid = _owned(web, svc, conv)
    lang = web.lang()
    _ = i18n.translator(lang)
    bottle.response.content_type = "text/event-stream; charset=utf-8"
    bottle.response.set_header("Cache-Control", "no-cache")
    bottle.response.set_header("X-Accel-Buffering", "no")
    history = svc.conversations.messages_for_model(address, cid)
    if not history or history[-1]["role"] != "user":
        return iter([_done(web, svc, address, cid, lang, "")])
    if (address, cid) in svc.active:  # another window of this conversation is being answered
        return iter([_done(web, svc, address, cid, lang, _("This answer is being written in another window."))])
    model = svc.runtime.default_model()
    if not model:
        return iter([_done(web, svc, address, cid, lang, _("No model is installed: an administrator can add one."))])
    fam = model_family(svc)
    tools = assistant_tools.for_answer(web, address, fam)
    params: dict[str, Any] = {
        "messages": [{"role": "system", "content": system_prompt(lang) + tools.prompt}, *history],
        "max_tokens": svc.max_tokens,
    }
    if tools.functions:
        params["tools"] = tools.functions
    return _generate(web, svc, model, params, tools, address, cid, lang, fam)


def _generate(
    web: Web,
    svc: AIService,
    model: str,
    params: dict[str, Any],
    tools: AnswerTools,
    address: str,
    cid: int,
    lang: str,
    fam: str,
) -> Iterator[bytes]:
    """The answer: generated, and while the model calls tools (at most ``assistant_tools.MAX_STEPS``
    rounds), each call run, shown and given back to the model, which then goes on. Every step's
    prompt is the previous one plus what was written and the tool's result, so llama.cpp reads
    only those (the tools offered stay the same for the whole answer: see ``assistant_tools``)."""
    from gk.ai import toolcalls
    from gk.ai.runtime import QueueFull

    _ = i18n.translator(lang)
    text: list[str] = []
    blocks: list[str] = []  # what this answer did so far (its tool calls), shown above the text
    note = ""
    finished = False
    req: Request | None = None
    step = 0
    shortened = False
    try:
        while True:
            step_params = {**params, "messages": list(params["messages"])}
            if grammar := tools.forced_grammar(step, fam):
                step_params["gk_grammar"] = grammar
            try:
                req = svc.runtime.submit(model, step_params, stream=True)
            except QueueFull:
                note = _("Too many questions are waiting: try again in a moment.")
                break
            svc.active[(address, cid)] = req
            text = []
            errors: list[Exception] = []
            note = yield from _one_step(svc, req, text, blocks, lang, fam, errors)
            if _too_long(errors, text) and step == 0 and drop_oldest_turn(params["messages"]):
                shortened = True  # the prompt did not fit: the oldest turn is left out, and it is said
                note = ""
                continue
            answer = "".join(text).strip()
            if note or req.cancelled or not tools.names or step >= tools.max_steps:
                break
            rest, calls = toolcalls.parse(answer, fam, tools.names)
            if not calls:
                break
            text = []  # stored here, with what the tools answered
            try:
                svc.conversations.add_message(address, cid, "assistant", answer, {"calls": [c["name"] for c in calls]})
            except KeyError:  # the conversation was deleted meanwhile: no tool runs for it
                break
            params["messages"].append({"role": "assistant", "content": answer})
            if rest.strip():
                blocks.append(render(rest))
            for call in calls[: tools.max_calls]:
                meta, for_model = tools.run(call)
                try:
                    svc.conversations.add_message(address, cid, "tool", for_model, meta)
                except KeyError:
                    calls = []
                    break
                params["messages"].append({"role": "tool", "content": for_model})
                blocks.append(tools.render(meta))
                yield event("text", "".join(blocks))
            if not calls:  # the conversation is gone
                break
            step += 1
        if req is not None and req.cancelled and not note:
            note = _("Stopped.")
        if shortened:
            left_out = _("The conversation is longer than the model can read: its oldest messages were left out.")
            note = f"{left_out} {note}" if note else left_out
        finished = True
    finally:
        svc.active.pop((address, cid), None)
        if not finished and req is not None:  # the browser went away: stop generating
            req.cancel()
            log.info("assistant: the browser left conversation %d after %d chunk(s); answer cancelled", cid, len(text))
        answer = "".join(text).strip()
        if answer:
            try:
                svc.conversations.add_message(address, cid, "assistant", answer)
            except KeyError:  # the conversation was deleted while its answer was written
                pass
    yield _done(web, svc, address, cid, lang, note)


def _too_long(errors: list[Exception], text: list[str]) -> bool:
    from gk.ai.runtime import ContextOverflow

    return not text and any(isinstance(e, ContextOverflow) for e in errors)


def drop_oldest_turn(messages: list[dict[str, Any]]) -> bool:
    """Leave out the oldest turn (a user message and what answered it) after the system prompt,
    keeping the last user message; False when nothing is left to drop."""
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    if len(users) < 2:
        return False
    first = 1 if messages and messages[0]["role"] == "system" else 0
    del messages[first : users[1]]
    return True


def _one_step(
    svc: AIService,
    req: Request,
    text: list[str],
    blocks: list[str],
    lang: str,
    fam: str,
    errors: list[Exception] | None = None,
) -> Generator[bytes, None, str]:
    """Stream one generation into ``text`` (events: the queue position, the answer so far);
    returns the note to show when it failed (and appends its error to ``errors``)."""
    _ = i18n.translator(lang)
    note = ""
    shown_position = -2
    while True:
        position = svc.runtime.position(req)
        ahead = position - 1 + (svc.runtime.current is not None) if position > 0 else 0
        if ahead != shown_position:
            shown_position = ahead
            waiting = _("Waiting for the assistant: {n} answer(s) before yours.", n=ahead) if ahead > 0 else ""
            yield event("status", waiting)
        items = req.next_events(POLL_SECONDS)
        if not items:
            yield b": waiting\n\n"  # a write: a browser that went away is noticed here
            continue
        if shown_position > 0:  # the answer has started: the waiting line goes
            shown_position = 0
            yield event("status", "")
        ended = False
        before = len(text)
        for kind, value in items:
            if kind == "chunk":
                for choice in value.get("choices", []):
                    piece = choice.get("delta", {}).get("content")
                    if piece:
                        text.append(piece)
            elif kind == "error":
                note = _error_note(value, _)
                if errors is not None:
                    errors.append(value)
                ended = True
            else:
                ended = True
        if len(text) != before:
            yield event("text", "".join(blocks) + render_live("".join(text), fam, lang))
        if ended:
            return note


def _error_note(exc: Exception, _: Any) -> str:
    from gk.ai.models import ModelError, NotEnoughMemory
    from gk.ai.runtime import ContextOverflow

    if isinstance(exc, ContextOverflow):
        return str(_("This conversation is too long for the model: start a new one."))
    if isinstance(exc, NotEnoughMemory):
        return str(
            _(
                "Not enough memory for the model: it needs {needed} MiB, {available} MiB are free.",
                needed=exc.needed // 2**20,
                available=exc.available // 2**20,
            )
        )
    if isinstance(exc, ModelError):
        return str(_("The model could not be used: {error}", error=str(exc)))
    return str(_("The answer failed: {error}", error=str(exc)))


def _done(web: Web, svc: AIService, address: str, cid: int, lang: str, note: str) -> bytes:
    """The final event: this turn as stored (its tool calls and the answer, replacing the
    streaming bubble), and a note."""
    messages = _messages(web, svc, address, cid, lang)
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
    turn = messages[last_user + 1 :]
    last = turn.pop() if turn and turn[-1]["role"] == "assistant" else None
    html = web.jinja.get_template("assistant/turn.html").render(
        _=i18n.translator(lang), earlier=turn, message=last, note=note
    )
    return event("done", html)
