"""The owner's approvals: the pending actions of the assistant's and MCP clients' tools
(``gk.mcp.approvals``), each shown with its full payload, approved or rejected here — the only
place they can be. Every route is a signed-in user's (``USER``) and every POST carries the
session's CSRF token (the ``Web`` policy): a bearer token, an MCP request or a model's output
has neither a session cookie nor the token, so it cannot approve anything. An action is found
only among the signed-in user's own: another user's id answers 404, as an unknown one does.

``/approvals`` lists the user's actions (pending first) and their own tool calls (the audit
log); ``/admin/audit`` shows every user's calls to the administrator; ``/approvals/count`` is
the navigation's badge (loaded by htmx, an empty answer when nothing waits).
"""

from __future__ import annotations

import datetime as dt

import bottle

from gk import pools
from gk.locale import N_
from gk.mcp import approvals as store_mod
from gk.mcp.approvals import ActionError, ApprovalStore
from gk.mcp.audit import AuditLog
from gk.mcp.writetools import FLAGS, WriteTools, rendered
from gk.web import assistant_tools
from gk.web.app import Web

STATE_NAMES = {
    store_mod.PENDING: N_("waiting for approval"),
    store_mod.EXECUTING: N_("interrupted while running (not retried)"),
    store_mod.DONE: N_("approved and done"),
    store_mod.FAILED: N_("approved, but it failed"),
    store_mod.REJECTED: N_("rejected"),
    store_mod.EXPIRED: N_("expired"),
}
TOOL_NAMES = {
    "mail_send": N_("Send mail"),
    "mail_reply": N_("Reply to a mail message"),
    "mail_move": N_("Move mail messages"),
    "mail_flag": N_("Flag mail messages"),
    "mail_delete": N_("Delete mail messages"),
    "chat_post": N_("Post a chat message"),
    "calendar_create_event": N_("Create a calendar event"),
    "calendar_update_event": N_("Update a calendar event"),
    "calendar_cancel_event": N_("Cancel a calendar event"),
    "external_call": N_("Use a tool of another MCP server"),
}
# why an approved action failed (``PendingAction.result_kind``), said to the owner; an external
# server's connection kinds are said as the tools page says them (``assistant_tools.FAILURES``)
FAILURES = {
    store_mod.GONE: N_(
        "What it acted on no longer exists (the message, the event or the calendar was removed): nothing was done."
    ),  # fmt: skip
    store_mod.CHANGED: N_(
        "It changed since the assistant asked (edited elsewhere, or the tool server was changed): nothing was done, so as not to act on something else."
    ),  # fmt: skip
    store_mod.UNDELIVERABLE: N_("The mail server refused to send it."),
    store_mod.UNAVAILABLE: N_("This box cannot do it now (the feature is turned off, or the account is gone)."),
    store_mod.CRASHED: N_("An internal error stopped it; the server's log says more."),
    "tool_error": N_("The tool of {host} answered with an error."),
    "unauthorized": N_(
        "{host} refused the call for want of a valid token: check its token on the assistant's tools page."
    ),  # fmt: skip
    store_mod.FAILED_KIND: N_("It could not be done."),
}


def failure(lang: str, action: store_mod.PendingAction) -> str:
    """Why ``action`` failed, in ``lang`` ('' for a failure stored before the kinds)."""
    from urllib.parse import urlsplit

    from gk.mcp import client
    from gk.web import i18n

    kind = action.result_kind
    if not kind:
        return ""
    _ = i18n.translator(lang)
    url = str(action.payload.get("url", "")) if action.tool == "external_call" else ""
    host = urlsplit(url).hostname or url
    if kind in FAILURES:
        return _(FAILURES[kind], host=host)
    if kind in assistant_tools.FAILURES and host:
        return _(assistant_tools.FAILURES[kind], host=host, seconds=f"{client.TIMEOUT:g}")
    return _(FAILURES[store_mod.FAILED_KIND])


OUTCOME_NAMES = {"ok": N_("answered"), "error": N_("tool error"), "queued": N_("queued"), "refused": N_("refused")}
N_("{n} message(s)")  # the list's details (approvals/list.html)
FLAG_NAMES = {"seen": N_("Read"), "flagged": N_("Flagged"), "answered": N_("Answered")}
assert set(FLAG_NAMES) == set(FLAGS)


def _store(web: Web) -> ApprovalStore:
    return ApprovalStore(web.data_dir, web.ctx.config.mcp.approval_hours)


def _when(web: Web, ts: float | None) -> str:
    if not ts:
        return ""
    from gk.web import i18n

    return i18n.format_datetime(dt.datetime.fromtimestamp(ts, dt.UTC), web.lang(), False)


