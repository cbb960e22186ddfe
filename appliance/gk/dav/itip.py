"""Invitations by mail (iTIP over iMIP, RFC 5546 and RFC 6047) for events a user organizes.

After each committed DAV write (``Storage.observer``), for every event whose ORGANIZER is the
user who made the request (``mailto:`` of their address):

- a new event: ``METHOD:REQUEST`` to each attendee;
- a changed event: ``REQUEST`` to every attendee when what they agreed to changed (time,
  recurrence, place, summary, status, sequence), else to the attendees just added only; a
  ``CANCEL`` to the attendees removed;
- a deleted event: ``CANCEL`` to every attendee;
- one occurrence of a repeating event changed or cancelled (an override with its
  ``RECURRENCE-ID``, or an ``EXDATE``; the series otherwise as it was): that instance alone, a
  ``REQUEST`` or ``CANCEL`` carrying its ``RECURRENCE-ID`` (``instance_sends``).

Attendees marked ``SCHEDULE-AGENT=CLIENT`` (RFC 6638: the client sends for them) or
``SCHEDULE-AGENT=NONE`` are left alone, and so are a participant status change alone (an
attendee's answer written back) and objects written by ``gk dav import`` (no scheduler there).
An attendee who is a user of this box gets it at once, inside the organizer's request (the
``Scheduler``, run by ``Storage.acquire_lock`` before the commit): in their calendar and their
scheduling inbox before the PUT or DELETE returns, and so does a local organizer get an
attendee's answer (in their copy, and as the REPLY in their scheduling inbox). A user of this box
is known by any of their addresses (``local_owner``, ``addresses_of``): their own, a case or plus
variant of it, or an alias to them, as mail is delivered. Each message is also mailed, through ``gk.mail.submission.submit`` as the
organizer: local attendees get it in their INBOX (marked ``SCHEDULED_HEADER``: already applied),
remote ones through the queue, DKIM-signed. Mailing runs in its own greenlet after the request's
commit: a slow disk or a refused recipient never delays or fails the PUT (it is logged).

``SCHEDULE-STATUS`` (RFC 6638 §3.2.9, §7.3; the codes are RFC 5545 §3.8.8.3 status codes): the
outcome of the last scheduling message the server sent for a write, written by the ``Scheduler``
into the copy that caused it, in the same transaction (``stamp_organizer_copy``,
``stamp_attendee_copy``). On the organizer's copy, on each ATTENDEE the write sent a REQUEST to:

- ``1.2`` (delivered): a user of this box, the invitation written into their calendar and
  scheduling inbox within the request (``deliver_local``);
- ``1.1`` (sent, delivery unknown): an address outside the box, the iMIP mail handed to the box's
  submission after the commit (its outbound queue retries and bounces: as Apple's server marks an
  iMIP send); also a local address whose calendar the request could not write (the mail then
  applies it), and a user of the box with no calendar yet (the mail reaches their INBOX);
- ``3.7`` (invalid calendar user): a ``mailto:`` address that is not one (no domain, or spaces
  and brackets), or an address in a domain of the box that is no one's there — left out of the
  mail (one such recipient refused the whole iMIP message for every attendee before). An
  ATTENDEE that is no ``mailto:`` at all is sent nothing and gets no status;
- ``5.2`` (no way to deliver, lasting): an address outside the box while the box has no outbound
  queue (submission would refuse the whole message): left out of the mail.

A mail refused after the commit (``_send``: a full mailbox, the queue refusing) turns the ``1.1``
of the attendees it was the only way to into ``5.1`` (temporary: a 4xx or a full mailbox), ``3.7``
or ``5.2`` (``refused_status``), written by the server into the organizer's copy as it is then
(its Schedule-Tag kept; ``_unsent``): the client sees it at its next sync. ``1.0`` (pending) is
not used: the request returns with the status the mail is expected to get. On an attendee's copy,
on the ORGANIZER (SCHEDULE-AGENT=SERVER), after the write sent a REPLY: ``1.2`` for an organizer of
this box (their copy updated within the request), ``1.1`` for one outside, ``3.7`` as above.

§7.3: servers change the parameter only on the lines they sent a message for; clients SHOULD NOT
change or remove it (they MAY on lines they schedule themselves: SCHEDULE-AGENT=CLIENT or NONE).
So on a server-scheduled line the client's value never counts: the one stored before the write is
kept (or none), whatever the client sent, and a new send overwrites it; lines the client
schedules keep what it wrote. The parameter never goes into an iTIP message (§7.3 MUST NOT:
``itip_calendar``, ``reply_component`` strip it, and SCHEDULE-FORCE-SEND with it).
``SCHEDULE-FORCE-SEND`` (§7.2): ``REQUEST`` on an ATTENDEE sends them the REQUEST though nothing
they agreed to changed, ``REPLY`` on the ORGANIZER of an attendee's copy sends their answer
again; the parameter is a one-shot request, not stored (removed from the copy as the statuses are
written).

A stamped copy is written again (``SCHEDULE_TAG`` "keep": the tag the client's write decided
stands; ``gk.dav.scheduletag`` counts the parameter as the server's): its ETag is not the one
Radicale answered for the text sent, so ``gk.dav.extensions`` answers that PUT with no ETag (RFC
4791 §5.3.4: no strong ETag for a stored object that is not the one sent) and the client reads it
again.
"""

from __future__ import annotations

import contextvars
import email.utils
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any, BinaryIO

import gevent

from gk.dav.webapi import instance_key
from gk.mail.authcheck.sender import verified_sender

if TYPE_CHECKING:
    from gk.context import AppContext
    from gk.dav.storage import Change

log = logging.getLogger("gk.dav")

# what an attendee agreed to: a change of any of these is sent again as a REQUEST
SIGNIFICANT = ("DTSTART", "DTEND", "DURATION", "RRULE", "RDATE", "EXDATE", "LOCATION", "SUMMARY", "STATUS", "SEQUENCE")


def _address(value: str) -> str:
    value = value.strip()
    return value[7:].lower() if value.lower().startswith("mailto:") else ""


# a calendar user's own addresses: a predicate, true for the user's address and (with the
# accounts, ``addresses_of``) its case and plus variants and the aliases to the user
Mine = Callable[[str], bool]


def _mine(user: str | Mine) -> Mine:
    if callable(user):
        return user
    address = user.lower()
    return lambda other: other.lower() == address


def addresses_of(ctx: AppContext | None, user: str) -> Mine:
    """Is a calendar user address ``user``'s own? Their address, a case or plus variant of it, or an
    alias to them: resolved as mail to it is delivered (``resolve_recipient``), the role addresses
    (postmaster, abuse) aside. Answers are remembered for the predicate's life (one request)."""
    user = user.lower()
    if ctx is None:
        return _mine(user)
    known: dict[str, bool] = {user: True}

    def mine(address: str) -> bool:
        address = address.strip().lower()
        if address not in known:
            owner = ctx.accounts.resolve_recipient(address, roles=False) if address else None
            known[address] = owner is not None and owner.address.lower() == user
        return known[address]

    return mine


def _events(text: str | None) -> list[Any]:
    if not text:
        return []
    import vobject  # type: ignore[import-untyped]

    try:
        cal = vobject.readOne(text)
    except Exception:
        return []
    return list(getattr(cal, "vevent_list", []))


def _organizer(events: list[Any]) -> str:
    for ev in events:
        org = ev.contents.get("organizer")
        if org:
            return _address(str(org[0].value))
    return ""


def _attendees(events: list[Any], organizer: str) -> set[str]:
    out = set()
    for ev in events:
        for att in ev.contents.get("attendee", []):
            agent = (att.params.get("SCHEDULE-AGENT") or ["SERVER"])[0].upper()
            address = _address(str(att.value))
            if address and address != organizer and agent == "SERVER":
                out.add(address)
    return out


def _significant(events: list[Any]) -> list[tuple[str, tuple[str, ...]]]:
    out = []
    for ev in events:
        rid = ev.contents.get("recurrence-id")
        key = str(rid[0].value) if rid else ""
        for name in SIGNIFICANT:
            values = tuple(sorted(str(line.value) for line in ev.contents.get(name.lower(), [])))
            out.append((f"{key}/{name}", values))
    return sorted(out)


def _forced(events: list[Any], organizer: str) -> set[str]:
    """The attendees (SCHEDULE-AGENT=SERVER) marked ``SCHEDULE-FORCE-SEND=REQUEST`` (RFC 6638 §7.2)."""
    out = set()
    for ev in events:
        for att in ev.contents.get("attendee", []):
            force = (att.params.get("SCHEDULE-FORCE-SEND") or [""])[0].upper()
            agent = (att.params.get("SCHEDULE-AGENT") or ["SERVER"])[0].upper()
            address = _address(str(att.value))
            if force == "REQUEST" and agent == "SERVER" and address and address != organizer:
                out.add(address)
    return out


