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
NO_TOKEN = N_("{host} asked for a token: remove this server and add it again with its token.")
BAD_TOKEN = N_("{host} refused the token: remove this server and add it again with a valid token.")

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
        """Run one call the model made: (what the page shows, what the model reads back)."""
        from gk.mcp.policy import Withdrawn
        from gk.mcp.registry import UnknownTool

        name, args = call["name"], call["arguments"]
        entry = self.box.find(name) if self.box else None
        meta: dict[str, Any] = {"tool": name, "arguments": args, "server": ""}
        status = "ok"
        if entry is None:
            result = _error(f"{name} is not one of your tools")
            status = "error"
        else:
            meta["server"] = entry.server.name if entry.server else ""
            try:
                self.turn.check(entry.tool, args, entry.external)
            except Withdrawn as exc:
                result, status = _error(str(exc)), "withdrawn"
                assert self.box is not None
                try:
                    self.box.mcp.audit.record(self.box.address, "assistant", name, args, 0, "refused")
                except Exception:
                    log.exception("audit: could not record %s", name)
            else:
                try:
                    result = self.box.call(entry, args) if self.box else _error("no tools")
                except UnknownTool:
                    result = _error(f"{name} is not one of your tools")
                except Exception:
                    log.exception("assistant: tool %s failed", name)
                    result = _error(f"{name} failed")
                self.turn.observe(entry.tool, entry.external)
                out = result.get("structuredContent")
                action = out.get("action_id") if isinstance(out, dict) else None
                if isinstance(action, str) and action:
                    status = "queued"
                    meta["action_id"] = action
                    meta["summary"] = str(out.get("summary", "")) if isinstance(out, dict) else ""
                elif result.get("isError"):
                    status = "error"
        meta["status"] = status
        meta["text"] = _text(result)[:SHOWN_CHARS]
        return meta, self.turn.for_model(name, result, RESULT_CHARS)

    def render(self, meta: dict[str, Any]) -> str:
        return render_call(self.web, meta, self.lang)


def _error(text: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": True}


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

    from gk.web.approvals import STATE_NAMES

    _ = i18n.translator(lang)
    name = str(meta.get("tool", "?"))
    status = str(meta.get("status", "ok"))
    args = json.dumps(meta.get("arguments", {}), ensure_ascii=False, indent=1)
    title = _("Tool {name}", name=name)
    label = _(STATUS_NAMES.get(status, status))
    out = (
        f'<details class="tool-call" data-tool="{html.escape(name)}" data-status="{html.escape(status)}">'
        f"<summary>{html.escape(title)} — {html.escape(label)}</summary>"
        f'<pre class="args"><code>{html.escape(args)}</code></pre>'
        f'<pre class="result">{html.escape(str(meta.get("text", "")))}</pre></details>'
    )
    action = meta.get("action_id")
    if not isinstance(action, str) or not action:
        return out
    from gk.mcp.approvals import ActionError, ApprovalStore

    state, when = "", ""
    try:
        pending = ApprovalStore(web.data_dir, web.ctx.config.mcp.approval_hours).of_owner(
            web.signed_in().address, action
        )
        state = pending.state
        event = pending.payload.get("event") if pending.tool.startswith("calendar_") else None
        if isinstance(event, dict):  # the event's time as the reader reads dates (the summary is the model's)
            from gk import localtime
            from gk.web.approvals import event_when

            when = event_when(lang, localtime.zone(web.data_dir), event.get("start"), event.get("end"))
    except ActionError:
        pass
    quoted = html.escape(action)
    state_name = _(STATE_NAMES[state]) if state in STATE_NAMES else _("no longer kept")
    out += (
        f'<div class="pending-action" data-action="{quoted}" data-state="{html.escape(state)}">'
        f"<p>{html.escape(str(meta.get('summary', '')))} — <strong>{html.escape(state_name)}</strong></p>"
    )
    if when:
        out += f'<p class="event-when">{html.escape(when)}</p>'
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
    _address, box = _box(web)
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


def add_server(web: Web) -> str:
    from urllib.parse import urlsplit

    from gk.mcp import toolbox as tb
    from gk.security import egress

    address, box = _box(web)
    url = urlsplit(forms.text("url"))
    try:
        port = url.port or (443 if url.scheme == "https" else 80)
    except ValueError:  # not a port number: add_server refuses the URL
        port = 0
    if not box.settings.lan_allowed(address) and url.scheme in ("http", "https") and url.hostname and port:
        # refused before it is kept (its owner's assistant could never reach it), and the member
        # told why and what to do, in their language; a name that does not resolve is kept, and
        # the listing below says so
        refusal = web.gettext("{host} is on the local network ({address}): only an administrator's assistant may use tool servers there. Give the address of a server on the internet, or ask an administrator.")  # fmt: skip
        try:
            egress.vetted_address(url.hostname, port, refusal)
        except egress.NotPublic as exc:
            bottle.response.status = 400
            return page(web, error=str(exc))
        except egress.EgressRefused:
            pass
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