def _parse(value: object, tz: dt.tzinfo) -> dt.date | dt.datetime | None:
    """A stored ISO 8601 start or end: a date (all-day), or a time in the reader's zone."""
    if not isinstance(value, str):
        return None
    try:
        if len(value) == 10:
            return dt.date.fromisoformat(value)
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return when.astimezone(tz) if when.tzinfo else when.replace(tzinfo=tz)


def event_when(lang: str, tz: dt.tzinfo, start: object, end: object = None) -> str:
    """An event's start (and end) as the reader's language writes them, in the reader's zone:
    "Thu December 10, 2026, 14:00 – 15:00" / "jeu. 10 décembre 2026, 14:00 – 15:00"; all-day
    events by their days alone. Anything unreadable is shown as stored."""
    from gk.web.calendar import MONTHS, WEEKDAYS  # the web calendar's date words
    from gk.web.i18n import translator

    _ = translator(lang)
    first, last = _parse(start, tz), _parse(end, tz) if end is not None else None

    def day(d: dt.date) -> str:
        return _("{weekday} {month} {day}, {year}", weekday=_(WEEKDAYS[d.weekday()]), month=_(MONTHS[d.month - 1]),
                 day=d.day, year=d.year)  # fmt: skip

    if first is None:
        return str(start)
    if not isinstance(first, dt.datetime):
        if isinstance(last, dt.date) and not isinstance(last, dt.datetime) and last != first:
            return f"{day(first)} → {day(last)}"
        return day(first)
    text = _("{date}, {time}", date=day(first.date()), time=first.strftime("%H:%M"))
    if isinstance(last, dt.datetime):
        if last.date() == first.date():
            return f"{text} – {last:%H:%M}"
        return f"{text} → " + _("{date}, {time}", date=day(last.date()), time=last.strftime("%H:%M"))
    return text


def _render(web: Web, template: str, **kw: object) -> str:
    from gk import localtime

    lang, tz = web.lang(), localtime.zone(web.data_dir)
    return web.render(
        template,
        state_names=STATE_NAMES,
        tool_names=TOOL_NAMES,
        flag_names=FLAG_NAMES,
        outcome_names=OUTCOME_NAMES,
        when=lambda ts: _when(web, ts),
        event_when=lambda start, end=None: event_when(lang, tz, start, end),
        failure=lambda action: failure(lang, action),
        zone_name=str(getattr(tz, "key", "UTC")),
        **kw,
    )


def list_page(web: Web) -> str:
    user = web.signed_in()
    actions = _store(web).list(user.address)
    calls = AuditLog(web.data_dir).calls(user.address, limit=100)
    return _render(web, "approvals/list.html", actions=actions, calls=calls)


def count(web: Web) -> str:
    user = web.signed_in()
    n = _store(web).count_pending(user.address)
    bottle.response.set_header("Cache-Control", "no-store")
    return f'<span class="count" id="approvals-count">{n}</span>' if n else ""


def _own(web: Web, action_id: str) -> store_mod.PendingAction:
    user = web.signed_in()
    try:
        return _store(web).of_owner(user.address, action_id)
    except ActionError as exc:
        raise bottle.HTTPError(404, N_("No such pending action.")) from exc


def detail(web: Web, action_id: str, status: int = 200, notice: str = "") -> str:
    action = _own(web, action_id)
    if status != 200:
        bottle.response.status = status
    view = pools.run_cpu(rendered, action)  # a queued message is parsed off the hub (up to 10 MB)
    return _render(web, "approvals/detail.html", action=action, view=view, notice=notice)


def approve(web: Web, action_id: str) -> str:
    user = web.signed_in()
    store = _store(web)
    try:
        executors = WriteTools(web.ctx, store).executors()
        executors.update(assistant_tools.executors(web))  # the assistant's external tools that act
        done = store_mod.approve(store, executors, user.address, action_id)
    except ActionError as exc:
        if exc.code == "not_found":
            raise bottle.HTTPError(404, N_("No such pending action.")) from exc
        return detail(web, action_id, 409, web.gettext("This action was already decided or has expired."))
    ok = done.state == store_mod.DONE
    # a failure: why, in the reader's language (the English text under the page's "Details")
    reason = failure(web.lang(), done) or done.result
    notice = web.gettext("Approved: done.") if ok else web.gettext("Approved, but it failed: {reason}", reason=reason)  # fmt: skip
    return detail(web, action_id, 200, notice)


def reject(web: Web, action_id: str) -> str:
    user = web.signed_in()
    try:
        _store(web).reject(user.address, action_id, user.address)
    except ActionError as exc:
        if exc.code == "not_found":
            raise bottle.HTTPError(404, N_("No such pending action.")) from exc
        return detail(web, action_id, 409, web.gettext("This action was already decided or has expired."))
    return detail(web, action_id, 200, web.gettext("Rejected: nothing was done."))


def admin_audit(web: Web) -> str:
    web.signed_in()
    return _render(web, "approvals/audit.html", calls=AuditLog(web.data_dir).calls(None, limit=500))