def plan(organizer: str, old: str | None, new: str | None) -> list[tuple[str, set[str]]]:
    """(method, attendees) to send for a write of an object from ``old`` to ``new`` text by ``organizer``."""
    old_events, new_events = _events(old), _events(new)
    sends: list[tuple[str, set[str]]] = []
    old_att = _attendees(old_events, organizer) if _organizer(old_events) == organizer else set()
    new_att = _attendees(new_events, organizer) if _organizer(new_events) == organizer else set()
    if not new_events:
        if old_att:
            sends.append(("CANCEL", old_att))
        return sends
    if old_att - new_att:
        sends.append(("CANCEL", old_att - new_att))
    if new_att:
        if not old_events or _significant(old_events) != _significant(new_events):
            sends.append(("REQUEST", new_att))
        elif more := (new_att - old_att) | (_forced(new_events, organizer) & new_att):
            sends.append(("REQUEST", more))  # the attendees added, and those forced (§7.2)
    return sends


# -- one occurrence of a repeating event: iTIP for that instance only (RFC 5546 §3.2.2.1, §3.2.5)
# a write that leaves the series' master as it was but for these (an EXDATE added, the SEQUENCE
# bumped, the stamps) changes instances only: the attendees are sent those instances, each a
# VEVENT with its RECURRENCE-ID, not the whole series again
_INSTANCE_ONLY = frozenset({"EXDATE", "SEQUENCE", "DTSTAMP", "LAST-MODIFIED"})
_STAMPS = frozenset({"DTSTAMP", "LAST-MODIFIED"})


def _fingerprint(comp: Any, skip: frozenset[str]) -> list[str]:
    out = []
    for name, lines in comp.contents.items():
        if name.upper() in skip:
            continue
        for line in lines:
            if hasattr(line, "contents"):  # a sub-component (VALARM)
                out.append(f"{name}:{_fingerprint(line, frozenset())}")
            else:
                params = sorted((k, tuple(v)) for k, v in line.params.items())
                out.append(f"{name}:{line.value!r}:{params}")
    return sorted(out)


