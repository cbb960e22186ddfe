"""The assistant's tools in the web UI: what an answer may call (``for_answer``), how each call
and its result is shown in the conversation (``render_call``, collapsed, with a pending action's
Approve/Reject inline), and the settings page ``/assistant/tools`` (each tool on or off, the
external MCP servers of the signed-in user).

One answer (``AnswerTools``): the user's enabled tools (``gk.mcp.toolbox``) are described to the
model — through the chat template's ``tools`` when the model's family has a tool syntax (Qwen,
Llama 3), else as one line per tool appended to the system prompt. When the model's text is a
call of one of them (``gk.ai.toolcalls.parse``), it runs through the toolbox (the ``/mcp`` tools
in-process as the signed-in user, audited; an external server over HTTP), under the turn's
``gk.mcp.policy.TurnPolicy``: once a result brought untrusted content (mail, others' chat,
anything external), an outbound tool (send, reply, post…) is refused for the rest of the answer
and the model is told why. The list of tools offered is *not* shortened then: the tools are
part of the prompt's beginning, and changing them would make llama.cpp read the whole
conversation again (no KV reuse); the refusal is enforced where the call is run. The result
goes back to the model delimited, labelled and truncated (``policy.for_model``), at most
``MAX_STEPS`` rounds of calls per answer.

The model never approves: a write tool only queues a pending action, shown here with a form
posting to ``/approvals/<id>/approve`` — a CSRF-checked POST of the signed-in owner's session.

Test mode: ``GK_AI_FORCED_CALLS`` names a JSON file listing, step by step, a tool name and a JSON
schema for its arguments (or null for free text); each step is then generated under the
grammar of ``gk.ai.toolcalls`` — the tests' random model makes exactly that call, on real
llama.cpp. Without the variable nothing is forced.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bottle

from gk.locale import N_
from gk.web import forms, i18n
from gk.web.app import Web

if TYPE_CHECKING:
    from gk.mcp.approvals import Executor
    from gk.mcp.policy import TurnPolicy
    from gk.mcp.toolbox import Entry, Server, Settings, Toolbox

log = logging.getLogger("gk.web")

MAX_STEPS = 4  # rounds of tool calls in one answer
MAX_CALLS = 2  # calls run per round
RESULT_CHARS = 1500  # of a tool's result given to the model (a board's context is small)
SHOWN_CHARS = 4000  # of a tool's result shown in the page
FORCED_ENV = "GK_AI_FORCED_CALLS"
TOOLS_PROMPT = (
    "\n\nYou can use these tools. To use one, answer with only "
    '<tool_call>{"name": "TOOL", "arguments": {...}}</tool_call> and wait for its result. '
    "Tools that send, post, move or delete only ask the owner, who approves them.\n"
)
STATUS_NAMES = {
    "ok": N_("done"),
    "error": N_("failed"),
    "queued": N_("waiting for your approval"),
    "withdrawn": N_("refused: this answer read untrusted content"),
}

# why an external server's tools could not be listed (``gk.mcp.client.KINDS``), said to its owner
# with what to do; ``{host}`` is the server's host name, ``{seconds}`` the client's timeout
FAILURES = {
    "unresolvable": N_("{host} could not be found: check the address."),
    "not_public": N_("{host} is on the local network: only an administrator's assistant may use tool servers there."),
    "refused": N_("{host} refused the connection: check the address and the port, and that the server is running."),
    "timeout": N_("{host} did not answer within {seconds} s: try again later, or check the address."),
    "tls": N_(
        "The secure connection to {host} failed: its certificate is not valid for that name, has expired or is not trusted (or the server does not speak HTTPS on that port)."
    ),  # fmt: skip
    "not_found": N_("{host} has nothing at that address (HTTP 404): check the path of the URL, often /mcp."),
    "server_error": N_("{host} had an internal error: try again later, or tell the server's administrator."),
    "not_mcp": N_("{host} did not answer as an MCP server does: check that the URL is its MCP endpoint."),
    "other": N_("The tools of {host} could not be listed."),
}
NO_TOKEN = N_("{host} asked for a token: give it with Change, below.")
BAD_TOKEN = N_("{host} refused the token: give a valid one with Change, below.")

# why a tool call failed (``meta["error_kind"]``: ``gk.mcp.registry`` kinds, ``client.KINDS``,
# ``toolbox.TOOL_ERROR`` and the three below), said to the user in their language with what it
# means; the model reads the English text, the page keeps it behind "Details". ``{tool}`` is the
# tool's name, ``{host}`` an external server's host name.
UNKNOWN_TOOL = "unknown_tool"  # the model named a tool that is not enabled
WITHDRAWN = "withdrawn"  # an outbound tool after untrusted content (``gk.mcp.policy``)
CRASHED = "crashed"  # GK's own tool raised (a bug, a broken store): logged
CALL_FAILURES = {
    UNKNOWN_TOOL: N_(
        "The assistant asked for {tool}, which is not one of your enabled tools: nothing was done. Enable it on the tools page if the assistant should use it."
    ),  # fmt: skip
    WITHDRAWN: N_(
        "{tool} can send something out, and this answer had read content from others: it was not run, nothing was sent."
    ),  # fmt: skip
    CRASHED: N_("{tool} failed on this box because of an internal error; the server's log says more."),
    "invalid": N_("The assistant called {tool} with values it does not accept: it was told why and may try again."),
    "not_found": N_(
        "{tool} did not find what the assistant asked for (a message, folder, room or event that does not exist)."
    ),  # fmt: skip
    "denied": N_("{tool} refused: what the assistant asked for is not yours to use."),
    "failed": N_("{tool} could not do what the assistant asked."),
    "tool_error": N_("The tool {tool} of {host} answered with an error."),
    "unauthorized": N_("{host} refused to run {tool} without a valid token: check its token on the tools page."),
    "other": N_("{host} could not run the tool {tool}."),
}

_settings: dict[Path, Settings] = {}


def settings(web: Web) -> Settings:
    from gk.mcp.toolbox import Settings

    path = Path(web.data_dir)
    found = _settings.get(path)
    if found is None:
        accounts = web.ctx.accounts

        def lan_allowed(address: str) -> bool:  # an administrator's tool servers may be on the LAN
            user = accounts.get_user(address)
            return user is not None and user.is_admin

        found = _settings[path] = Settings(path, lan_allowed)
    return found


def executors(web: Web) -> dict[str, Executor]:
    """The executor of the approved calls of external tools that act (``gk.web.approvals``)."""
    from gk.mcp import toolbox as tb

    return {tb.EXTERNAL_CALL: tb.executor(settings(web))}


def toolbox(web: Web, address: str) -> Toolbox | None:
    """The user's tools, or None when the MCP feature is off."""
    from gk.mcp.service import MCPService
    from gk.mcp.toolbox import Toolbox

    mcp = web.ctx.services.maybe(MCPService)
    if mcp is None:
        return None
    return Toolbox(mcp, settings(web), address)


