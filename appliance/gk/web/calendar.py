"""The web calendar: month, week and agenda views, events created, edited and deleted, a task
list, and .ics import and export, on the same collections CalDAV clients sync (``gk.dav.webapi``).

Every handler names collections by path (``owner/name``) and items by href as the DAV URLs do,
and every lookup goes through the rights plugin for the signed-in user: another user's
calendar or event is a 404, exactly like one that does not exist. The first visit creates the
user's default calendar, task list and address book if DAV has not yet (``DAVService.ensure_user``,
idempotent). Times are shown in the owner's zone (``gk.localtime``).

Cost: the first calendar or contacts page imports Radicale if no DAV client has yet (~18 MB,
``gk.dav.service``); a month view reads only the objects whose indexed time range meets it
and parses and expands those (vobject, dateutil) in the CPU pool, at most
``calendar_events.MAX_OCCURRENCES`` per object and ``recurrence.MAX_STEPS`` steps of a rule's walk.
Imports are parsed in the CPU pool too (``gk.dav.webapi``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import bottle

from gk import localtime, pools
from gk.accounts import User
from gk.dav.service import DAVService
from gk.dav.webapi import CALENDAR, Book, DavWeb, Entry, Invalid, NotFound, new_uid
from gk.locale import N_
from gk.web import calendar_events as events
from gk.web import davfiles, flash, forms
from gk.web.app import Web
from gk.web.i18n import translator

MONTHS = (
    N_("January"),
    N_("February"),
    N_("March"),
    N_("April"),
    N_("May"),
    N_("June"),
    N_("July"),
    N_("August"),
    N_("September"),
    N_("October"),
    N_("November"),
    N_("December"),
)
WEEKDAYS = (N_("Mon"), N_("Tue"), N_("Wed"), N_("Thu"), N_("Fri"), N_("Sat"), N_("Sun"))
VIEWS = ("month", "week", "agenda")
AGENDA_DAYS = 30
REPEATS = (
    ("", N_("Does not repeat")),
    ("DAILY", N_("Every day")),
    ("WEEKLY", N_("Every week")),
    ("MONTHLY", N_("Every month")),
    ("YEARLY", N_("Every year")),
)
# the default collections (gk.dav.service.DEFAULT_COLLECTIONS): display name -> collection name
DEFAULT_TITLES = {N_("Calendar"): "calendar", N_("Tasks"): "tasks", N_("Contacts"): "contacts"}
# calendar.css's .cal0-.cal7 (the CSP allows no inline style, so no arbitrary colour)
PALETTE = ("#1d5fd1", "#1e7d32", "#b3261e", "#8a5a00", "#6a3fb5", "#00796b", "#c2185b", "#455a64")
DEFAULT_COLOR = "#1d5fd1"


def davweb(web: Web) -> DavWeb:
    """The DAV bridge, or 404 when calendars and contacts are off on this box."""
    svc = web.ctx.services.maybe(DAVService)
    if svc is None:
        raise bottle.HTTPError(404, N_("Calendars and contacts are turned off on this server."))
    try:
        return web.attached(DavWeb)
    except KeyError:
        api = DavWeb(svc)
        web.attach(api)
        return api


def signed_in(web: Web) -> tuple[User, DavWeb]:
    user = web.signed_in()
    api = davweb(web)
    api.ensure(user.address)
    return user, api


def zone_name(web: Web) -> str:
    return str(getattr(localtime.zone(web.data_dir), "key", "UTC"))


def _date_param(value: str, today: dt.date) -> dt.date:
    """The ``date`` of the URL, today if missing or malformed, kept within 1900-2999 (a month
    after 9999-12 has no date, and POSIX timestamps of year 1 are outside the storage's range)."""
    try:
        day = dt.date.fromisoformat(value) if value else today
    except ValueError:
        return today
    return min(max(day, dt.date(1900, 1, 1)), dt.date(2999, 12, 1))


@dataclass
class Day:
    date: dt.date
    in_range: bool
    today: bool
    items: list[events.Occurrence] = field(default_factory=list)
    slots: list[Slot] = field(default_factory=list)  # the week grid's timed blocks
    lanes: int = 1

    @property
    def all_day(self) -> list[events.Occurrence]:
        return [o for o in self.items if o.all_day]


@dataclass
class Slot:
    """A timed occurrence's block in one day column of the week grid: rows of 15 minutes
    (1-96), a lane for overlapping blocks. Classes, not inline styles: the CSP allows none."""

    occ: events.Occurrence
    row: int
    span: int
    lane: int = 0

    @property
    def classes(self) -> str:
        return f"r{self.row} s{self.span} c{self.lane + 1}"


MAX_LANES = 4


def _quarter(value: dt.datetime) -> int:
    return (value.hour * 60 + value.minute) // 15


def _slots(day: dt.date, items: list[events.Occurrence], tz: dt.tzinfo) -> tuple[list[Slot], int]:
    """Blocks of the timed occurrences of ``day`` (wall-clock rows), and the lanes they need."""
    start = dt.datetime.combine(day, dt.time(0), tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tz)
    out: list[Slot] = []
    for o in items:
        if o.all_day or not isinstance(o.start, dt.datetime) or not isinstance(o.end, dt.datetime):
            continue
        first = _quarter(o.start) if o.start >= start else 0
        last = _quarter(o.end) if o.end < end else 96
        span = max(1, min(last, 96) - first)
        out.append(Slot(o, first + 1, min(span, 96 - first)))
    out.sort(key=lambda b: (b.row, -b.span))
    lane_ends: list[int] = []
    for b in out:
        lane = next((i for i, stop in enumerate(lane_ends) if stop <= b.row), len(lane_ends))
        if lane == len(lane_ends):
            lane_ends.append(0)
        lane_ends[lane] = b.row + b.span
        b.lane = min(lane, MAX_LANES - 1)
    return out, min(max(len(lane_ends), 1), MAX_LANES)


def _window(view: str, day: dt.date) -> tuple[dt.date, dt.date]:
    if view == "month":
        first = day.replace(day=1)
        start = first - dt.timedelta(days=first.weekday())
        nxt = (first + dt.timedelta(days=32)).replace(day=1)
        end = nxt + dt.timedelta(days=(7 - nxt.weekday()) % 7)
        return start, end
    if view == "week":
        start = day - dt.timedelta(days=day.weekday())
        return start, start + dt.timedelta(days=7)
    return day, day + dt.timedelta(days=AGENDA_DAYS)


def _step(view: str, day: dt.date, forward: bool) -> dt.date:
    sign = 1 if forward else -1
    if view == "month":
        month = day.month - 1 + sign
        return dt.date(day.year + month // 12, month % 12 + 1, 1)
    return day + dt.timedelta(days=sign * (7 if view == "week" else AGENDA_DAYS))


def load_occurrences(
    api: DavWeb, user: str, books: list[Book], first: dt.date, last: dt.date, tz: dt.tzinfo
) -> list[events.Occurrence]:
    """Occurrences in [first, last) (local dates), from the storage's indexed ranges then parsed
    and expanded in the CPU pool (``expand``)."""
    start = dt.datetime.combine(first, dt.time(0), tz)
    end = dt.datetime.combine(last, dt.time(0), tz)
    # floating times and dates are indexed as UTC by Radicale: a day of margin each side
    lo, hi = int(start.timestamp()) - 86400, int(end.timestamp()) + 86400
    found: list[Entry] = []
    for book in books:
        found.extend(e for e in api.entries(user, book, lo, hi) if e.component == "VEVENT")
    if not found:
        return []
    return pools.run_cpu(expand, found, start, end, tz)


def expand(entries: list[Entry], start: dt.datetime, end: dt.datetime, tz: dt.tzinfo) -> list[events.Occurrence]:
    """The sorted occurrences of ``entries`` in [start, end). Pure Python that never yields
    (vobject parses, dateutil walks each rule: up to ``recurrence.MAX_STEPS`` steps, about a
    second, per object): run in the CPU pool, so one user's heavy recurring calendar keeps no
    other request waiting on the hub."""
    out: list[events.Occurrence] = []
    for entry in entries:
        out.extend(events.occurrences(entry, start, end, tz))
    out.sort(key=lambda o: o.sort_key())
    return out


def labels(web: Web) -> dict[str, Any]:
    """Date words in the viewer's language for the templates."""
    _ = translator(web.lang())

    def month_year(d: dt.date) -> str:
        return _("{month} {year}", month=_(MONTHS[d.month - 1]), year=d.year)

    def day_label(d: dt.date) -> str:
        return _("{weekday} {month} {day}", weekday=_(WEEKDAYS[d.weekday()]), month=_(MONTHS[d.month - 1]), day=d.day)

    def hm(value: dt.date | dt.datetime) -> str:
        return value.strftime("%H:%M") if isinstance(value, dt.datetime) else ""

    def color(book: Book) -> str:
        """The palette class of a calendar's colour (calendar.css ``.cal0``-``.cal7``)."""
        if book.color.lower() == DEFAULT_COLOR:
            return "cal0" if book.name == "calendar" else f"cal{sum(book.path.encode()) % len(PALETTE)}"
        rgb = tuple(int(book.color[i : i + 2], 16) for i in (1, 3, 5))
        best = min(
            range(len(PALETTE)),
            key=lambda i: sum((a - int(PALETTE[i][j : j + 2], 16)) ** 2 for a, j in zip(rgb, (1, 3, 5), strict=True)),
        )
        return f"cal{best}"

    def btitle(book: Book) -> str:
        """The default collections' names in the viewer's language (they are stored in English)."""
        if book.title in DEFAULT_TITLES and book.name == DEFAULT_TITLES[book.title]:
            return _(book.title)
        return book.title

    return {
        "btitle": btitle,
        "color": color,
        "month_year": month_year,
        "day_label": day_label,
        "weekdays": [_(w) for w in WEEKDAYS],
        "hm": hm,
    }


def calendar_page(web: Web) -> str:
    user, api = signed_in(web)
    tz = localtime.zone(web.data_dir)
    today = dt.datetime.now(tz).date()
    q = bottle.request.query
    view = q.get("view", "month")
    view = view if view in VIEWS else "month"
    day = _date_param(q.get("date", ""), today)
    first, last = _window(view, day)
    books = [b for b in api.books(user.address, CALENDAR) if b.has_events]
    found = load_occurrences(api, user.address, books, first, last, tz)
    days = [
        Day(first + dt.timedelta(days=i), True, first + dt.timedelta(days=i) == today)
        for i in range((last - first).days)
    ]
    if view == "month":
        for d in days:
            d.in_range = d.date.month == day.month
    by_date = {d.date: d for d in days}
    for occ in found:
        for covered in occ.days():
            if covered in by_date:
                by_date[covered].items.append(occ)
    if view == "week":
        for d in days:
            d.slots, d.lanes = _slots(d.date, d.items, tz)
    notice = davfiles.imported_notice(web) or flash.take(web).get("notice", "")
    return web.render(
        "calendar/view.html",
        view=view,
        day=day,
        today=today,
        first=first,
        last=last,
        last_day=last - dt.timedelta(days=1),
        weeks=[days[i : i + 7] for i in range(0, len(days), 7)],
        days=days,
        prev=_step(view, day, False),
        next=_step(view, day, True),
        books=books,
        writable=[b for b in books if b.writable],
        zone=zone_name(web),
        notice=notice,
        error=q.get("error", "") == "import" and web.gettext(N_("The import failed.")) or "",
        **labels(web),
    )


# -- one event -----------------------------------------------------------------------------------
def _form_page(
    web: Web,
    api: DavWeb,
    user: User,
    form: events.EventForm,
    cal: str,
    href: str,
    etag: str,
    error: str = "",
    occ: str = "",
    invited_by: str = "",
) -> str:
    books = [b for b in api.books(user.address, CALENDAR) if b.has_events and (b.writable or b.path == cal)]
    return web.render(
        "calendar/event.html",
        form=form,
        cal=cal,
        href=href,
        etag=etag,
        books=books,
        repeats=REPEATS,
        reminders=events.REMINDERS,
        zones=sorted(localtime.valid_zones()),
        error=error,
        occ=occ,
        invited_by=invited_by,
        **labels(web),
        readonly=bool(href) and not any(b.path == cal and b.writable for b in books),
    )


def event_form(web: Web) -> str:
    user, api = signed_in(web)
    q = bottle.request.query
    cal, href = q.getunicode("cal", default="") or "", q.getunicode("href", default="") or ""
    zone = zone_name(web)
    if href:
        occ = q.get("occ", "")
        try:
            entry = api.entry(user.address, cal, href)
            series = events.form_from_event(entry.text, zone)
            if occ and (series.repeat or series.custom_rule):
                events.rid_value(occ)  # ValueError for a malformed one: the series is shown
                form = events.form_from_event(entry.text, zone, occ)
            else:
                form, occ = series, ""
        except NotFound:
            raise bottle.HTTPError(404, N_("Not found")) from None
        except ValueError:
            form, occ = series, ""
        except Exception:  # stored by a client in a shape the form cannot show
            raise bottle.HTTPError(404, N_("Not found")) from None
        return _form_page(
            web, api, user, form, entry.book.path, entry.href, entry.etag, occ=occ,
            invited_by=_invited_by(web, user, entry.text),
        )  # fmt: skip
    tz = localtime.zone(web.data_dir)
    day = _date_param(q.get("date", ""), dt.datetime.now(tz).date())
    form = events.EventForm(start_date=day.isoformat(), end_date=day.isoformat(), timezone=zone)
    mine = [b for b in api.books(user.address, CALENDAR) if b.has_events and b.writable]
    return _form_page(web, api, user, form, cal or (mine[0].path if mine else ""), "", "")


def _invited_by(web: Web, user: User, text: str) -> str:
    """Who invited ``user`` to the event of ``text`` (its organizer), "" for their own events."""
    organizer = events.organizer_of(text)
    if not organizer or organizer == user.address.lower():
        return ""
    owner = web.ctx.accounts.resolve_recipient(organizer, roles=False)
    return "" if owner is not None and owner.id == user.id else organizer  # (an alias of theirs)


def event_save(web: Web) -> Any:
    user, api = signed_in(web)
    cal, href, etag = forms.text("cal"), forms.text("href"), forms.text("etag")
    zone = zone_name(web)
    form = events.read_form(forms.text, zone)
    try:
        events.check_form(form)
    except events.FormError as e:
        form.errors[e.name] = web.gettext(e.template, **e.params)
        return _form_page(web, api, user, form, cal, href, etag, occ=forms.text("occ"))
    occ = forms.text("occ") if href else ""
    try:
        if occ:
            events.rid_value(occ)
    except ValueError:
        raise bottle.HTTPError(400, N_("Bad request")) from None
    try:
        old = api.entry(user.address, cal, href, write=True).text if href else ""
        api.save(
            user.address,
            cal,
            events.organized(events.build_event(form, old, occ), user.address, form),
            href=href,
            etag=etag,
        )
    except NotFound:
        raise bottle.HTTPError(404, N_("Not found")) from None
    except Invalid as e:
        return _form_page(web, api, user, form, cal, href, etag, error=web.error_text(e), occ=occ)
    start = events.form_times(form)[0]
    day = start.date() if isinstance(start, dt.datetime) else start
    # said on the month it lands on: on a phone the event shows there as a few clipped letters
    when = labels(web)["day_label"](day) + ("" if form.all_day else f" {form.start_time}")
    flash.redirect(
        web,
        "/calendar?" + urllib.parse.urlencode({"date": day.isoformat()}),
        web.gettext("Saved “{title}” ({when}).", title=form.title, when=when),
    )


@contextlib.contextmanager
def answering() -> Iterator[None]:
    """A deletion from the web calendar answers an invitation as a CalDAV client's does (RFC 6638
    §3.2.2, ``gk.dav.itip``): the whole event or one occurrence of someone else's is declined to
    its organizer. (Accept/Decline buttons answer through ``gk.dav.invites`` instead.)"""
    from gk.dav.storage import DAV_CLIENT  # (Radicale's modules: imported once DAV serves, not before)

    reset = DAV_CLIENT.set(True)
    try:
        yield
    finally:
        DAV_CLIENT.reset(reset)


def event_skip(web: Web) -> None:
    """Delete one occurrence of a repeating event (the others stay)."""
    user, api = signed_in(web)
    cal, href, etag = forms.text("cal"), forms.text("href"), forms.text("etag")
    try:
        entry = api.entry(user.address, cal, href, write=True)
        with answering():
            api.save(user.address, cal, events.skip_occurrence(entry.text, forms.text("occ")), href=href, etag=etag)
    except NotFound:
        raise bottle.HTTPError(404, N_("Not found")) from None
    except Invalid as e:
        raise bottle.HTTPError(409, web.error_text(e)) from None
    except ValueError:
        raise bottle.HTTPError(400, N_("Bad request")) from None
    raise bottle.redirect("/calendar", 303)


def event_delete(web: Web) -> Any:
    user, api = signed_in(web)
    with answering():
        return davfiles.delete_item(web, user, api, "cal", "/calendar")


# -- import / export -------------------------------------------------------------------------------
def export(web: Web) -> Any:
    user, api = signed_in(web)
    return davfiles.export(user, api, "cal", CALENDAR, "text/calendar", ".ics")


def import_file(web: Web) -> Any:
    user, api = signed_in(web)
    return davfiles.import_file(web, user, api, "cal", "/calendar")


# -- tasks -------------------------------------------------------------------------------------------
@dataclass
class Task:
    book: Book
    href: str
    etag: str
    title: str
    due: str
    done: bool


def _tasks(api: DavWeb, user: str, books: list[Book]) -> list[Task]:
    """The tasks of ``books``: read from the storage here, parsed in the CPU pool (``task_rows``)."""
    found = [e for book in books for e in api.entries(user, book) if e.component == "VTODO"]
    return pools.run_cpu(task_rows, found) if found else []


def task_rows(entries: list[Entry]) -> list[Task]:
    """The sorted tasks of ``entries`` (VTODO objects; what vobject cannot read is left out).
    vobject's parse is pure Python that never yields: in the CPU pool, so a long task list keeps
    no other request waiting on the hub."""
    out = []
    for entry in entries:
        try:
            todo = events.parse(entry.text).vtodo
        except Exception:
            continue
        due = getattr(todo, "due", None)
        due_text = ""
        if due is not None and isinstance(due.value, dt.date):
            due_text = due.value.date().isoformat() if isinstance(due.value, dt.datetime) else due.value.isoformat()
        status = str(getattr(todo, "status", None) and todo.status.value or "").upper()
        done = status == "COMPLETED" or hasattr(todo, "completed")
        title = str(todo.summary.value) if hasattr(todo, "summary") else ""
        out.append(Task(entry.book, entry.href, entry.etag, title, due_text, done))
    out.sort(key=lambda t: (t.done, t.due or "9999", t.title.lower()))
    return out


def tasks_page(web: Web, error: str = "") -> str:
    user, api = signed_in(web)
    books = [b for b in api.books(user.address, CALENDAR) if b.is_tasks]
    return web.render(
        "calendar/tasks.html",
        tasks=_tasks(api, user.address, books),
        books=[b for b in books if b.writable],
        error=error,
        **labels(web),
    )


def task_add(web: Web) -> Any:
    import vobject  # type: ignore[import-untyped]

    user, api = signed_in(web)
    title, due = forms.text("title"), forms.text("due")
    if not title:
        return tasks_page(web, web.gettext(N_("Give the task a title.")))
    cal = vobject.iCalendar()
    todo = cal.add("vtodo")
    todo.add("uid").value = new_uid()
    todo.add("summary").value = title[:500]
    todo.add("status").value = "NEEDS-ACTION"
    todo.add("dtstamp").value = dt.datetime.now(_utc()).replace(microsecond=0)
    if due:
        try:
            todo.add("due").value = dt.date.fromisoformat(due)
        except ValueError:
            return tasks_page(web, web.gettext(N_("Give a date as YYYY-MM-DD.")))
    try:
        api.save(user.address, forms.text("cal"), events.parse(cal.serialize()))
    except NotFound:
        raise bottle.HTTPError(404, N_("Not found")) from None
    except Invalid as e:
        return tasks_page(web, web.error_text(e))
    raise bottle.redirect("/calendar/tasks", 303)


def _utc() -> dt.tzinfo:
    from dateutil import tz as dateutil_tz  # type: ignore[import-untyped]

    return dateutil_tz.UTC


def task_toggle(web: Web) -> Any:
    user, api = signed_in(web)
    cal, href = forms.text("cal"), forms.text("href")
    try:
        entry = api.entry(user.address, cal, href, write=True)
        item = events.parse(entry.text)
        todo = item.vtodo
        done = str(getattr(todo, "status", None) and todo.status.value or "").upper() == "COMPLETED"
        for name in ("status", "completed", "percent_complete"):
            while hasattr(todo, name):
                todo.remove(getattr(todo, name))
        if done:
            todo.add("status").value = "NEEDS-ACTION"
        else:
            todo.add("status").value = "COMPLETED"
            todo.add("completed").value = dt.datetime.now(_utc()).replace(microsecond=0)
            todo.add("percent-complete").value = "100"
        api.save(user.address, cal, events.parse(item.serialize()), href=href, etag=forms.text("etag"))
    except NotFound:
        raise bottle.HTTPError(404, N_("Not found")) from None
    except Invalid as e:
        return tasks_page(web, web.error_text(e))
    raise bottle.redirect("/calendar/tasks", 303)


def task_delete(web: Web) -> Any:
    user, api = signed_in(web)
    return davfiles.delete_item(web, user, api, "cal", "/calendar/tasks", lambda error: tasks_page(web, error))
