"""Events of the web calendar: occurrences of stored calendar objects in a window, and the
edit form's fields to and from a VEVENT.

Parsing is vobject's (Radicale's own dependency): ``RRULE``/``RDATE``/``EXDATE`` expand through
its dateutil ``rruleset``; a component with a ``RECURRENCE-ID`` replaces the occurrence it
names. Times with a ``TZID`` are shown in the viewer's zone (``gk.localtime``); floating times
and all-day dates are taken as they are written. An edit rewrites only the properties the form
shows on the series' master component and keeps every other property, parameter, exception
and alarm it does not manage, so what a phone wrote is not lost by editing it in the web.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gk.dav import recurrence
from gk.dav.webapi import PRODID, Book, Entry, instance_key, new_uid
from gk.locale import N_

recurrence.install()  # a FREQ=SECONDLY event walks at most MAX_STEPS occurrences (in the CPU pool: gk.web.calendar)

MAX_OCCURRENCES = 1000  # per object and window: a FREQ=SECONDLY rule cannot flood a page
FREQS = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
REMINDERS = (0, 5, 10, 15, 30, 60, 120, 1440, 2880, 10080)  # minutes before the start


class FormError(ValueError):
    def __init__(self, name: str, template: str, **params: object):
        super().__init__(template.format(**params) if params else template)
        self.name = name
        self.template = template
        self.params = params


class _Zone(zoneinfo.ZoneInfo):
    """A ZoneInfo that vobject names by its IANA key (``TZID:Europe/Paris``, not ``CET``)."""

    @property
    def zone(self) -> str:
        return str(self.key)


def zone(name: str) -> zoneinfo.ZoneInfo:
    return _Zone(name)


@dataclass
class Occurrence:
    book: Book
    href: str
    uid: str
    title: str
    start: dt.datetime | dt.date
    end: dt.datetime | dt.date
    all_day: bool
    location: str = ""
    recurring: bool = False
    rid: str = ""  # of a repeating event's occurrence: its RECURRENCE-ID (``_key``)

    def days(self) -> list[dt.date]:
        """The local dates this occurrence covers (an all-day DTEND is exclusive)."""
        first = _as_date(self.start)
        last = _as_date(self.end)
        if self.all_day or (isinstance(self.end, dt.datetime) and self.end.time() == dt.time(0) and last > first):
            last = last - dt.timedelta(days=1)
        last = max(first, last)
        return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]

    def sort_key(self) -> tuple[int, str, str]:
        when = self.start if isinstance(self.start, dt.datetime) else dt.datetime.combine(self.start, dt.time(0))
        return (0 if self.all_day else 1, when.replace(tzinfo=None).isoformat(), self.title.lower())


def _as_date(value: dt.date | dt.datetime) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


def _value(comp: Any, name: str, default: Any = None) -> Any:
    line = getattr(comp, name, None) if hasattr(comp, name) else None
    return line.value if line is not None else default


def _text(comp: Any, name: str) -> str:
    value = _value(comp, name, "")
    return value if isinstance(value, str) else str(value or "")


def _is_all_day(value: Any) -> bool:
    return isinstance(value, dt.date) and not isinstance(value, dt.datetime)


def _duration(comp: Any, start: Any) -> dt.timedelta:
    end = _value(comp, "dtend")
    if (
        end is not None
        and type(end) is type(start)
        or (isinstance(end, dt.datetime) and isinstance(start, dt.datetime))
    ):
        try:
            return max(dt.timedelta(0), end - start)
        except TypeError:  # one floating, one with a zone
            return max(dt.timedelta(0), end.replace(tzinfo=None) - start.replace(tzinfo=None))
    duration = _value(comp, "duration")
    if isinstance(duration, dt.timedelta):
        return max(dt.timedelta(0), duration)
    return dt.timedelta(days=1) if _is_all_day(start) else dt.timedelta(0)


def _local(value: dt.date | dt.datetime, tz: dt.tzinfo) -> dt.date | dt.datetime:
    if isinstance(value, dt.datetime):
        return value.astimezone(tz) if value.tzinfo is not None else value.replace(tzinfo=tz)
    return value


def parse(text: str) -> Any:
    import vobject  # type: ignore[import-untyped]

    return vobject.readOne(text)


def occurrences(entry: Entry, start: dt.datetime, end: dt.datetime, tz: dt.tzinfo) -> list[Occurrence]:
    """The occurrences of the VEVENTs of ``entry`` that meet [start, end) (aware, viewer's zone)."""
    try:
        cal = parse(entry.text)
    except Exception:
        return []
    comps = list(getattr(cal, "vevent_list", []))
    overrides = {instance_key(_value(c, "recurrence_id")): c for c in comps if hasattr(c, "recurrence_id")}
    out: list[Occurrence] = []
    for comp in comps:
        if hasattr(comp, "recurrence_id"):
            continue
        first = _value(comp, "dtstart")
        if not isinstance(first, dt.date):
            continue
        length = _duration(comp, first)
        starts: list[Any]
        recurring = hasattr(comp, "rrule") or hasattr(comp, "rdate")
        if recurring:
            try:
                rules = comp.getrruleset(addRDate=True)
            except Exception:
                rules = None
            if rules is None:
                starts = [first]
            else:
                if isinstance(first, dt.datetime) and first.tzinfo is not None:
                    lo, hi = start - length, end
                else:
                    lo, hi = (start - length).replace(tzinfo=None), end.replace(tzinfo=None)
                starts = []
                try:
                    for s in rules.xafter(lo - dt.timedelta(seconds=1), count=MAX_OCCURRENCES, inc=True):
                        if s >= hi:
                            break
                        starts.append(s.date() if _is_all_day(first) else s)
                except (TypeError, ValueError):
                    starts = [first]
        else:
            starts = [first]
        for s in starts:
            if recurring and instance_key(s) in overrides:
                continue
            rid = instance_key(s) if recurring else ""
            out.extend(_occurrence(entry, comp, s, s + length, start, end, tz, recurring, rid))
    for rid, rid_comp in overrides.items():
        s = _value(rid_comp, "dtstart")
        if isinstance(s, dt.date):
            out.extend(_occurrence(entry, rid_comp, s, s + _duration(rid_comp, s), start, end, tz, True, rid))
    return out


def _occurrence(
    entry: Entry,
    comp: Any,
    s: Any,
    e: Any,
    win_start: dt.datetime,
    win_end: dt.datetime,
    tz: dt.tzinfo,
    recurring: bool,
    rid: str,
) -> list[Occurrence]:
    all_day = _is_all_day(s)
    ls, le = _local(s, tz), _local(e, tz)
    if all_day:
        if not (ls < win_end.date() and le > win_start.date()) and not (ls == le and win_start.date() <= ls):
            return []
    else:
        assert isinstance(ls, dt.datetime) and isinstance(le, dt.datetime)
        if not (ls < win_end and (le > win_start or (le == ls and ls >= win_start))):
            return []
    status = _text(comp, "status").upper()
    if status == "CANCELLED" and recurring and hasattr(comp, "recurrence_id"):
        return []
    return [
        Occurrence(
            book=entry.book,
            href=entry.href,
            uid=entry.uid,
            title=_text(comp, "summary") or "",
            start=ls,
            end=le,
            all_day=all_day,
            location=_text(comp, "location"),
            recurring=recurring,
            rid=rid,
        )
    ]


def rid_value(rid: str) -> dt.date | dt.datetime:
    """The date or time a ``_key`` names (ValueError if it names none)."""
    from dateutil import tz as dateutil_tz  # type: ignore[import-untyped]

    if re.fullmatch(r"\d{8}T\d{6}Z", rid):
        return dt.datetime.strptime(rid, "%Y%m%dT%H%M%SZ").replace(tzinfo=dateutil_tz.UTC)
    if re.fullmatch(r"\d{8}T\d{6}", rid):
        return dt.datetime.strptime(rid, "%Y%m%dT%H%M%S")
    if re.fullmatch(r"\d{8}", rid):
        return dt.datetime.strptime(rid, "%Y%m%d").date()
    raise ValueError(rid)


def skip_occurrence(text: str, rid: str) -> Any:
    """The object without the occurrence ``rid``: an EXDATE on the series, its override dropped."""
    when = rid_value(rid)
    cal = parse(text)
    comps = list(getattr(cal, "vevent_list", []))
    master = next((c for c in comps if not hasattr(c, "recurrence_id")), None)
    if master is None or not (hasattr(master, "rrule") or hasattr(master, "rdate")):
        raise ValueError("not a repeating event")
    for comp in comps:
        if hasattr(comp, "recurrence_id") and instance_key(_value(comp, "recurrence_id")) == rid:
            cal.remove(comp)
    master.add("exdate").value = [when]
    return parse(cal.serialize())


# -- the edit form ---------------------------------------------------------------------------
@dataclass
class EventForm:
    title: str = ""
    all_day: bool = False
    start_date: str = ""
    start_time: str = "09:00"
    end_date: str = ""
    end_time: str = "10:00"
    timezone: str = "UTC"
    location: str = ""
    description: str = ""
    repeat: str = ""  # "" or one of FREQS
    repeat_end: str = "never"  # never | count | until
    count: str = ""
    until: str = ""
    reminder: str = ""  # minutes before, "" for none
    attendees: str = ""
    custom_rule: str = ""  # a rule the form cannot show (kept unless the repeat fields change)
    errors: dict[str, str] = field(default_factory=dict)


def form_from_event(text: str, zone_name: str, rid: str = "") -> EventForm:
    """The form of the series' master VEVENT (times in their own zone when they have one), or
    with ``rid`` of that one occurrence: its override, else the master moved to its date."""
    cal = parse(text)
    comps = [c for c in getattr(cal, "vevent_list", []) if not hasattr(c, "recurrence_id")] or list(
        getattr(cal, "vevent_list", [])
    )
    if not comps:
        raise ValueError("no VEVENT")
    comp = comps[0]
    start = _value(comp, "dtstart")
    if rid:
        override = _override(cal, rid)
        if override is not None:
            f = form_from_component(override, zone_name)
        else:
            f = form_from_component(comp, zone_name, moved_to=_rid_like(rid, start))
        f.repeat, f.custom_rule, f.repeat_end, f.count, f.until = "", "", "never", "", ""
        return f
    return form_from_component(comp, zone_name)


def _override(cal: Any, rid: str) -> Any:
    for c in getattr(cal, "vevent_list", []):
        if hasattr(c, "recurrence_id") and instance_key(_value(c, "recurrence_id")) == rid:
            return c
    return None


def _rid_like(rid: str, start: Any) -> dt.date | dt.datetime:
    """The occurrence ``rid`` in the form of the series' DTSTART (its zone, or floating, or a date)."""
    when = rid_value(rid)
    if isinstance(start, dt.datetime) and isinstance(when, dt.datetime):
        if start.tzinfo is not None and when.tzinfo is not None:
            return when.astimezone(start.tzinfo)
        return when.replace(tzinfo=start.tzinfo)
    if _is_all_day(start) and isinstance(when, dt.datetime):
        return when.date()
    return when


def form_from_component(comp: Any, zone_name: str, moved_to: dt.date | dt.datetime | None = None) -> EventForm:
    start = _value(comp, "dtstart")
    length = _duration(comp, start)
    if moved_to is not None and type(moved_to) is type(start):
        start = moved_to
    f = EventForm(title=_text(comp, "summary"), location=_text(comp, "location"))
    f.description = _text(comp, "description")
    f.timezone = zone_name
    if _is_all_day(start):
        f.all_day = True
        end = start + length - dt.timedelta(days=1)
        f.start_date, f.end_date = start.isoformat(), max(start, end).isoformat()
    elif isinstance(start, dt.datetime):
        end = start + length
        if start.tzinfo is not None:
            key = getattr(start.tzinfo, "key", None) or getattr(start.tzinfo, "zone", None)
            if isinstance(key, str) and _known_zone(key):
                f.timezone = key
                start, end = start.astimezone(zone(key)), end.astimezone(zone(key))
            else:
                start, end = start.astimezone(zone(zone_name)), end.astimezone(zone(zone_name))
        f.start_date, f.start_time = start.date().isoformat(), start.strftime("%H:%M")
        f.end_date, f.end_time = end.date().isoformat(), end.strftime("%H:%M")
    rrule = getattr(comp, "rrule", None)
    if rrule is not None:
        rule = _parse_rule(str(rrule.value))
        simple = set(rule) <= {"FREQ", "COUNT", "UNTIL", "INTERVAL"} and rule.get("INTERVAL", "1") == "1"
        if simple and rule.get("FREQ") in FREQS and len(getattr(comp, "rrule_list", [])) == 1:
            f.repeat = rule["FREQ"]
            if "COUNT" in rule:
                f.repeat_end, f.count = "count", rule["COUNT"]
            elif "UNTIL" in rule:
                u = rule["UNTIL"]
                f.repeat_end, f.until = "until", f"{u[0:4]}-{u[4:6]}-{u[6:8]}"
        else:
            f.custom_rule = str(rrule.value)
    for alarm in getattr(comp, "valarm_list", []):
        trigger = _value(alarm, "trigger")
        if isinstance(trigger, dt.timedelta) and trigger <= dt.timedelta(0):
            f.reminder = str(int(-trigger.total_seconds() // 60))
            break
    people = []
    for att in getattr(comp, "attendee_list", []):
        value = str(att.value)
        people.append(value[7:] if value.lower().startswith("mailto:") else value)
    f.attendees = ", ".join(people)
    return f


def _parse_rule(value: str) -> dict[str, str]:
    out = {}
    for part in value.split(";"):
        k, _, v = part.partition("=")
        if k:
            out[k.strip().upper()] = v.strip()
    return out


def _known_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def read_form(get: Callable[[str], str], default_zone: str) -> EventForm:
    """The posted fields (``get(name) -> str``), unchecked (``check_form``)."""
    return EventForm(
        title=get("title"),
        all_day=get("all_day") == "1",
        start_date=get("start_date"),
        start_time=get("start_time") or "09:00",
        end_date=get("end_date") or get("start_date"),
        end_time=get("end_time") or get("start_time") or "10:00",
        timezone=get("timezone") or default_zone,
        location=get("location"),
        description=get("description"),
        repeat=get("repeat").upper(),
        repeat_end=get("repeat_end") or "never",
        count=get("count"),
        until=get("until"),
        reminder=get("reminder"),
        attendees=get("attendees"),
        custom_rule=get("custom_rule"),
    )


def check_form(f: EventForm) -> None:
    """FormError for the first bad field."""
    if not f.title:
        raise FormError("title", N_("Give the event a title."))
    if not _known_zone(f.timezone):
        raise FormError("timezone", N_("Unknown time zone."))
    start, end = form_times(f)
    if end < start:
        raise FormError("end_date", N_("The event ends before it starts."))
    if f.repeat and f.repeat not in FREQS:
        raise FormError("repeat", N_("Choose how the event repeats."))
    if f.repeat and f.repeat_end == "count":
        if not (f.count.isdigit() and 1 <= int(f.count) <= 1000):
            raise FormError("count", N_("Give a number of times from 1 to 1000."))
    if f.repeat and f.repeat_end == "until":
        until = _date(f.until, "until")
        if until < _as_date(start):
            raise FormError("until", N_("The repetition ends before the event starts."))
    if f.reminder and not (f.reminder.isdigit() and int(f.reminder) <= 40320):
        raise FormError("reminder", N_("Choose a reminder from the list."))
    for person in attendee_list(f.attendees):
        if "@" not in person or " " in person:
            raise FormError("attendees", N_("{address} is not an email address."), address=person)


def attendee_list(text: str) -> list[str]:
    return [p.strip() for p in text.replace(";", ",").replace("\n", ",").split(",") if p.strip()]


def _date(value: str, name: str) -> dt.date:
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise FormError(name, N_("Give a date as YYYY-MM-DD.")) from None
    if not 1900 <= day.year <= 2999:
        raise FormError(name, N_("Give a date between the years 1900 and 2999."))
    return day


def _time(value: str, name: str) -> dt.time:
    try:
        return dt.time.fromisoformat(value)
    except ValueError:
        raise FormError(name, N_("Give a time as HH:MM.")) from None


def form_times(f: EventForm) -> tuple[dt.date | dt.datetime, dt.date | dt.datetime]:
    """DTSTART and the (exclusive for all-day) DTEND the form means."""
    sd = _date(f.start_date, "start_date")
    ed = _date(f.end_date or f.start_date, "end_date")
    if f.all_day:
        return sd, ed + dt.timedelta(days=1)
    tz = zone(f.timezone)
    st = dt.datetime.combine(sd, _time(f.start_time, "start_time"), tz)
    et = dt.datetime.combine(ed, _time(f.end_time, "end_time"), tz)
    return st, et


def build_event(f: EventForm, old_text: str = "", rid: str = "") -> Any:
    """The calendar object for the form: the old one with the form's properties replaced, or new.
    With ``rid``: only that occurrence changes (an override with its RECURRENCE-ID)."""
    import vobject  # type: ignore[import-untyped]

    if old_text:
        cal = parse(old_text)
        masters = [c for c in getattr(cal, "vevent_list", []) if not hasattr(c, "recurrence_id")]
        comp = masters[0] if masters else cal.vevent
        old_rule = str(comp.rrule.value) if hasattr(comp, "rrule") else ""
    else:
        cal = vobject.iCalendar()
        comp = cal.add("vevent")
        comp.add("uid").value = new_uid()
        old_rule = ""
    if not hasattr(cal, "prodid"):
        cal.add("prodid").value = PRODID
    if rid and old_text:
        master_start = _value(comp, "dtstart")
        override = _override(cal, rid)
        if override is None:
            override = _copy_component(comp)
            for name in ("rrule", "rdate", "exdate", "exrule", "recurrence_id"):
                while hasattr(override, name):
                    override.remove(getattr(override, name))
            override.add("recurrence-id").value = _rid_like(rid, master_start)
            cal.add(override)
        _apply(override, f, True)
    else:
        _apply(comp, f, bool(old_text))
        # recurrence: the form's rule, or the custom one it could not show, kept as it was
        new_rule = _rule(f, form_times(f)[0])
        if not f.repeat and f.custom_rule and f.custom_rule == old_rule:
            new_rule = old_rule
        if new_rule != old_rule or not new_rule:
            while hasattr(comp, "rrule"):
                comp.remove(comp.rrule)
            if new_rule:
                comp.add("rrule").value = new_rule
    # vobject names a zone by its IANA key only for our _Zone: re-read the text so that the
    # serialized object carries TZID=Europe/Paris and its VTIMEZONE
    return parse(cal.serialize())


def _copy_component(comp: Any) -> Any:
    import vobject  # type: ignore[import-untyped]

    wrapper = vobject.iCalendar()
    wrapper.add(comp.duplicate(comp))
    return parse(wrapper.serialize()).vevent


def _apply(comp: Any, f: EventForm, existing: bool) -> None:
    """The form's properties on ``comp``; everything else on it is kept."""
    from dateutil import tz as dateutil_tz  # type: ignore[import-untyped]

    start, end = form_times(f)
    for name in ("dtstart", "dtend", "duration", "summary", "location", "description", "dtstamp", "last_modified"):
        while hasattr(comp, name):
            comp.remove(getattr(comp, name))
    comp.add("dtstart").value = start
    comp.add("dtend").value = end
    comp.add("summary").value = f.title
    if f.location:
        comp.add("location").value = f.location
    if f.description:
        comp.add("description").value = f.description
    now = dt.datetime.now(dateutil_tz.UTC).replace(microsecond=0)
    comp.add("dtstamp").value = now
    comp.add("last-modified").value = now
    if existing:
        seq = _value(comp, "sequence", "0")
        while hasattr(comp, "sequence"):
            comp.remove(comp.sequence)
        comp.add("sequence").value = str(int(seq) + 1 if str(seq).isdigit() else 1)
    # the reminder: the first DISPLAY alarm before the start is the form's; others are kept
    managed = None
    for alarm in getattr(comp, "valarm_list", []):
        trigger = _value(alarm, "trigger")
        if isinstance(trigger, dt.timedelta) and trigger <= dt.timedelta(0):
            managed = alarm
            break
    if managed is not None and not f.reminder:
        comp.remove(managed)
    elif f.reminder:
        if managed is None:
            managed = comp.add("valarm")
            managed.add("action").value = "DISPLAY"
            managed.add("description").value = f.title
            managed.add("trigger").value = -dt.timedelta(minutes=int(f.reminder))
        else:
            managed.trigger.value = -dt.timedelta(minutes=int(f.reminder))
    # attendees: plain addresses (invitations by mail are sent by the DAV side)
    wanted = attendee_list(f.attendees)
    kept = set()
    for att in list(getattr(comp, "attendee_list", [])):
        addr = str(att.value)
        addr = addr[7:] if addr.lower().startswith("mailto:") else addr
        if addr.lower() in {w.lower() for w in wanted}:
            kept.add(addr.lower())
        else:
            comp.remove(att)
    for person in wanted:
        if person.lower() not in kept:
            line = comp.add("attendee")
            line.value = "mailto:" + person
            line.params["PARTSTAT"] = ["NEEDS-ACTION"]
            kept.add(person.lower())


def organizer_of(text: str) -> str:
    """The ORGANIZER address of an event (its first VEVENT's; lower-case, no ``mailto:``), or ""."""
    try:
        comps = list(getattr(parse(text), "vevent_list", []))
    except Exception:
        return ""
    for comp in comps[:1]:
        line = comp.contents.get("organizer")
        if line:
            value = str(line[0].value).strip()
            return (value[7:] if value.lower().startswith("mailto:") else value).lower()
    return ""


def organized(cal: Any, owner: str, f: EventForm) -> Any:
    """The user as the ORGANIZER of an event with attendees and none yet: the DAV scheduler mails
    invitations only for events the writer organizes (RFC 6638), so an event made in the web
    calendar or by an assistant's tool with attendees would otherwise invite nobody."""
    if not attendee_list(f.attendees):
        return cal
    for comp in getattr(cal, "vevent_list", []):
        if "organizer" not in comp.contents:
            comp.add("organizer").value = "mailto:" + owner
    return cal


def _rule(f: EventForm, start: dt.date | dt.datetime) -> str:
    if not f.repeat:
        return ""
    rule = f"FREQ={f.repeat}"
    if f.repeat_end == "count" and f.count:
        rule += f";COUNT={int(f.count)}"
    elif f.repeat_end == "until" and f.until:
        until = dt.date.fromisoformat(f.until)
        if isinstance(start, dt.datetime):
            # the last moment of that day in the event's zone, in UTC as RFC 5545 requires
            last = dt.datetime.combine(until, dt.time(23, 59, 59), start.tzinfo).astimezone(dt.UTC)
            rule += ";UNTIL=" + last.strftime("%Y%m%dT%H%M%SZ")
        else:
            rule += ";UNTIL=" + until.strftime("%Y%m%d")
    return rule