class AnswerTools:
    """The tools of one answer, and the turn's policy."""

    max_steps = MAX_STEPS
    max_calls = MAX_CALLS

    def __init__(self, web: Web, box: Toolbox | None, fam: str, lang: str):
        from gk.mcp import toolbox as tb
        from gk.mcp.policy import TurnPolicy

        self.web = web
        self.box = box
        self.lang = lang
        self.turn: TurnPolicy = TurnPolicy()
        offered: list[Entry] = box.offered() if box else []
        self.names = [e.name for e in offered]
        self.functions: list[dict[str, Any]] = []
        self.prompt = ""
        if offered and fam in ("qwen", "llama3"):  # the template renders them in its own syntax
            self.functions = [tb.function(e) for e in offered]
        elif offered:
            self.prompt = TOOLS_PROMPT + "\n".join(tb.signature(e) for e in offered)

    def forced_grammar(self, step: int, fam: str) -> str | None:
        path = os.environ.get(FORCED_ENV)
        if not path or not self.names:
            return None
        try:
            steps = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(steps, list) or step >= len(steps) or not isinstance(steps[step], dict):
            return None
        from gk.ai import toolcalls

        log.warning("assistant: step %d forced by %s (test mode)", step, FORCED_ENV)
        spec = steps[step]
        fn = {"name": spec["name"], "parameters": spec.get("arguments") or {"type": "object"}}
        return toolcalls.grammar([{"type": "function", "function": fn}], fam)

    def run(self, call: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """Run one call the model made: (what the page shows, what the model reads back). A
        failure gives the model its precise English text and the page its kind
        (``meta["error_kind"]``, said in the reader's language by ``render_call``)."""
        from urllib.parse import urlsplit

        from gk.mcp import registry
        from gk.mcp.policy import Withdrawn
        from gk.mcp.scopes import InsufficientScope

        name, args = call["name"], call["arguments"]
        entry = self.box.find(name) if self.box else None
        meta: dict[str, Any] = {"tool": name, "arguments": args, "server": ""}
        status = "ok"
        not_yours = f"{name} is not one of your tools: call only the tools listed"
        if entry is None:
            result = _error(not_yours, UNKNOWN_TOOL)
            status = "error"
        else:
            if entry.server:
                meta["server"] = entry.server.name
                meta["host"] = urlsplit(entry.server.url).hostname or entry.server.url
            try:
                self.turn.check(entry.tool, args, entry.external)
            except Withdrawn as exc:
                result, status = _error(str(exc), WITHDRAWN), "withdrawn"
                assert self.box is not None
                try:
                    self.box.mcp.audit.record(self.box.address, "assistant", name, args, 0, "refused")
                except Exception:
                    log.exception("audit: could not record %s", name)
            else:
                try:
                    result = self.box.call(entry, args) if self.box else _error("no tools", UNKNOWN_TOOL)
                except registry.UnknownTool:
                    result = _error(not_yours, UNKNOWN_TOOL)
                except InsufficientScope:
                    result = _error(f"{name} is not allowed to this user", registry.DENIED)
                except Exception as exc:
                    log.exception("assistant: tool %s failed", name)
                    text = f"{name} failed with an internal error ({type(exc).__name__}): do not call it again now"
                    result = _error(text, CRASHED)
                self.turn.observe(entry.tool, entry.external)
                out = result.get("structuredContent")
                action = out.get("action_id") if isinstance(out, dict) else None
                if isinstance(action, str) and action:
                    status = "queued"
                    meta["action_id"] = action
                    meta["summary"] = str(out.get("summary", "")) if isinstance(out, dict) else ""
                elif result.get("isError"):
                    status = "error"
        if status in ("error", "withdrawn"):
            meta["error_kind"] = registry.error_kind(result) or registry.FAILED
        meta["status"] = status
        meta["text"] = _text(result)[:SHOWN_CHARS]
        return meta, self.turn.for_model(name, result, RESULT_CHARS)

    def render(self, meta: dict[str, Any]) -> str:
        return render_call(self.web, meta, self.lang)


def _error(text: str, kind: str) -> dict[str, Any]:
    from gk.mcp.registry import error_result

    return error_result(text, kind)


def _text(result: dict[str, Any]) -> str:
    parts = [
        str(c.get("text", "")) for c in result.get("content") or () if isinstance(c, dict) and c.get("type") == "text"
    ]
    return "\n".join(parts)


def for_answer(web: Web, address: str, fam: str) -> AnswerTools:
    return AnswerTools(web, toolbox(web, address), fam, web.lang())


def render_call(web: Web, meta: dict[str, Any], lang: str) -> str:
    """One tool call and its result, collapsed; a pending action with its Approve/Reject forms."""
    import html

    _ = i18n.translator(lang)
    name = str(meta.get("tool", "?"))
    status = str(meta.get("status", "ok"))
    args = json.dumps(meta.get("arguments", {}), ensure_ascii=False, indent=1)
    title = _("Tool {name}", name=name)
    label = _(STATUS_NAMES.get(status, status))
    text = html.escape(str(meta.get("text", "")))
    kind = str(meta.get("error_kind") or "")
    out = (
        f'<details class="tool-call" data-tool="{html.escape(name)}" data-status="{html.escape(status)}">'
        f"<summary>{html.escape(title)} — {html.escape(label)}</summary>"
        f'<pre class="args"><code>{html.escape(args)}</code></pre>'
    )
    if not kind:  # a result, or a failure stored before the kinds: shown as it was
        return out + f'<pre class="result">{text}</pre></details>' + _action(web, meta, lang)
    # a failure: what happened in the reader's language, the English detail (the model's) behind a line
    said = call_failure(lang, name, kind, str(meta.get("host") or meta.get("server") or ""))
    return out + (
        f'</details><p class="error tool-error" data-kind="{html.escape(kind)}">{html.escape(said)}</p>'
        f'<details class="error-detail"><summary>{html.escape(_("Details"))}</summary>'
        f'<pre class="result">{text}</pre></details>'
    )


def call_failure(lang: str, tool: str, kind: str, host: str) -> str:
    """Why a tool call failed, in ``lang``: a call kind, or a connection kind of an external
    server said as the tools page says it (``FAILURES``)."""
    from gk.mcp import client

    _ = i18n.translator(lang)
    if kind in CALL_FAILURES:
        return _(CALL_FAILURES[kind], tool=tool, host=host)
    if kind in FAILURES:
        return _(FAILURES[kind], host=host, seconds=f"{client.TIMEOUT:g}")
    return _(CALL_FAILURES["failed"], tool=tool)


def _action(web: Web, meta: dict[str, Any], lang: str) -> str:
    """A queued call's pending action: its state, Approve/Reject while it waits."""
    import html

    from gk.web.approvals import STATE_NAMES

    _ = i18n.translator(lang)
    action = meta.get("action_id")
    if not isinstance(action, str) or not action:
        return ""
    from gk.mcp.approvals import ActionError, ApprovalStore

    state, when, why = "", "", ""
    try:
        pending = ApprovalStore(web.data_dir, web.ctx.config.mcp.approval_hours).of_owner(
            web.signed_in().address, action
        )
        state = pending.state
        if state == "failed":  # why, in the reader's language (the English text on its page)
            from gk.web.approvals import failure

            why = failure(lang, pending)
        event = pending.payload.get("event") if pending.tool.startswith("calendar_") else None
        if isinstance(event, dict):  # the event's time as the reader reads dates (the summary is the model's)
            from gk import localtime
            from gk.web.approvals import event_when

            when = event_when(lang, localtime.zone(web.data_dir), event.get("start"), event.get("end"))
    except ActionError:
        pass
    quoted = html.escape(action)
    state_name = _(STATE_NAMES[state]) if state in STATE_NAMES else _("no longer kept")
    out = (
        f'<div class="pending-action" data-action="{quoted}" data-state="{html.escape(state)}">'
        f"<p>{html.escape(str(meta.get('summary', '')))} — <strong>{html.escape(state_name)}</strong></p>"
    )
    if when:
        out += f'<p class="event-when">{html.escape(when)}</p>'
    if why:
        out += f'<p class="error action-error">{html.escape(why)}</p>'
    if state == "pending":
        sess = web.session()
        csrf = html.escape(sess.csrf) if sess is not None else ""
        for verb, label, cls in (("approve", _("Approve"), "approve"), ("reject", _("Reject"), "secondary reject")):
            out += (
                f'<form method="post" action="/approvals/{quoted}/{verb}" class="inline">'
                f'<input type="hidden" name="csrf" value="{csrf}">'
                f'<button type="submit" class="{cls}">{html.escape(label)}</button></form> '
            )
    full = _("See it in full")
    out += f'<a href="/approvals/{quoted}">{html.escape(full)}</a></div>'
    return out


# -- the settings page -------------------------------------------------------------------------


def _box(web: Web) -> tuple[str, Toolbox]:
    address = web.signed_in().address
    box = toolbox(web, address)
    if box is None:
        raise bottle.HTTPError(503, N_("Tools need the MCP feature, which is turned off on this server."))
    return address, box


def failure(web: Web, server: Server) -> str:
    """Why ``server``'s tools could not be listed, in the reader's language; a listing stored
    before the kinds were (no ``error_kind``) shows its English detail as it was."""
    from urllib.parse import urlsplit

    from gk.mcp import client

    if not server.error_kind:
        return server.error
    host = urlsplit(server.url).hostname or server.url
    if server.error_kind == "unauthorized":
        return web.gettext(BAD_TOKEN if server.token else NO_TOKEN, host=host)
    text = FAILURES.get(server.error_kind, FAILURES["other"])
    return web.gettext(text, host=host, seconds=f"{client.TIMEOUT:g}")


def page(web: Web, notice: str = "", error: str = "") -> str:
    from gk.web import flash

    _address, box = _box(web)
    if not notice and not error:  # what the post that redirected here said
        notice = flash.take(web).get("notice", "")
    titles = {t.name: t.title for t in box.registry.tools()}
    own = [e for e in box.entries if not e.external]
    servers = box.settings.servers(box.address)
    external = {s.id: [e for e in box.entries if e.server is not None and e.server.id == s.id] for s in servers}
    from gk.mcp.toolbox import short

    return web.render(
        "assistant/tools.html",
        own=own,
        titles=titles,
        servers=servers,
        external=external,
        short=short,
        failure=lambda server: failure(web, server),
        notice=notice,
        error=error,
    )


def switch(web: Web) -> None:
    address, box = _box(web)
    name = forms.text("tool")
    entry = next((e for e in box.entries if e.name == name), None)
    if entry is None:
        raise bottle.HTTPError(404, N_("Not found"))
    box.settings.set_enabled(address, name, forms.text("enabled") == "1")
    raise bottle.redirect("/assistant/tools", 303)


def _lan_refusal(web: Web, box: Toolbox, text: str) -> str:
    """Why a member may not use the server at ``text`` (on the LAN), in their language; '' when
    they may (or the URL is not one: the settings refuse it, or the name does not resolve and
    the listing says so)."""
    from urllib.parse import urlsplit

    from gk.security import egress

    url = urlsplit(text)
    try:
        port = url.port or (443 if url.scheme == "https" else 80)
    except ValueError:  # not a port number: the settings refuse the URL
        port = 0
    if box.settings.lan_allowed(box.address) or url.scheme not in ("http", "https") or not url.hostname or not port:
        return ""
    refusal = web.gettext("{host} is on the local network ({address}): only an administrator's assistant may use tool servers there. Give the address of a server on the internet, or ask an administrator.")  # fmt: skip
    try:
        egress.vetted_address(url.hostname, port, refusal)
    except egress.NotPublic as exc:
        return str(exc)
    except egress.EgressRefused:
        pass
    return ""


def add_server(web: Web) -> str:
    from gk.mcp import toolbox as tb

    address, box = _box(web)
    # refused before it is kept (its owner's assistant could never reach it), and the member
    # told why and what to do, in their language
    if refusal := _lan_refusal(web, box, forms.text("url")):
        bottle.response.status = 400
        return page(web, error=refusal)
    try:
        sid = box.settings.add_server(address, forms.text("name"), forms.text("url"), forms.raw("token"))
    except tb.ToolboxError as exc:
        bottle.response.status = 400
        return page(web, error=str(exc))
    server = box.settings.server(address, sid)
    assert server is not None
    if tb.refresh(box.settings, server) is not None:
        return _not_listed(web, box, server.id, web.gettext("The server was added but its tools could not be listed."))
    raise bottle.redirect("/assistant/tools", 303)


def _not_listed(web: Web, box: Toolbox, server_id: int, lead: str) -> str:
    """The page, with why the server's tools could not be listed (just kept) on top."""
    server = box.settings.server(box.address, server_id)
    return page(web, error=f"{lead} {failure(web, server)}" if server else lead)


def _server(web: Web, server_id: int) -> tuple[Toolbox, Any]:
    address, box = _box(web)
    server = box.settings.server(address, server_id)
    if server is None:
        raise bottle.HTTPError(404, N_("Not found"))
    return box, server


def refresh_server(web: Web, server_id: int) -> str:
    from gk.mcp import toolbox as tb

    box, server = _server(web, server_id)
    if tb.refresh(box.settings, server) is not None:
        return _not_listed(web, box, server.id, web.gettext("The tools could not be listed."))
    raise bottle.redirect("/assistant/tools", 303)


def remove_server(web: Web, server_id: int) -> None:
    box, server = _server(web, server_id)
    box.settings.remove_server(box.address, server.id)
    raise bottle.redirect("/assistant/tools", 303)


def edit_server(web: Web, server_id: int) -> str:
    """A server's URL and token changed in place (its name and tools' switches kept): an empty
    token field keeps the token, "remove the token" removes it; then its tools are listed again."""
    from gk.mcp import toolbox as tb

    box, server = _server(web, server_id)
    url = forms.text("url") or server.url
    if refusal := _lan_refusal(web, box, url):
        bottle.response.status = 400
        return page(web, error=refusal)
    token: str | None = forms.raw("token").strip() or None
    if forms.text("remove_token") == "1":
        token = ""
    try:
        box.settings.update_server(box.address, server.id, url, token)
    except tb.ToolboxError as exc:
        bottle.response.status = 400
        return page(web, error=str(exc))
    changed = box.settings.server(box.address, server.id)
    assert changed is not None
    if tb.refresh(box.settings, changed) is not None:
        return _not_listed(
            web, box, server.id, web.gettext("The server was changed but its tools could not be listed.")
        )
    from gk.web import flash

    flash.redirect(web, "/assistant/tools", web.gettext("The server was changed and its tools listed again."))