def _exdates(master: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for line in master.contents.get("exdate", []):
        for value in line.value if isinstance(line.value, list) else [line.value]:
            out[instance_key(value)] = value
    return out


def _make_instance(ev: Any, value: Any, length: Any, dropped: tuple[str, ...]) -> None:
    """Make VEVENT ``ev`` (a master's copy) the instance starting at ``value``: ``dropped``
    removed (its recurrence rules, its own start and end), RECURRENCE-ID and DTSTART that start,
    DTEND after ``length`` when it is a duration."""
    import datetime as dt

    for name in dropped:
        for line in list(ev.contents.get(name, [])):
            ev.remove(line)
    ev.add("recurrence-id").value = value
    ev.add("dtstart").value = value
    if isinstance(length, dt.timedelta):
        ev.add("dtend").value = value + length


def _instance_calendar(text: str, key: str, value: Any = None) -> str:
    """``text``'s calendar (its VTIMEZONEs kept) with one VEVENT: the override of instance
    ``key``, or (``value``: that instance's start) the master made into that instance."""

    import vobject  # type: ignore[import-untyped]

    cal = vobject.readOne(text)
    keep = None
    for ev in list(getattr(cal, "vevent_list", [])):
        rid = ev.contents.get("recurrence-id")
        if value is None and rid and instance_key(rid[0].value) == key and keep is None:
            keep = ev
        elif value is not None and not rid and keep is None:
            keep = ev
            start = ev.dtstart.value if "dtstart" in ev.contents else None
            length = None
            if "dtend" in ev.contents and start is not None:
                length = ev.dtend.value - start
            elif "duration" in ev.contents:
                length = ev.duration.value
            _make_instance(ev, value, length, ("rrule", "rdate", "exdate", "exrule", "dtstart", "dtend", "duration"))
        else:
            cal.remove(ev)
    return str(cal.serialize())


def instance_sends(organizer: str, old: str | None, new: str | None) -> list[tuple[str, set[str], str]] | None:
    """(method, attendees, iTIP text) when a write by ``organizer`` changed only instances of a
    repeating event — an occurrence cancelled (a new EXDATE: ``CANCEL`` of that instance) or one
    overridden (a new or changed VEVENT with a RECURRENCE-ID: ``REQUEST`` of it alone, ``CANCEL``
    of it to attendees taken off it) — else None (``plan`` decides for the whole object)."""
    old_events, new_events = _events(old), _events(new)
    if not old_events or not new_events or old is None or new is None:
        return None
    if _organizer(old_events) != organizer or _organizer(new_events) != organizer:
        return None
    old_masters = [e for e in old_events if "recurrence-id" not in e.contents]
    new_masters = [e for e in new_events if "recurrence-id" not in e.contents]
    if len(old_masters) != 1 or len(new_masters) != 1:
        return None
    om, nm = old_masters[0], new_masters[0]
    if "rrule" not in nm.contents and "rdate" not in nm.contents:
        return None
    if _fingerprint(om, _INSTANCE_ONLY) != _fingerprint(nm, _INSTANCE_ONLY):
        return None
    old_over = {instance_key(e.recurrence_id.value): e for e in old_events if "recurrence-id" in e.contents}
    new_over = {instance_key(e.recurrence_id.value): e for e in new_events if "recurrence-id" in e.contents}
    old_ex, new_ex = _exdates(om), _exdates(nm)
    added = {k: v for k, v in new_ex.items() if k not in old_ex}
    if set(old_ex) - set(new_ex) or set(old_over) - set(new_over) - set(added):
        return None  # an instance restored: the whole series is sent again
    changed = [k for k in sorted(new_over)
               if k not in old_over or _fingerprint(new_over[k], _STAMPS) != _fingerprint(old_over[k], _STAMPS)]  # fmt: skip
    if not added and not changed:
        return None
    everyone = _attendees([om], organizer)
    sends: list[tuple[str, set[str], str]] = []
    for key, value in sorted(added.items()):
        was = old_over.get(key)
        told = _attendees([was], organizer) if was is not None else everyone
        if told:
            text = _instance_calendar(old, key) if was is not None else _instance_calendar(new, key, value)
            sends.append(("CANCEL", told, text))
    for key in changed:
        ev, was = new_over[key], old_over.get(key)
        before = _attendees([was], organizer) if was is not None else everyone
        now = _attendees([ev], organizer)
        if before - now:
            sends.append(("CANCEL", before - now, _instance_calendar(old, key) if was is not None
                          else _instance_calendar(new, key)))  # fmt: skip
        if was is None or _significant([was]) != _significant([ev]):
            if now:
                sends.append(("REQUEST", now, _instance_calendar(new, key)))
        elif now - before:
            sends.append(("REQUEST", now - before, _instance_calendar(new, key)))
    return sends


def sends(organizer: str, old: str | None, new: str | None) -> list[tuple[str, set[str], str]]:
    """Every iTIP message a write from ``old`` to ``new`` by ``organizer`` calls for: (method,
    attendees, the object to send) — instances alone when only instances changed."""
    narrowed = instance_sends(organizer, old, new)
    if narrowed is not None:
        forced = _forced(_events(new), organizer) if new and "SCHEDULE-FORCE-SEND" in new.upper() else set()
        forced -= {a for method, attendees, _ in narrowed if method == "REQUEST" for a in attendees}
        if forced and new is not None:
            narrowed.append(("REQUEST", forced, new))
        return narrowed
    out = []
    for method, attendees in plan(organizer, old, new):
        text = new if method == "REQUEST" else old
        if text is not None:
            out.append((method, attendees, text))
    return out


def itip_calendar(text: str, method: str) -> tuple[str, str]:
    """The iTIP object (``METHOD``, no alarms; a CANCEL marked cancelled) and the summary."""
    import vobject  # type: ignore[import-untyped]

    cal = vobject.readOne(text)
    for name in ("method", "x-wr-calname"):
        for line in list(cal.contents.get(name, [])):
            cal.remove(line)
    cal.add("method").value = method
    summary = ""
    for ev in getattr(cal, "vevent_list", []):
        for alarm in list(getattr(ev, "valarm_list", [])):
            ev.remove(alarm)
        _strip_server_params(ev)
        if not summary and "summary" in ev.contents:
            summary = str(ev.summary.value)
        if method == "CANCEL":
            for line in list(ev.contents.get("status", [])):
                ev.remove(line)
            ev.add("status").value = "CANCELLED"
    return cal.serialize(), summary


def message(
    organizer: str, attendees: Iterable[str], method: str, ical: str, summary: str, scheduled: Iterable[str] = ()
) -> bytes:
    """The iMIP mail of an iTIP object; ``scheduled``: the local attendees it was applied to
    already (``SCHEDULED_HEADER``)."""
    msg = EmailMessage()
    msg["From"] = organizer
    msg["To"] = ", ".join(sorted(attendees))
    if scheduled:
        msg[SCHEDULED_HEADER] = ", ".join(sorted(scheduled))
    title = summary or "(no title)"
    msg["Subject"] = f"Cancelled: {title}" if method == "CANCEL" else f"Invitation: {title}"
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg["Message-ID"] = email.utils.make_msgid(domain=organizer.rpartition("@")[2] or None)
    text = (
        f"{organizer} cancelled the event “{title}”.\n"
        if method == "CANCEL"
        else f"{organizer} invites you to “{title}”. Your calendar app can add it and answer.\n"
    )
    msg.set_content(text)
    # RFC 6047 §2.4: the iTIP object as text/calendar with its method, in a multipart/alternative
    msg.add_alternative(ical, subtype="calendar", params={"method": method}, charset="utf-8")
    from email.policy import SMTP as SMTP_POLICY  # on first use: email.policy costs an idle box ~0.5 MB

    return msg.as_bytes(policy=SMTP_POLICY)  # CRLF line ends, as on the wire


# -- SCHEDULE-STATUS (RFC 6638 §3.2.9, §7.3; the module's docstring says which and when) ----------
DELIVERED = "1.2"  # the scheduling message has been sent and delivered
SENT = "1.1"  # sent; whether it was delivered is not known
INVALID_USER = "3.7"  # not a calendar user the server recognises
DELIVERY_FAILED = "5.1"  # not delivered, likely a temporary failure
NO_WAY = "5.2"  # the server found no way to deliver it (a lasting failure)
# set while the server writes a status of its own after the request (``Scheduler._unsent``)
_SERVER_STAMP: contextvars.ContextVar[bool] = contextvars.ContextVar("gk_dav_server_stamp", default=False)


def refused_status(reply: str) -> str:
    """The SCHEDULE-STATUS of an iTIP mail submission refused with SMTP ``reply``: a temporary
    refusal (4xx) or a full mailbox (RFC 3463 X.2.2) ``5.1``, an unknown or malformed recipient
    (X.1.1, X.1.3) ``3.7``, anything else lasting ``5.2``."""
    if reply[:1] == "4" or ".2.2 " in reply:
        return DELIVERY_FAILED
    if ".1.1 " in reply or ".1.3 " in reply:
        return INVALID_USER
    return NO_WAY


_SERVER_PARAMS = ("SCHEDULE-STATUS", "SCHEDULE-FORCE-SEND")


def _strip_server_params(ev: Any) -> None:
    """RFC 6638 §7.3: no SCHEDULE-STATUS (nor SCHEDULE-FORCE-SEND, §7.2) in an iTIP message."""
    for name in ("attendee", "organizer"):
        for line in ev.contents.get(name, []):
            for key in list(line.params):
                if key.upper() in _SERVER_PARAMS:
                    del line.params[key]


def _force_reply(events: list[Any]) -> bool:
    """An ORGANIZER marked ``SCHEDULE-FORCE-SEND=REPLY`` (RFC 6638 §7.2: send the answer again)."""
    return any(
        (org.params.get("SCHEDULE-FORCE-SEND") or [""])[0].upper() == "REPLY"
        for ev in events
        for org in ev.contents.get("organizer", [])
    )


def _agent(line: Any) -> str:
    return str((line.params.get("SCHEDULE-AGENT") or ["SERVER"])[0]).upper()


def _set_param(line: Any, key: str, value: str | None) -> bool:
    """``line``'s parameter ``key`` set to ``value`` (None: removed); True when that changed it."""
    before = [v for k, vs in line.params.items() if k.upper() == key for v in vs]
    if before == ([value] if value is not None else []):
        return False
    for k in [k for k in line.params if k.upper() == key]:
        del line.params[k]
    if value is not None:
        line.params[key] = [value]
    return True


def _old_statuses(old: str | None, name: str) -> dict[str, str]:
    """address -> the SCHEDULE-STATUS the stored text gave its ``name`` lines (server-scheduled ones)."""
    out: dict[str, str] = {}
    if not old or "SCHEDULE-STATUS" not in old.upper():
        return out
    for ev in _events(old):
        for line in ev.contents.get(name, []):
            address = _address(str(line.value))
            status = (line.params.get("SCHEDULE-STATUS") or [None])[0]
            if address and status and _agent(line) == "SERVER":
                out.setdefault(address, str(status))
    return out


def stamp_organizer_copy(new: str, old: str | None, organizer: str, statuses: dict[str, str]) -> Any | None:
    """The organizer's copy ``new`` (its stored text before, ``old``) with ``statuses`` (address ->
    the status of the message just sent to that attendee) on those ATTENDEE lines, the status stored
    before on the other server-scheduled ones (a client's own value ignored, none when none was
    stored) and SCHEDULE-FORCE-SEND removed; the calendar (vobject) when that changes ``new``,
    else None. Lines the client schedules (SCHEDULE-AGENT=CLIENT, NONE) keep what it wrote."""
    if not statuses and "SCHEDULE-" not in new.upper() and "SCHEDULE-STATUS" not in (old or "").upper():
        return None  # (no parse: nothing sent, nothing to keep, restore or strip)
    import vobject  # type: ignore[import-untyped]

    try:
        cal = vobject.readOne(new)
    except Exception:
        return None
    kept = _old_statuses(old, "attendee")
    changed = False
    for ev in getattr(cal, "vevent_list", []) + getattr(cal, "vtodo_list", []):
        if _organizer([ev]) != organizer:
            continue
        for line in ev.contents.get("attendee", []):
            changed |= _set_param(line, "SCHEDULE-FORCE-SEND", None)
            address = _address(str(line.value))
            if _agent(line) != "SERVER" or address == organizer:
                continue
            changed |= _set_param(line, "SCHEDULE-STATUS", statuses.get(address, kept.get(address)))
    return cal if changed else None


def stamp_attendee_copy(new: str, old: str | None, status: str | None) -> Any | None:
    """An attendee's copy ``new`` with ``status`` (of the REPLY just sent; None: none sent, the
    stored one kept) on its server-scheduled ORGANIZER and SCHEDULE-FORCE-SEND removed; the
    calendar when that changes ``new``, else None."""
    if status is None and "SCHEDULE-" not in new.upper() and "SCHEDULE-STATUS" not in (old or "").upper():
        return None
    import vobject  # type: ignore[import-untyped]

    try:
        cal = vobject.readOne(new)
    except Exception:
        return None
    kept = _old_statuses(old, "organizer")
    changed = False
    for ev in getattr(cal, "vevent_list", []) + getattr(cal, "vtodo_list", []):
        for line in ev.contents.get("organizer", []):
            changed |= _set_param(line, "SCHEDULE-FORCE-SEND", None)
            if _agent(line) == "SERVER":
                address = _address(str(line.value))
                changed |= _set_param(line, "SCHEDULE-STATUS", status or kept.get(address))
    return cal if changed else None


def _my_partstat(events: list[Any], user: str | Mine) -> str | None:
    """The user's PARTSTAT on the main event (the master, else the first), None when not invited
    there or when the client schedules for them (SCHEDULE-AGENT other than SERVER)."""
    mine = _mine(user)
    masters = [e for e in events if "recurrence-id" not in e.contents] or events
    for ev in masters[:1]:
        for att in ev.contents.get("attendee", []):
            agent = (att.params.get("SCHEDULE-AGENT") or ["SERVER"])[0].upper()
            address = _address(str(att.value))
            if address and mine(address) and agent == "SERVER":
                return str((att.params.get("PARTSTAT") or ["NEEDS-ACTION"])[0]).upper()
    return None


def _cancelled(events: list[Any]) -> bool:
    return any(str(ev.status.value).upper() == "CANCELLED" for ev in events if "status" in ev.contents)


def _over(events: list[Any]) -> bool:
    """True when no occurrence of the event can be ahead (ended, and not recurring)."""
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    for ev in events:
        if "rrule" in ev.contents or "rdate" in ev.contents:
            return False
        line = ev.contents.get("dtend") or ev.contents.get("dtstart")
        if not line:
            return False
        value = line[0].value
        if not isinstance(value, dt.datetime):
            value = dt.datetime.combine(value, dt.time()) + dt.timedelta(days=1)
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        if value > now:
            return False
    return True


def attendee_reply(user: str, old: str | None, new: str | None, mine: Mine | None = None) -> str | None:
    """RFC 6638 §3.2.2 (implicit scheduling, attendee side): the PARTSTAT to send the organizer
    in a REPLY when ``user``, an attendee of someone else's event, answers it from a CalDAV client
    (their participation status written changed, or the event deleted: DECLINED); None otherwise.
    ``mine``: the user's own addresses (``addresses_of``; their aliases are invited as them)."""
    own = mine or _mine(user)
    old_events, new_events = _events(old), _events(new)
    events = new_events or old_events
    organizer = _organizer(events)
    if not organizer or own(organizer):
        return None
    before = _my_partstat(old_events, own) if old_events else None
    if not new_events:
        if before is None or before == "DECLINED" or _cancelled(old_events):
            return None
        return "DECLINED"
    after = _my_partstat(new_events, own)
    if after is None or after not in ("ACCEPTED", "DECLINED", "TENTATIVE"):
        return None
    if after == before and not _force_reply(new_events):
        return None
    if not old_events and _over(new_events):
        return None  # an old answered event uploaded (a migration through a client): nothing to tell
    if _organizer(old_events) not in ("", organizer):
        return None
    return after


ANSWERED = ("ACCEPTED", "DECLINED", "TENTATIVE")


def _my_answers(events: list[Any], mine: Mine) -> dict[str, tuple[Any, str, str]]:
    """For each VEVENT inviting the user (SCHEDULE-AGENT=SERVER), by occurrence (``instance_key``, ""
    for the series): (the VEVENT, the address it invites them by, their PARTSTAT)."""
    out: dict[str, tuple[Any, str, str]] = {}
    for ev in events:
        rid = ev.contents.get("recurrence-id")
        key = instance_key(rid[0].value) if rid else ""
        for att in ev.contents.get("attendee", []):
            agent = (att.params.get("SCHEDULE-AGENT") or ["SERVER"])[0].upper()
            address = _address(str(att.value))
            if address and agent == "SERVER" and mine(address):
                out[key] = (ev, address, str((att.params.get("PARTSTAT") or ["NEEDS-ACTION"])[0]).upper())
                break
    return out


def _touches_occurrences(text: str) -> bool:
    """Whether an attendee's write may answer occurrences alone (an override, an EXDATE)."""
    up = text.upper()
    return "RECURRENCE-ID" in up or "EXDATE" in up


def occurrence_reply(user: str, old: str | None, new: str | None, mine: Mine | None = None) -> tuple[str, str] | None:
    """RFC 6638 §3.2.2 for occurrences of a repeating event: (the iTIP REPLY, the first answer)
    when ``user`` answered occurrences on their own — an override in their copy whose PARTSTAT
    differs from what it was (or from the series' when the override is new), as Apple Calendar
    and Thunderbird write "only this event", or an occurrence deleted from their copy (a new
    EXDATE: DECLINED) — else None (``attendee_reply`` decides for the whole event). The REPLY
    holds those occurrences only, each with the user's answer."""
    import datetime as dt

    import vobject  # type: ignore[import-untyped]

    own = mine or _mine(user)
    old_events, new_events = _events(old), _events(new)
    organizer = _organizer(new_events)
    if not old_events or not organizer or own(organizer) or _organizer(old_events) != organizer:
        return None
    before, after = _my_answers(old_events, own), _my_answers(new_events, own)
    if "" not in before or "" not in after:
        return None
    answers = {
        key: after[key]
        for key in after
        if key and after[key][2] in ANSWERED and after[key][2] != before.get(key, before[""])[2]
    }
    # an occurrence the attendee deleted from their copy (a new EXDATE: Thunderbird's "delete
    # only this occurrence") is declined, as sabre/vobject's broker does; the organizer would
    # otherwise count on them
    master, address = after[""][0], after[""][1]
    if "rrule" in master.contents or "rdate" in master.contents:
        known = _exdates(before[""][0])
        for key, value in _exdates(master).items():
            if key not in known and key not in after and before.get(key, before[""])[2] != "DECLINED":
                instance = master.duplicate(master)
                length = master.dtend.value - master.dtstart.value if "dtend" in master.contents else None
                dropped = ("rrule", "rdate", "exdate", "exrule", "dtstart", "dtend", "recurrence-id")
                _make_instance(instance, value, length, dropped)
                answers[key] = (instance, address, "DECLINED")
    if not answers:
        return None
    out = vobject.iCalendar()
    out.add("prodid").value = "-//GK//Invitations//EN"
    out.add("method").value = "REPLY"
    now = dt.datetime.now(vobject.icalendar.utc).replace(microsecond=0)
    changed = sorted(answers)
    for key in changed:
        ev, address, partstat = answers[key]
        reply_component(out, ev, address, partstat, now)
    return str(out.serialize()), answers[changed[0]][2]


REPLY_COPIED = ("uid", "recurrence-id", "sequence", "dtstart", "dtend", "duration", "summary", "organizer")


def reply_component(out: Any, ev: Any, address: str, partstat: str, now: Any) -> Any:
    """Add to iTIP REPLY ``out`` the VEVENT answering request component ``ev`` (RFC 5546 §3.2.3:
    the properties that identify it, a DTSTAMP, the one ATTENDEE who answers); its ATTENDEE."""
    line = out.add("vevent")
    for name in REPLY_COPIED:
        for prop in ev.contents.get(name, []):
            line.add(prop.duplicate(prop))
    _strip_server_params(line)
    line.add("dtstamp").value = now
    att = line.add("attendee")
    att.value = f"mailto:{address}"
    att.params["PARTSTAT"] = [partstat]
    return att


# the users of this box a mailed iTIP message was already applied to, synchronously (the
# ``Scheduler``): their ``ReplyWatcher`` leaves the mail alone. Honoured whoever sent the mail: it
# can only keep a message from being applied, so a forged one only silences its own sender.
SCHEDULED_HEADER = "X-GK-Scheduled"


def scheduled_for(raw: bytes) -> set[str]:
    """The addresses a mail's ``SCHEDULED_HEADER`` names (lower-case)."""
    import email.parser
    import email.policy

    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    if SCHEDULED_HEADER.lower().encode() not in head.lower():
        return set()
    msg = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(head + b"\r\n\r\n")
    out: set[str] = set()
    for value in msg.get_all(SCHEDULED_HEADER) or []:
        out.update(a.strip().lower() for a in str(value).split(",") if a.strip())
    return out


def _message_id(raw: bytes) -> str:
    import email.parser
    import email.policy

    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    msg = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(head + b"\r\n\r\n")
    return str(msg.get("Message-ID", "")).strip()[:200]


def local_owner(ctx: AppContext | None, storage: Any, address: str) -> str:
    """The user of this box (their address, the path of their DAV principal) that the calendar
    user ``address`` is: theirs, a case or plus variant of it, or an alias to them, resolved as
    mail to it is delivered (the role addresses aside); "" for none, or a user with no calendars."""
    address = address.strip().lower()
    if ctx is not None and address:
        account = ctx.accounts.resolve_recipient(address, roles=False)
        address = account.address.lower() if account is not None else ""
    if not address or "/" in address:
        return ""
    if storage.db.one("SELECT 1 FROM collections WHERE path = ?", (address,)) is None:
        return ""
    return address


def local_user(ctx: AppContext | None, storage: Any, address: str) -> bool:
    """True when ``address`` is a user of this box with a DAV principal (``local_owner``)."""
    return bool(local_owner(ctx, storage, address))


def deliver_local(
    storage: Any, attendee: str, organizer: str, method: str, ical: str, mine: Mine | None = None
) -> bool:
    """RFC 6638 §3.2.1 for an attendee who is a user of this box: the iTIP ``ical`` (a REQUEST
    or CANCEL from ``organizer``) written into their calendar, then into their scheduling inbox
    (a client that finds the inbox item looks for the event next), in one savepoint of the
    transaction the caller holds; True when applied (the mail copy is then left alone), False
    when refused (not addressed to them) or failed (the mail copy then still applies it).
    ``mine``: the attendee's own addresses (invited by an alias, they are invited)."""
    from gk.dav import inbox

    uid = inbox_message(attendee, organizer, method, ical, mine)
    if uid is None:
        return False
    with storage.db.transaction() as conn:
        conn.execute("SAVEPOINT gk_schedule")
        try:
            if schedule_copy(storage, attendee, method, ical, mine):
                log.info("dav: iTIP %s from %s written into the calendar of %s", method, organizer, attendee)
            if inbox.deliver(storage.db, storage.lock, attendee, uid, method, ical):
                log.info("dav: iTIP %s placed in the scheduling inbox of %s", method, attendee)
        except Exception:
            conn.execute("ROLLBACK TO gk_schedule")
            conn.execute("RELEASE gk_schedule")
            log.exception("dav: iTIP %s from %s not delivered to %s", method, organizer, attendee)
            return False
        conn.execute("RELEASE gk_schedule")
    return True


def reply_attendee(reply: str) -> str:
    """The (first) ATTENDEE value of an iTIP REPLY: who answers."""
    for ev in _events(reply):
        for att in ev.contents.get("attendee", []):
            return str(att.value)
    return ""


def reply_local(
    storage: Any, organizer: str, attendee: str, reply: str, mine: Mine | None = None, occurrences: bool = False
) -> bool:
    """RFC 6638 §3.2.2 for an organizer who is a user of this box: ``attendee``'s REPLY applied to
    the organizer's copy, and (when it changed their answer) placed in the organizer's scheduling
    inbox (§4: where Apple Calendar and Thunderbird show "Bob accepted"), in one savepoint; True
    when applied (or nothing to change), False when it failed (the mail copy then still applies
    it). ``mine``: the organizer's own addresses (an event organized as an alias)."""
    with storage.db.transaction() as conn:
        conn.execute("SAVEPOINT gk_schedule")
        try:
            if apply_reply(storage, organizer, attendee, reply, mine, occurrences):
                log.info("dav: iTIP REPLY from %s updated an event of %s", attendee, organizer)
                reply_to_inbox(storage, organizer, reply)
        except Exception:
            conn.execute("ROLLBACK TO gk_schedule")
            conn.execute("RELEASE gk_schedule")
            log.exception("dav: iTIP REPLY from %s not applied for %s", attendee, organizer)
            return False
        conn.execute("RELEASE gk_schedule")
    return True


def reply_to_inbox(storage: Any, organizer: str, reply: str) -> bool:
    """An attendee's iTIP REPLY, applied to ``organizer``'s copy, kept in their scheduling inbox."""
    from gk.dav import inbox

    uid = next((line[4:].strip() for line in reply.splitlines() if line[:4].upper() == "UID:"), "")
    if not uid:  # (folded: the parser's)
        events = _events(reply)
        uid = str(events[0].uid.value) if events and "uid" in events[0].contents else ""
    if not uid or not inbox.deliver(storage.db, storage.lock, organizer, uid, "REPLY", reply):
        return False
    log.info("dav: iTIP REPLY placed in the scheduling inbox of %s", organizer)
    return True


class Scheduler:
    """``Storage.scheduler`` of ``gk serve``: RFC 6638 implicit scheduling for each write request.

    Inside the request's transaction, holding the DAV write lock (``Storage.acquire_lock``): what
    to send is planned, and what goes to users of this box is applied at once — an invitation,
    update or cancellation into each local attendee's calendar and scheduling inbox, an attendee's
    answer (a CalDAV client's) into a local organizer's copy — so it commits with the request,
    before its 2xx: a client reading the other user's calendar right after sees it. After the
    commit, the iTIP mail goes out in a greenlet on the hub, to every attendee as before (remote
    ones need it; local ones see it in their mail, where the webmail reader answers it), naming
    in ``SCHEDULED_HEADER`` the local ones it was already applied to, whose ``ReplyWatcher`` then
    leaves it alone: applied again later it could undo a newer state (an update or an answer
    made in between)."""

    def __init__(self, ctx: AppContext, hub: Any = None, storage: Any = None):
        self.ctx = ctx
        self.hub = hub  # the main hub: DAV requests run in pool threads, the sending on the hub
        self.storage = storage  # the DAV storage, written by the local deliveries

    def _spawn(self, fn: Callable[..., None], *args: Any) -> None:
        from gk import pools

        if self.hub is None or not pools.in_pool_thread():
            gevent.spawn(fn, *args)
        else:
            self.hub.loop.run_callback_threadsafe(gevent.spawn, fn, *args)

    def __call__(self, user: str, changes: list[Change]) -> Callable[[], None] | None:
        if not user or not self.ctx.config.dav.invitations:
            return None
        from gk.dav.storage import DAV_CLIENT

        user = user.lower()
        mine = addresses_of(self.ctx, user)
        jobs: list[tuple[Callable[..., None], tuple[Any, ...]]] = []
        for change in changes:
            if change.path.count("/") != 1:
                continue
            organizer = self._organized_as(user, mine, change.new or change.old)
            statuses: dict[str, str] = {}
            for method, attendees, text in sends(organizer, change.old, change.new):
                ical, summary = itip_calendar(text, method)
                applied, status, mail_to = self._deliver(user, organizer, method, attendees, ical)
                if method == "REQUEST":
                    statuses.update(status)
                if mail_to:
                    mailed = [a for a in mail_to if method == "REQUEST" and status.get(a) == SENT]
                    jobs.append(
                        (self._send, (user, method, sorted(mail_to), ical, summary, applied, organizer, mailed))
                    )
            replied: str | None = None
            if DAV_CLIENT.get():
                # a CalDAV client's answer (the web UI and webmail answer through gk.dav.invites)
                partstat = attendee_reply(user, change.old, change.new, mine)
                answered = change.new or change.old
                if partstat is not None and answered is not None:
                    args = self._answer(user, partstat, answered, mine)
                    jobs.append((self._reply, args))
                    replied = self._reply_status(args)
                elif partstat is None and change.new is not None and _touches_occurrences(change.new):
                    try:
                        occurrences = occurrence_reply(user, change.old, change.new, mine)
                    except Exception:
                        log.exception("dav: iTIP REPLY from %s for occurrences not planned", user)
                        occurrences = None
                    if occurrences is not None:
                        args = self._answer(user, occurrences[1], change.new, mine, occurrences[0])
                        jobs.append((self._reply, args))
                        replied = self._reply_status(args)
            if change.new is not None:
                self._stamp(change, organizer, mine, statuses, replied)
        if not jobs:
            return None

        def after() -> None:
            for fn, args in jobs:
                self._spawn(fn, *args)

        return after

    def _organized_as(self, user: str, mine: Mine, text: str | None) -> str:
        """The address ``user`` organizes the event of ``text`` as: theirs, or an alias of theirs
        written as its ORGANIZER (a client that offers the calendar-user-address-set)."""
        if not text or "ORGANIZER" not in text.upper():
            return user
        unfolded = text.replace("\r\n ", "").replace("\n ", "").replace("\r\n\t", "").replace("\n\t", "")
        lines = [line.strip().lower() for line in unfolded.splitlines() if line[:9].upper() == "ORGANIZER"]
        if all(line.endswith(f":mailto:{user}") for line in lines):
            return user  # (organized as their own address, or by no one: no alias to look for, no parse)
        organizer = _organizer(_events(text))
        return organizer if organizer and organizer != user and mine(organizer) else user

    def _deliver(
        self, user: str, organizer: str, method: str, attendees: set[str], ical: str
    ) -> tuple[list[str], dict[str, str], list[str]]:
        """The iTIP message applied to each attendee who is a user of this box (invited by their
        address or an alias of it: once per user): the users it was applied to, each attendee's
        SCHEDULE-STATUS (the module's docstring) and the attendees to mail (the invalid ones and,
        with no outbound queue, the remote ones left out: submission refuses the whole message
        for one of them)."""
        owners: dict[str, list[str]] = {}
        statuses: dict[str, str] = {}
        for address in sorted(attendees):
            owner = local_owner(self.ctx, self.storage, address) if self.storage is not None else ""
            if owner and owner != user:  # (an alias of the organizer's own: their event already)
                owners.setdefault(owner, []).append(address)
            elif not owner:
                statuses[address] = self._mail_status(address)
        applied = []
        for owner in sorted(owners):
            done = deliver_local(self.storage, owner, organizer, method, ical, addresses_of(self.ctx, owner))
            if done:
                applied.append(owner)
            for address in owners[owner]:
                statuses[address] = DELIVERED if done else SENT  # (not written: the mail applies it)
        mail_to = [a for a in sorted(attendees) if statuses.get(a) not in (INVALID_USER, NO_WAY)]
        return applied, statuses, mail_to

    def _mail_status(self, address: str) -> str:
        """SCHEDULE-STATUS of an iTIP message to ``address``, not a calendar user of this box, to
        be mailed: what submission will make of it (``classify_recipient``)."""
        from gk.mail.submission import classify_recipient, remote_outbound_available

        local, remote = address.rpartition("@")[0::2]
        if not local or not remote or any(c in address for c in ' \t<>,;:"()[]\\'):
            return INVALID_USER
        try:
            owner, problem = classify_recipient(self.ctx, address)
        except Exception:
            return INVALID_USER
        if problem:
            return INVALID_USER
        if owner is None and not remote_outbound_available(self.ctx):
            return NO_WAY
        return SENT

    def _reply_status(self, args: tuple[Any, ...]) -> str | None:
        """SCHEDULE-STATUS of the REPLY ``_answer`` planned (its result ``args``); None: none sent."""
        inv, applied = args[2], args[3]
        if inv is None:
            return None
        if applied:
            return DELIVERED
        return self._mail_status(inv.organizer.address.lower())

    def _stamp(self, change: Change, organizer: str, mine: Mine, statuses: dict[str, str], replied: str | None) -> None:
        """The SCHEDULE-STATUS of the messages just sent written into the copy that sent them (and
        a client's own value on a server-scheduled line undone), in this transaction."""
        from gk.dav.scheduletag import organizer as organizer_of

        assert change.new is not None
        if _SERVER_STAMP.get():
            return  # the server's own status write (``_unsent``): it is the status
        owner = organizer_of(change.new)  # (a scan of its lines: most writes stop here)
        if self.storage is None or owner is None:
            return
        try:
            if owner and (owner == organizer or mine(owner)):
                cal = stamp_organizer_copy(change.new, change.old, owner, statuses)
            else:
                cal = stamp_attendee_copy(change.new, change.old, replied)
            if cal is not None:
                _rewrite(self.storage, change.path, change.href, cal)
        except Exception:
            log.exception("dav: SCHEDULE-STATUS of %s/%s not written", change.path, change.href)

    def _answer(self, user: str, partstat: str, text: str, mine: Mine, reply: str | None = None) -> tuple[Any, ...]:
        """The REPLY of ``user``'s answer (``reply``: given, for occurrences answered alone),
        applied now to a local organizer's copy: the ``_reply`` arguments (the invitation as
        parsed, the organizers it was applied to, the REPLY given)."""
        from gk.dav import invites

        try:
            ical, _ = itip_calendar(text, "REQUEST")
            inv = invites.parse(ical, mine)
        except Exception:
            log.exception("dav: iTIP REPLY from %s not planned", user)
            return (user, partstat, None, [], reply)
        if inv is None or inv.me is None or not inv.organizer.address:
            return (user, partstat, None, [], reply)
        owner = local_owner(self.ctx, self.storage, inv.organizer.address) if self.storage is not None else ""
        applied = []
        if (
            owner
            and owner != user
            and reply_local(
                self.storage,
                owner,
                _address(reply_attendee(reply)) if reply else inv.me.address.lower(),
                reply or invites.reply_calendar(inv, partstat),
                addresses_of(self.ctx, owner),
                occurrences=reply is not None,
            )
        ):
            applied.append(owner)
        return (user, partstat, inv, applied, reply)

    def _reply(self, user: str, partstat: str, inv: Any, applied: list[str], reply: str | None = None) -> None:
        from gk.dav import invites

        account = self.ctx.accounts.get_user(user)
        if account is None or inv is None:
            return
        try:
            invites.send_reply(self.ctx, account, inv, partstat, scheduled=applied, ical=reply)
        except invites.InviteError:
            pass  # logged by send_reply
        except Exception:
            log.exception("dav: iTIP REPLY from %s not sent", account.address)

    def _send(
        self,
        user: str,
        method: str,
        attendees: list[str],
        ical: str,
        summary: str,
        applied: list[str],
        organizer: str = "",
        mailed: Iterable[str] = (),
    ) -> None:
        """Mail the iTIP message; refused, the SCHEDULE-STATUS of the attendees it was the only
        way to (``mailed``: their ``1.1``) is made the refusal's (``_unsent``)."""
        from gk.mail.submission import SubmissionError, submit

        account = self.ctx.accounts.get_user(user)
        if account is None:
            return
        try:
            # from the address the event names as its organizer (an alias of the user's: theirs)
            raw = message(organizer or account.address, attendees, method, ical, summary, applied)
            submit(self.ctx, account, raw, attendees, mail_from=organizer or None)
            log.info("dav: iTIP %s from %s to %s", method, account.address, ", ".join(attendees))
        except SubmissionError as exc:
            log.warning("dav: iTIP %s from %s not sent: %s", method, account.address, exc.reply)
            self._unsent(user, organizer or account.address, mailed, ical, refused_status(exc.reply))
        except Exception:
            log.exception("dav: iTIP %s from %s not sent", method, account.address)
            self._unsent(user, organizer or account.address, mailed, ical, DELIVERY_FAILED)

    def _unsent(self, user: str, organizer: str, attendees: Iterable[str], ical: str, status: str) -> None:
        """``status`` for ``attendees`` in ``user``'s copy of the event of ``ical`` (the organizer's,
        as it is now), written by the server: the copy's Schedule-Tag kept, nothing sent for it."""
        statuses = dict.fromkeys(attendees, status)
        events = _events(ical)
        uid = str(events[0].uid.value) if events and "uid" in events[0].contents else ""
        if not statuses or not uid or self.storage is None:
            return
        storage = self.storage
        own = _SERVER_STAMP.set(True)  # (seen by the scheduler run for this write: no stamp of its own)
        try:
            with storage.acquire_lock("w", user):
                row = storage.db.one(
                    "SELECT c.path, i.href, i.text FROM items i JOIN collections c ON c.id = i.collection "
                    "WHERE c.parent = ? AND i.uid = ? AND c.tag = 'VCALENDAR' ORDER BY c.path LIMIT 1",
                    (user, uid),
                )
                cal = stamp_organizer_copy(row["text"], row["text"], organizer, statuses) if row else None
                if cal is not None:
                    _rewrite(storage, str(row["path"]), str(row["href"]), cal)
                    log.info("dav: SCHEDULE-STATUS %s for %s in %s's %s", status, ", ".join(statuses), user, uid)
        except Exception:
            log.exception("dav: SCHEDULE-STATUS %s of %s not written", status, uid)
        finally:
            _SERVER_STAMP.reset(own)


# -- replies: an attendee's answer updates the organizer's copy ----------------------------------

MAX_REPLY_BYTES = 256 * 1024


def _reply_parts(top: Any, methods: tuple[str, ...] = ("REPLY",)) -> bool:
    """True when the MIME tree holds a ``text/calendar`` part with one of ``methods``."""
    stack = [top]
    while stack:
        part = stack.pop()
        if part.maintype.lower() == "text" and part.subtype.lower() == "calendar":
            if any(k.lower() == "method" and v.upper() in methods for k, v in part.params):
                return True
        stack.extend(part.children)
    return False


INBOX_METHODS = ("REQUEST", "CANCEL")


def invitation_calendars(raw: bytes) -> tuple[str, list[tuple[str, str]]]:
    """(From address, (method, text) of each ``text/calendar`` REQUEST or CANCEL part) of a
    message, not looking into attached messages (a forwarded invitation is not one to this user)."""
    import email
    import email.policy

    msg = email.message_from_bytes(raw, policy=email.policy.default)
    sender = email.utils.parseaddr(str(msg.get("From", "")))[1].lower()
    out = []
    stack: list[Any] = [msg]
    while stack:
        part = stack.pop(0)
        if part.get_content_type() == "message/rfc822":
            continue
        if part.is_multipart():
            stack.extend(part.get_payload())
            continue
        method = str(part.get_param("method", "")).upper()
        if part.get_content_type() == "text/calendar" and method in INBOX_METHODS:
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                out.append((method, payload.decode(part.get_content_charset() or "utf-8", "replace")))
    return sender, out


def inbox_message(user: str, sender: str, method: str, text: str, mine: Mine | None = None) -> str | None:
    """The UID of an iTIP message to place in ``user``'s scheduling inbox: the method the
    calendar says, its ORGANIZER the mail's sender (not the user: their own event), ``user``
    (an address of theirs: ``mine``) among its attendees; else None."""
    own = mine or _mine(user)
    import vobject  # type: ignore[import-untyped]

    try:
        cal = vobject.readOne(text)
    except Exception:
        return None
    declared = str(cal.method.value).upper() if "method" in cal.contents else ""
    events = list(getattr(cal, "vevent_list", []))
    if declared != method or not events or _organizer(events) != sender or own(sender):
        return None
    if not any(own(a) for a in {_address(str(a.value)) for ev in events for a in ev.contents.get("attendee", [])} if a):
        return None
    return str(events[0].uid.value) if "uid" in events[0].contents else None


def reply_calendars(raw: bytes) -> tuple[str, list[str]]:
    """(From address, the text of each ``text/calendar`` REPLY part) of a message."""
    import email
    import email.policy

    msg = email.message_from_bytes(raw, policy=email.policy.default)
    sender = email.utils.parseaddr(str(msg.get("From", "")))[1].lower()
    out = []
    for part in msg.walk():
        if part.get_content_type() == "text/calendar" and str(part.get_param("method", "")).upper() == "REPLY":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                out.append(payload.decode(part.get_content_charset() or "utf-8", "replace"))
    return sender, out


def apply_reply(
    storage: Any, organizer: str, sender: str, text: str, mine: Mine | None = None, occurrences: bool = False
) -> bool:
    """Set the replying attendee's PARTSTAT in ``organizer``'s copy of the event; True when changed.

    Only the attendee who sent the mail (``From``) is updated, and only on an event the
    organizer organizes (as their address, or one of ``mine``: an alias) that lists that
    attendee: a reply can never touch anything else. ``occurrences``: an answer to one occurrence
    of a repeating event the organizer's copy has no override for gets one, made from the series
    (a local attendee's answer, applied inside their request; a mailed one would make the
    organizer's own write send that occurrence to everyone again)."""
    import vobject  # type: ignore[import-untyped]
    from radicale import item as radicale_item

    reply = _events(text)
    own = _organizer(reply)
    if not reply or not own or not (mine or _mine(organizer))(own):
        return False
    uid = str(reply[0].uid.value) if "uid" in reply[0].contents else ""
    answers: dict[str, str] = {}
    starts: dict[str, Any] = {}  # the RECURRENCE-ID of each occurrence answered
    for ev in reply:
        rid = ev.contents.get("recurrence-id")
        key = instance_key(rid[0].value) if rid else ""
        for att in ev.contents.get("attendee", []):
            if _address(str(att.value)) == sender:
                answers[key] = (att.params.get("PARTSTAT") or ["NEEDS-ACTION"])[0].upper()
                if rid:
                    starts[key] = rid[0].value
    if not uid or not answers:
        return False
    row = storage.db.one(
        "SELECT c.path, i.href, i.text FROM items i JOIN collections c ON c.id = i.collection "
        "WHERE c.parent = ? AND i.uid = ? ORDER BY c.path LIMIT 1",
        (organizer, uid),
    )
    if row is None:
        return False
    cal = vobject.readOne(row["text"])
    changed = False
    if occurrences:
        _add_overrides(cal, own, sender, {k: v for k, v in starts.items() if k in answers})
    for ev in getattr(cal, "vevent_list", []):
        if _organizer([ev]) != own:
            continue
        key = instance_key(ev.contents["recurrence-id"][0].value) if "recurrence-id" in ev.contents else ""
        partstat = answers.get(key, answers.get(""))
        for att in ev.contents.get("attendee", []):
            if partstat and _address(str(att.value)) == sender and att.params.get("PARTSTAT") != [partstat]:
                att.params["PARTSTAT"] = [partstat]
                att.params.pop("RSVP", None)
                changed = True
    if not changed:
        return False
    from gk.dav.scheduletag import SCHEDULE_TAG

    with storage.acquire_lock("w", organizer):
        (col,) = list(storage.discover("/" + row["path"] + "/"))
        item = radicale_item.Item(collection_path=col.path, vobject_item=cal)
        item.prepare()
        keep = SCHEDULE_TAG.set("keep")  # RFC 6638 §3.2.10: an attendee's answer is no new Schedule-Tag
        try:
            col.upload(row["href"], item)
        finally:
            SCHEDULE_TAG.reset(keep)
    return True


def _add_overrides(cal: Any, organizer: str, attendee: str, starts: dict[str, Any]) -> None:
    """An override (RFC 5545 §3.8.4.4) of each occurrence of ``starts`` the repeating event of
    ``cal`` has none for, made from its series (``attendee`` invited there, ``organizer``'s)."""

    events = list(getattr(cal, "vevent_list", []))
    have = {instance_key(e.contents["recurrence-id"][0].value) for e in events if "recurrence-id" in e.contents}
    masters = [e for e in events if "recurrence-id" not in e.contents]
    if len(masters) != 1 or _organizer(masters) != organizer or "rrule" not in masters[0].contents:
        return
    master = masters[0]
    if not any(_address(str(a.value)) == attendee for a in master.contents.get("attendee", [])):
        return
    if "dtstart" not in master.contents:
        return
    start = master.dtstart.value
    length = master.dtend.value - start if "dtend" in master.contents else None
    for key, value in sorted(starts.items()):
        if key in have or type(value) is not type(start):
            continue
        override = master.duplicate(master)
        _make_instance(
            override, value, length, ("rrule", "rdate", "exdate", "exrule", "dtstart", "dtend", "recurrence-id")
        )
        cal.add(override)


def schedule_copy(storage: Any, user: str, method: str, text: str, mine: Mine | None = None) -> bool:
    """RFC 6638 §3.2.1 on the attendee's side, for an invitation from a user of this box: its
    REQUEST written into ``user``'s calendar (their first event calendar, or over the copy they
    have: their answer kept while the SEQUENCE stays), its CANCEL marking their copy cancelled.
    A copy of a later SEQUENCE, or of the same UID from another organizer, is left alone, and so
    is the user's own event (organized by an address of theirs, ``mine``). True when something
    was written."""
    import vobject  # type: ignore[import-untyped]
    from radicale import item as radicale_item
    from radicale import pathutils

    from gk.dav import inbox
    from gk.dav.scheduletag import SCHEDULE_TAG

    cal = vobject.readOne(text)
    for line in list(cal.contents.get("method", [])):
        cal.remove(line)  # RFC 4791 §4.1: a stored calendar object has no METHOD
    events = list(getattr(cal, "vevent_list", []))
    organizer = _organizer(events)
    own = mine or _mine(user)
    if not events or "uid" not in events[0].contents or not organizer or own(organizer):
        return False
    uid = str(events[0].uid.value)
    sequence = max((int(str(e.sequence.value)) for e in events if "sequence" in e.contents), default=0)
    # one occurrence of a series (RFC 5546 §3.2.2.1, §3.2.5: VEVENTs with RECURRENCE-ID only): merged
    # into the copy of the series, never replacing it
    instances = {instance_key(e.contents["recurrence-id"][0].value): e for e in events if "recurrence-id" in e.contents}
    instance_only = len(instances) == len(events)
    with storage.acquire_lock("w", user):
        row = storage.db.one(
            "SELECT c.path, i.href, i.text FROM items i JOIN collections c ON c.id = i.collection "
            "WHERE c.parent = ? AND i.uid = ? AND c.tag = 'VCALENDAR' ORDER BY c.path LIMIT 1",
            (user, uid),
        )
        if row is not None:
            old = _events(row["text"])
            if _organizer(old) != organizer:
                return False
            old_sequence = max((int(str(e.sequence.value)) for e in old if "sequence" in e.contents), default=0)
            path, href = str(row["path"]), str(row["href"])
            if instance_only:
                cal = vobject.readOne(row["text"])
                for ev in list(getattr(cal, "vevent_list", [])):
                    rid = ev.contents.get("recurrence-id")
                    if rid and instance_key(rid[0].value) in instances:
                        cal.remove(ev)
                for instance in instances.values():
                    cal.add(instance)
            elif old_sequence > sequence or (method == "REQUEST" and old_sequence == sequence and _cancelled(old)):
                return False  # a later version, or a REQUEST read after its own CANCEL
            elif method == "CANCEL":
                cal = vobject.readOne(row["text"])
                for ev in getattr(cal, "vevent_list", []):
                    for line in list(ev.contents.get("status", [])):
                        ev.remove(line)
                    ev.add("status").value = "CANCELLED"
            elif old_sequence == sequence:
                answer = _my_partstat(old, own)
                for ev in getattr(cal, "vevent_list", []):
                    for att in ev.contents.get("attendee", []):
                        address = _address(str(att.value))
                        if answer and address and own(address):
                            att.params["PARTSTAT"] = [answer]
        else:
            if method == "CANCEL" or instance_only:
                return False  # nothing to cancel, or an occurrence of a series the user does not have
            path = inbox.default_calendar(storage.db, user)
            if not path:
                return False
            href = uid + ".ics"
            if not pathutils.is_safe_filesystem_path_component(href):
                href = radicale_item.get_etag(uid).strip('"') + ".ics"
        (col,) = list(storage.discover("/" + path + "/"))
        item = radicale_item.Item(collection_path=col.path, vobject_item=cal)
        item.prepare()
        renew = SCHEDULE_TAG.set("new")  # RFC 6638 §3.2.10: the organizer's change, a new Schedule-Tag
        try:
            col.upload(href, item)
        finally:
            SCHEDULE_TAG.reset(renew)
    return True


def _rewrite(storage: Any, path: str, href: str, cal: Any) -> None:
    """Item ``href`` of collection ``path`` written again as ``cal`` by the server (its own
    SCHEDULE-STATUS): the Schedule-Tag the write decided is kept."""
    from radicale import item as radicale_item

    from gk.dav.scheduletag import SCHEDULE_TAG

    with storage.acquire_lock("w"):
        (col,) = list(storage.discover("/" + path + "/"))
        item = radicale_item.Item(collection_path=col.path, vobject_item=cal)
        item.prepare()
        keep = SCHEDULE_TAG.set("keep")
        try:
            col.upload(href, item)
        finally:
            SCHEDULE_TAG.reset(keep)


APPLIED_KEPT = 1024  # digests of applied messages remembered by ReplyWatcher
READ_BATCH = 50  # messages read per I/O pool hand-off by ReplyWatcher
SCAN_GATHER = 0.05  # seconds ReplyWatcher lets deliveries gather before it reads them


def _may_hold(raw: bytes, words: tuple[bytes, ...]) -> bool:
    """The cheap test on a message's bytes: might it hold an iTIP part with one of ``words``
    (upper-case method names)? Run in the pool thread that read the bytes: on the hub, the
    case-folded copies of the 5,000 messages a first open announces (92 MB) delayed the IMAP
    commands that followed (py-spy during bench imap: a third of the hub's time)."""
    if b"text/calendar" not in raw.lower():
        return False
    upper = raw.upper()
    return any(w in upper for w in words)


def _read_all(handles: list[tuple[int, BinaryIO]], words: tuple[bytes, ...]) -> list[tuple[int, bytes]]:
    """Read opened message files (in the I/O pool): those that may hold an iTIP part with one
    of ``words`` (``_may_hold``); one that fails is left out."""
    out = []
    for uid, fh in handles:
        try:
            raw = fh.read(MAX_REPLY_BYTES + 1)
        except OSError:
            continue
        if _may_hold(raw, words):
            out.append((uid, raw))
    return out


def _read_new(files: list[tuple[str, str]], words: tuple[bytes, ...]) -> list[tuple[str, bytes]]:
    """Read delivered files of small size (in the I/O pool), given as ``(user, path)``, that may
    hold an iTIP part with one of ``words`` (``_may_hold``); one moved to ``cur/`` meanwhile is
    left out (its indexing announces it with ``MessagesAdded``)."""
    out = []
    for user, path in files:
        try:
            with open(path, "rb") as f:
                raw = f.read(MAX_REPLY_BYTES + 1)
        except OSError:
            continue
        if len(raw) <= MAX_REPLY_BYTES and _may_hold(raw, words):
            out.append((user, raw))
    return out


class ReplyWatcher:
    """A bus subscriber: each message added to an INBOX is checked (from its cached MIME tree) for
    an iTIP REPLY; one found updates the mailbox owner's event, off the publisher's greenlet —
    only when the box vouches for its From address (``gk.mail.authcheck.sender.verified_sender``).
    Mail delivered by SMTP lands behind the index (``MaildirChanged``): the fresh files of the
    INBOX's ``new/`` are read as they are, never indexed nor moved (a reply already applied is
    applied again harmlessly: the same status is written once)."""

    def __init__(self, ctx: AppContext, storage: Any, inbox: Callable[[str, str, str, str, str], None] | None = None):
        self.ctx = ctx
        self.storage = storage  # a callable giving the DAV storage (Radicale is imported on first use)
        # inbox(user, sender, uid, method, text): an invitation mailed to the user, for their scheduling inbox
        self.inbox = inbox
        # digests of the messages applied lately: a delivered message is announced twice (its
        # file in new/, then its UID when a sync indexes it), and applied twice an invitation
        # the user had deleted from the scheduling inbox meanwhile came back
        self._applied: OrderedDict[bytes, None] = OrderedDict()
        self._delivered: list[tuple[str, str]] = []  # (user, path) announced, not read yet
        self._scanner: gevent.Greenlet | None = None  # the greenlet reading them (_scan_new)

    def __call__(self, event: Any) -> None:
        from gk import events

        if event.folder.upper() != "INBOX":
            return
        if isinstance(event, events.MessagesAdded):
            # a first indexing's copied-in history is not mail to act on (its old REPLYs would
            # overwrite newer answers), and reading its thousands of files held the GIL for
            # seconds after a first open; mail delivered meanwhile is in new/ (not ``imported``)
            uids = event.uids
            if event.imported:
                old = set(event.imported)
                uids = tuple(u for u in uids if u not in old)
            if uids:
                gevent.spawn(self._check, event.user, event.folder, uids)
        elif isinstance(event, events.MaildirChanged) and event.paths:
            self._delivered.extend((event.user, path) for path in event.paths)
            if self._scanner is None:
                self._scanner = gevent.spawn(self._scan_new)

    def _scan_new(self) -> None:
        """Mail delivered behind the index: the files just put into the INBOX's ``new/`` (the
        events name them) are read as they are, in the I/O pool, never indexed nor moved (that
        stays the IMAP sessions' and the webmail's business). The directory is never listed: a
        full ``new/`` of thousands of messages, listed at every delivery, held the hub for whole
        seconds under a mail burst. One greenlet reads every file announced meanwhile in one
        pool hand-off (up to ``READ_BATCH``), after waiting ``SCAN_GATHER`` seconds for more: a
        greenlet and a hand-off per delivery were ~10 % of the hub's time under SMTP load
        (py-spy during bench smtp_inbound)."""
        from gk import pools

        try:
            gevent.sleep(SCAN_GATHER)
            while self._delivered:
                batch, self._delivered = self._delivered[:READ_BATCH], self._delivered[READ_BATCH:]
                for user, raw in pools.run_io(_read_new, batch, self._words()):
                    self._apply(user, raw)
        finally:
            self._scanner = None

    def _words(self) -> tuple[bytes, ...]:
        """The iTIP methods a message's bytes must name to be worth parsing (``_may_hold``)."""
        if self.inbox is None:
            return (b"REPLY",)
        return (b"REPLY", b"REQUEST", b"CANCEL")

    def _apply(self, user: str, raw: bytes) -> None:
        digest = hashlib.blake2b(raw, digest_size=16, person=user.lower().encode()[:16]).digest()
        if digest in self._applied:
            return
        self._applied[digest] = None
        if len(self._applied) > APPLIED_KEPT:
            self._applied.popitem(last=False)
        if user.lower() in scheduled_for(raw):
            # applied when it was sent (Scheduler): applied again it could undo a newer state
            log.info("dav: iTIP mail %s to %s was applied when sent", _message_id(raw), user.lower())
            return
        mine = addresses_of(self.ctx, user)
        # only mail whose sender this box vouches for (its own Authentication-Results: a user of
        # the box who submitted it, or DMARC / aligned SPF or DKIM from outside): the From field
        # alone is anyone's to write, and a forged one would change an answer in an organizer's
        # event or place (or cancel) an invitation in the scheduling inbox
        verified = verified_sender(raw, self.ctx.authserv_id, self.ctx.accounts)
        try:
            sender, texts = reply_calendars(raw)
            if texts and (not verified or sender != verified):
                log.warning("dav: iTIP REPLY to %s not applied: its sender %s is not authenticated", user, sender)
                texts = []
            for text in texts:
                storage = self.storage()
                if apply_reply(storage, user.lower(), sender, text, mine):
                    log.info("dav: iTIP REPLY from %s updated an event of %s", sender, user)
                    reply_to_inbox(storage, user.lower(), text)
        except Exception:
            log.exception("dav: iTIP reply to %s not applied", user)
        if self.inbox is None:
            return
        try:
            sender, invitations = invitation_calendars(raw)
            if invitations and (not verified or sender != verified):
                log.warning("dav: iTIP mail to %s not placed: its sender %s is not authenticated", user, sender)
                invitations = []
            for method, text in invitations:
                uid = inbox_message(user.lower(), sender, method, text, mine)
                if uid is not None:
                    self.inbox(user.lower(), sender, uid, method, text)
        except Exception:
            log.exception("dav: iTIP invitation to %s not placed in the scheduling inbox", user)

    def _check(self, user: str, folder: str, uids: tuple[int, ...]) -> None:
        from gk import pools
        from gk.mail.mailbox import MailboxStore

        store = self.ctx.services.maybe(MailboxStore)
        if store is None:
            return
        mb = store.user(user)
        # Sizes first and the bytes' cheap test (as _scan_new) before the MIME tree: a folder
        # indexed lazily (issue 11: thousands of messages at its first SELECT) announces them all
        # at once, unparsed, and asking each one's structure parsed them all on the spot.
        sizes = {u: m.size for u, m in mb.infos(folder, uids, envelopes=False).items()}
        small = [u for u in uids if sizes.get(u, MAX_REPLY_BYTES + 1) <= MAX_REPLY_BYTES]
        methods = ("REPLY", *INBOX_METHODS) if self.inbox is not None else ("REPLY",)
        for start in range(0, len(small), READ_BATCH):
            # files opened here (the index lookup is the hub's), read in the I/O pool: a first
            # open announces thousands of messages, and reading them on the hub stalled IMAP
            handles: list[tuple[int, BinaryIO]] = []
            for uid in small[start : start + READ_BATCH]:
                try:
                    handles.append((uid, mb.open_message(folder, uid)))
                except Exception:
                    continue  # expunged meanwhile
            try:
                raws = pools.run_io(_read_all, handles, self._words())
            finally:
                for _, fh in handles:
                    fh.close()
            for uid, raw in raws:
                try:
                    if not _reply_parts(mb.structure(folder, uid), methods):
                        continue
                    self._apply(user, raw)
                except Exception:
                    log.exception("dav: iTIP reply in %s's %s uid %d not applied", user, folder, uid)
