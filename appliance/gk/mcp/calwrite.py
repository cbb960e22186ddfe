"""The calendar's side-effect tools: ``calendar_create_event``, ``calendar_update_event`` and
``calendar_cancel_event``. Like the mail and chat write tools (``gk.mcp.writetools``), a call
only checks its arguments against the user's own calendars and queues a pending action with the
whole event as it will be written (title, start and end in the box's zone, all-day, place,
description, attendees, calendar); the owner's Approve click in the web UI runs the executor.

Execution goes through ``gk.dav.webapi.DavWeb`` — the web calendar's bridge to the DAV storage,
under the storage's lock and the DAV rights, as the user — with the web calendar's own event
builder (``gk.web.calendar_events``): a created event is in the next ``sync-collection`` of
the user's phone. When the event has attendees the user is its ``ORGANIZER``, so the DAV
storage's scheduler (``gk.dav.itip``) mails them the invitation (``REQUEST``), the update or the
``CANCEL``, as for a CalDAV client's write. With ``recurrence_id`` an update or a cancel
concerns one occurrence of a repeating event: an overriding VEVENT with its ``RECURRENCE-ID``,
or an ``EXDATE`` (the web calendar's own ``build_event(rid=…)`` and ``skip_occurrence``), and
the attendees are mailed that instance alone (``gk.dav.itip.instance_sends``). An update or
cancel approved after the event changed elsewhere (its etag) does nothing. Only the user's own calendars are searched: another user's
event is "not found", like a missing one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING, Any

from gk import localtime
from gk.locale import N_
from gk.mcp.approvals import CHANGED, GONE, UNAVAILABLE, ActionFailed, Executor, PendingAction
from gk.mcp.registry import INVALID, NOT_FOUND, Tool, ToolFailed

if TYPE_CHECKING:
    from gk.dav.webapi import Book, DavWeb, Entry
    from gk.mcp.writetools import WriteTools
    from gk.web.calendar_events import EventForm

MAX_ATTENDEES = 50
FIELDS = ("title", "all_day", "start_date", "start_time", "end_date", "end_time", "timezone", "location",
          "description", "reminder", "attendees", "repeat", "repeat_end", "count", "until", "custom_rule")  # fmt: skip
_WHEN = {
    "type": "string",
    "minLength": 10,
    "maxLength": 40,
    "description": "ISO 8601 date-time (the box's time zone when no offset is given), or a date for all-day events",
}
_UID = {"type": "string", "minLength": 1, "maxLength": 500, "description": "the event's uid (calendar_list_events)"}
_CALENDAR = {"type": "string", "minLength": 1, "maxLength": 200, "description": "the calendar's name"}
_RID = {
    "type": "string",
    "minLength": 10,
    "maxLength": 40,
    "description": "one occurrence of a repeating event, by its recurrence_id (calendar_list_events): only "
    "that occurrence changes; without it, the whole series",
}


class CalendarWrite:
    """Queue (``queue_*``) and execute (``run_*``) calendar writes of one running box."""

    def __init__(self, w: WriteTools):
        self.w = w
        self.ctx = w.ctx

    def _api(self) -> DavWeb:
        from gk.dav.service import DAVService
        from gk.dav.webapi import DavWeb

        svc = self.ctx.services.maybe(DAVService)
        if svc is None:
            raise ActionFailed("calendars are off on this box", UNAVAILABLE)
        return DavWeb(svc)

    def _zone(self) -> str:
        return str(getattr(localtime.zone(self.ctx.data_dir), "key", "UTC"))

    def _calendars(self, api: DavWeb, address: str) -> list[Book]:
        """The user's own event calendars they may write (never a calendar shared by another)."""
        from gk.dav.webapi import CALENDAR

        return [b for b in api.books(address, CALENDAR) if b.owner == address and b.has_events and b.writable]

    def _calendar(self, api: DavWeb, address: str, name: str) -> Book:
        api.ensure(address)
        books = self._calendars(api, address)
        if not name:
            if not books:
                raise ToolFailed("the user has no calendar", NOT_FOUND)
            return books[0]
        for b in books:
            if name.lower() in (b.name.lower(), b.title.lower()):
                return b
        raise ToolFailed(f"no calendar {name!r}", NOT_FOUND)

    def _find(self, api: DavWeb, address: str, uid: str, calendar: str) -> Entry:
        """The user's event ``uid`` (in ``calendar`` if given); ToolFailed "not found" otherwise."""
        from gk.dav.webapi import NotFound

        for b in self._calendars(api, address):
            if calendar and calendar.lower() not in (b.name.lower(), b.title.lower()):
                continue
            try:
                for e in api.entries(address, b):
                    if e.uid == uid and e.component == "VEVENT":
                        return e
            except NotFound:
                continue
        raise ToolFailed(f"event {uid!r} not found", NOT_FOUND)

    def _occurrence(self, text: str, when: str) -> tuple[str, str]:
        """The occurrence of a repeating event that started at ``when`` (ISO 8601, as
        ``calendar_list_events`` gives ``recurrence_id``): (its RECURRENCE-ID key as the web
        calendar writes it, its start in the box's zone); ToolFailed when the event does not
        repeat or has no such occurrence (one cancelled before included)."""
        from gk.mcp.davtools import _parse_when
        from gk.web import calendar_events as events

        tz = localtime.zone(self.ctx.data_dir)
        cal = events.parse(text)
        comps = list(getattr(cal, "vevent_list", []))
        master = next((c for c in comps if "recurrence-id" not in c.contents), None)
        if master is None or not ("rrule" in master.contents or "rdate" in master.contents):
            raise ToolFailed("this event does not repeat: leave recurrence_id out", INVALID)
        asked = _parse_when(when, tz, "recurrence_id").astimezone(tz)
        start = master.dtstart.value
        if not isinstance(start, dt.datetime):  # all-day: the day
            key, shown = asked.strftime("%Y%m%d"), asked.date().isoformat()
        elif start.tzinfo is None:  # floating: the wall-clock time, taken in the box's zone
            key, shown = asked.strftime("%Y%m%dT%H%M%S"), asked.isoformat(timespec="minutes")
        else:
            key, shown = asked.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ"), asked.isoformat(timespec="minutes")
        overridden = {events.instance_key(c.recurrence_id.value) for c in comps if "recurrence-id" in c.contents}
        if key not in overridden:
            target = events.rid_value(key)
            if not isinstance(target, dt.datetime):
                target = dt.datetime(target.year, target.month, target.day)
            try:
                rules = master.getrruleset(addRDate=True)
                second = dt.timedelta(seconds=1)
                found = any(s == target for s in rules.between(target - second, target + second, inc=True))
            except (TypeError, ValueError):
                found = False
            if not found:
                raise ToolFailed(f"no occurrence of this event starts at {when} (see recurrence_id in "
                                 "calendar_list_events)", NOT_FOUND)  # fmt: skip
        return key, shown

    def _attendees(self, address: str, values: list[str]) -> str:
        from gk.mcp.writetools import clean_address

        if len(values) > MAX_ATTENDEES:
            raise ToolFailed(f"at most {MAX_ATTENDEES} attendees", INVALID)
        out = [clean_address(v) for v in values]
        return ", ".join(a for a in dict.fromkeys(out) if a.lower() != address.lower())

    def _times(self, form: EventForm, args: dict[str, Any], old: tuple[Any, Any] | None) -> None:
        """The form's date and time fields from ``start``/``end``/``all_day`` (ISO 8601); with
        ``old`` (the event's start and end) a new start alone keeps the duration."""
        from gk.mcp.davtools import _parse_when

        tz = localtime.zone(self.ctx.data_dir)
        start_text, end_text = args.get("start"), args.get("end")
        all_day = args.get("all_day")
        if all_day is None:
            all_day = form.all_day if start_text is None else len(start_text) == 10
        if start_text is None and end_text is None and all_day == form.all_day:
            return
        if old is not None:
            old_start, old_end = old
            if isinstance(old_start, dt.datetime):
                old_start, old_end = old_start.astimezone(tz), old_end.astimezone(tz)
            else:
                old_start = dt.datetime(old_start.year, old_start.month, old_start.day, tzinfo=tz)
                old_end = dt.datetime(old_end.year, old_end.month, old_end.day, tzinfo=tz)
        start = _parse_when(start_text, tz, "start").astimezone(tz) if start_text else None
        end = _parse_when(end_text, tz, "end").astimezone(tz) if end_text else None
        if start is None:
            if old is None:
                raise ToolFailed("start is required", INVALID)
            start = old_start
        if end is None:
            length = (old_end - old_start) if old is not None and start_text else None
            if length is None and old is not None:
                end = old_end
            else:
                end = start + (length if length is not None else dt.timedelta(days=1 if all_day else 0, hours=0 if all_day else 1))  # fmt: skip
        form.all_day = bool(all_day)
        form.timezone = self._zone()
        if form.all_day:  # the form's end date is the last day; an all-day DTEND the day after
            last = end.date() - dt.timedelta(days=1) if end.date() > start.date() else start.date()
            form.start_date, form.end_date = start.date().isoformat(), last.isoformat()
        else:
            form.start_date, form.start_time = start.date().isoformat(), start.strftime("%H:%M")
            form.end_date, form.end_time = end.date().isoformat(), end.strftime("%H:%M")

    def _check(self, form: EventForm) -> None:
        from gk.web import calendar_events as events

        try:
            events.check_form(form)
        except events.FormError as exc:
            raise ToolFailed(f"{exc.name}: {exc}", INVALID) from exc

    def _view(self, form: EventForm, book: Book, occurrence: str = "") -> dict[str, Any]:
        """The event as the approval page and the tool's summary show it (the box's zone);
        ``occurrence``: the original start of the one occurrence concerned (else the event,
        or the whole series)."""
        from gk.web import calendar_events as events

        start, end = events.form_times(form)
        if form.all_day:
            when = (start.isoformat(), (end - dt.timedelta(days=1)).isoformat())
        else:
            assert isinstance(start, dt.datetime) and isinstance(end, dt.datetime)
            when = (start.isoformat(timespec="minutes"), end.isoformat(timespec="minutes"))
        return {
            "title": form.title,
            "start": when[0],
            "end": when[1],
            "all_day": form.all_day,
            "time_zone": form.timezone,
            "location": form.location,
            "description": form.description,
            "attendees": events.attendee_list(form.attendees),
            "calendar": book.path,
            "calendar_title": book.title,
            "repeats": bool(form.repeat or form.custom_rule),
            "occurrence": occurrence,
        }

    @staticmethod
    def _fields(form: EventForm) -> dict[str, Any]:
        data = dataclasses.asdict(form)
        return {k: data[k] for k in FIELDS}

    # -- create ---------------------------------------------------------------------------------
    def queue_create(self, address: str, args: dict[str, Any]) -> dict[str, Any]:
        from gk.web import calendar_events as events

        api = self._api_or_fail()
        book = self._calendar(api, address, args.get("calendar", ""))
        form = events.EventForm(title=args["title"].strip(), timezone=self._zone())
        form.location = args.get("location", "")
        form.description = args.get("description", "")
        form.attendees = self._attendees(address, args.get("attendees", []))
        self._times(form, args, None)
        self._check(form)
        view = self._view(form, book)
        who = f" with {', '.join(view['attendees'])[:120]}" if view["attendees"] else ""
        summary = f"create event {form.title[:100]!r} on {view['start']}{who}"
        payload = {"event": view, "form": self._fields(form)}
        return self.w.queue(address, "calendar_create_event", summary, payload)

    def run_create(self, owner: str, action: PendingAction) -> str:
        from gk.dav.webapi import Invalid, NotFound
        from gk.web import calendar_events as events

        api = self._api()
        form = events.EventForm(**action.payload["form"])
        path = action.payload["event"]["calendar"]
        try:
            saved = api.save(owner, path, events.organized(events.build_event(form), owner, form))
        except NotFound as exc:
            raise ActionFailed("the calendar is gone: nothing done", GONE) from exc
        except Invalid as exc:
            raise ActionFailed(str(exc)) from exc
        invited = len(events.attendee_list(form.attendees))
        return f"created event {saved.uid}" + (f", invitations to {invited} attendee(s)" if invited else "")

    # -- update ---------------------------------------------------------------------------------
    def queue_update(self, address: str, args: dict[str, Any]) -> dict[str, Any]:
        from gk.web import calendar_events as events

        api = self._api_or_fail()
        entry = self._find(api, address, args["uid"], args.get("calendar", ""))
        rid, occurrence = self._occurrence(entry.text, args["recurrence_id"]) if "recurrence_id" in args else ("", "")
        try:
            form = events.form_from_event(entry.text, self._zone(), rid=rid)
            old = events.form_times(form)
        except Exception as exc:  # stored by a client in a shape the form cannot show
            raise ToolFailed("this event cannot be edited here") from exc
        before = self._view(form, entry.book, occurrence)
        changed = [k for k in ("title", "start", "end", "all_day", "location", "description", "attendees") if k in args]
        if not changed:
            raise ToolFailed("nothing to change", INVALID)
        if "title" in args:
            form.title = args["title"].strip()
        if "location" in args:
            form.location = args["location"]
        if "description" in args:
            form.description = args["description"]
        if "attendees" in args:
            form.attendees = self._attendees(address, args["attendees"])
        self._times(form, args, old)
        self._check(form)
        view = self._view(form, entry.book, occurrence)
        only = f", the occurrence of {occurrence} only" if rid else ""
        summary = f"update event {form.title[:100]!r} ({', '.join(changed)}{only})"
        payload = {
            "event": view,
            "before": before,
            "changed": changed,
            "uid": entry.uid,
            "href": entry.href,
            "etag": entry.etag,
            "recurrence_id": rid,
            "form": self._fields(form),
        }
        return self.w.queue(address, "calendar_update_event", summary, payload)

    def run_update(self, owner: str, action: PendingAction) -> str:
        from gk.dav.webapi import Conflict, Invalid, NotFound
        from gk.web import calendar_events as events

        api = self._api()
        p = action.payload
        form = events.EventForm(**p["form"])
        path = p["event"]["calendar"]
        try:
            entry = api.entry(owner, path, p["href"], write=True)
            if entry.etag != p["etag"]:
                raise ActionFailed("the event was changed elsewhere since: nothing done", CHANGED)
            rid = p.get("recurrence_id", "")  # one occurrence: an override with its RECURRENCE-ID
            built = events.build_event(form, entry.text, rid=rid)
            api.save(owner, path, events.organized(built, owner, form), p["href"], p["etag"])
        except NotFound as exc:
            raise ActionFailed("the event is gone: nothing done", GONE) from exc
        except Conflict as exc:
            raise ActionFailed("the event was changed elsewhere since: nothing done", CHANGED) from exc
        except Invalid as exc:
            raise ActionFailed(str(exc)) from exc
        if p.get("recurrence_id"):
            return f"updated the occurrence of {p['event']['occurrence']} of event {p['uid']}"
        return f"updated event {p['uid']}"

    # -- cancel ---------------------------------------------------------------------------------
    def queue_cancel(self, address: str, args: dict[str, Any]) -> dict[str, Any]:
        from gk.web import calendar_events as events

        api = self._api_or_fail()
        entry = self._find(api, address, args["uid"], args.get("calendar", ""))
        rid, occurrence = self._occurrence(entry.text, args["recurrence_id"]) if "recurrence_id" in args else ("", "")
        try:
            view = self._view(events.form_from_event(entry.text, self._zone(), rid=rid), entry.book, occurrence)
        except Exception as exc:  # stored by a client in a shape the form cannot show
            raise ToolFailed("this event cannot be cancelled here") from exc
        who = f", cancellation to {', '.join(view['attendees'])[:120]}" if view["attendees"] else ""
        only = " (that occurrence only)" if rid else ""
        summary = f"cancel event {view['title'][:100]!r} on {view['start']}{only}{who}"
        payload = {"event": view, "uid": entry.uid, "href": entry.href, "etag": entry.etag, "recurrence_id": rid}
        return self.w.queue(address, "calendar_cancel_event", summary, payload)

    def run_cancel(self, owner: str, action: PendingAction) -> str:
        from gk.dav.webapi import Conflict, NotFound
        from gk.web import calendar_events as events

        api = self._api()
        p = action.payload
        path, rid = p["event"]["calendar"], p.get("recurrence_id", "")
        try:
            if not rid:
                api.delete(owner, path, p["href"], p["etag"])
                return f"cancelled event {p['uid']}"
            # one occurrence: an EXDATE on the series (its override, if any, dropped)
            entry = api.entry(owner, path, p["href"], write=True)
            if entry.etag != p["etag"]:
                raise ActionFailed("the event was changed elsewhere since: nothing done", CHANGED)
            api.save(owner, path, events.skip_occurrence(entry.text, rid), p["href"], p["etag"])
        except NotFound as exc:
            raise ActionFailed("the event is gone: nothing done", GONE) from exc
        except Conflict as exc:
            raise ActionFailed("the event was changed elsewhere since: nothing done", CHANGED) from exc
        return f"cancelled the occurrence of {p['event']['occurrence']} of event {p['uid']}"

    def _api_or_fail(self) -> DavWeb:
        try:
            return self._api()
        except ActionFailed as exc:
            raise ToolFailed(str(exc)) from exc

    # -- the tables -----------------------------------------------------------------------------
    def executors(self) -> dict[str, Executor]:
        return {
            "calendar_create_event": self.run_create,
            "calendar_update_event": self.run_update,
            "calendar_cancel_event": self.run_cancel,
        }

    def tools(self) -> list[Tool]:
        from gk.mcp.writetools import write_tool

        attendees = {
            "type": "array",
            "items": {"type": "string", "minLength": 3, "maxLength": 320},
            "maxItems": MAX_ATTENDEES,
            "description": "e-mail addresses invited (each gets the invitation by mail)",
        }
        fields: dict[str, Any] = {
            "title": {"type": "string", "minLength": 1, "maxLength": 500},
            "start": _WHEN,
            "end": {
                **_WHEN,
                "description": "ISO 8601; for an all-day event the day after the last (default: "
                "1 hour after start, or one day)",
            },  # fmt: skip
            "all_day": {"type": "boolean", "description": "default: true when start is a date"},
            "location": {"type": "string", "maxLength": 1000},
            "description": {"type": "string", "maxLength": 10_000},
            "attendees": attendees,
        }
        return [
            write_tool(
                "calendar_create_event",
                N_("Create a calendar event"),
                "Create an event in one of the user's calendars (default: the first), inviting attendees by mail.",
                {
                    "type": "object",
                    "properties": {**fields, "calendar": _CALENDAR},
                    "required": ["title", "start"],
                    "additionalProperties": False,
                },
                self.queue_create,
                destructive=False,
                idempotent=False,
                open_world=True,
            ),
            write_tool(
                "calendar_update_event",
                N_("Update a calendar event"),
                "Change an event of the user's calendars (the whole series of a repeating one, or with "
                "recurrence_id one occurrence only): only the fields given change; a new start alone keeps the "
                "duration. Attendees get the update by mail (of that occurrence only, when one).",
                {
                    "type": "object",
                    "properties": {"uid": _UID, "recurrence_id": _RID, "calendar": _CALENDAR, **fields},
                    "required": ["uid"],
                    "additionalProperties": False,
                },
                self.queue_update,
                destructive=False,
                idempotent=True,
                open_world=True,
            ),
            write_tool(
                "calendar_cancel_event",
                N_("Cancel a calendar event"),
                "Cancel (delete) an event of the user's calendars, the whole series of a repeating one, or with "
                "recurrence_id one occurrence only; attendees get the cancellation by mail (of that occurrence "
                "only, when one).",
                {
                    "type": "object",
                    "properties": {"uid": _UID, "recurrence_id": _RID, "calendar": _CALENDAR},
                    "required": ["uid"],
                    "additionalProperties": False,
                },
                self.queue_cancel,
                destructive=True,
                idempotent=True,
                open_world=True,
            ),
        ]


__all__ = ["CalendarWrite"]
