"""RFC 6638 §3.2.10 ``Schedule-Tag`` of scheduling object resources: when a write gives one a new
tag and when it keeps its old one (the ``schedule_tags`` table, written by ``gk.dav.storage``
in the transaction that writes the item; served by ``gk.dav.extensions``).

A scheduling object resource is an item whose component has an ORGANIZER. Its tag is new:

* on every write by a client (PUT, MOVE, a whole-collection PUT, the web calendar) to the
  organizer's copy (the ORGANIZER is an address of the collection's owner);
* when the server writes an attendee's copy because of the organizer's REQUEST or CANCEL
  (``gk.dav.itip.schedule_copy``: ``SCHEDULE_TAG`` "new");
* on a client's write to an attendee's copy that changes more than what is the attendee's own:
  their ATTENDEE line's PARTSTAT, RSVP and SCHEDULE-STATUS, the alarms (VALARM), TRANSP, the
  stamps (DTSTAMP, LAST-MODIFIED), PRODID and ``X-`` properties (client bookkeeping such as
  Thunderbird's ``X-MOZ-LASTACK``); a change of those alone keeps the tag. SCHEDULE-STATUS and
  SCHEDULE-FORCE-SEND on any ATTENDEE or ORGANIZER line are the server's (``gk.dav.itip`` writes
  the first, whatever a client sent, and never stores the second): a client that drops or
  changes them changes nothing here.

The server's own SCHEDULE-STATUS write into the copy a request just wrote (``gk.dav.itip._rewrite``)
keeps the tag that request's write decided (``SCHEDULE_TAG`` "keep").

It is kept when the server writes an attendee's REPLY into the organizer's copy
(``gk.dav.itip.apply_reply``: ``SCHEDULE_TAG`` "keep"). An object that loses its ORGANIZER loses
its tag.

Cost: a write of an object without an ORGANIZER line pays one line scan of its text and one
no-op DELETE on a primary key; a scheduling object one indexed read and one upsert, and a client's
write to an attendee's copy two vobject parses (the old and the new text, a few ms each on the
board, on a write only). Reads (GET, PROPFIND asking for the tag) cost one indexed lookup per object.
"""

from __future__ import annotations

import contextvars
import secrets
from collections.abc import Callable
from typing import Any

# How the scheduler's write sets the tag: "new", "keep", or None (decided from the write: a client's)
SCHEDULE_TAG: contextvars.ContextVar[str | None] = contextvars.ContextVar("gk_dav_schedule_tag", default=None)

# the stamps and client bookkeeping an attendee's write may change with its answer
_ATTENDEE_PROPS = frozenset({"TRANSP", "DTSTAMP", "LAST-MODIFIED", "PRODID"})
_OWN_PARAMS = frozenset({"PARTSTAT", "RSVP", "SCHEDULE-STATUS"})
# parameters the server owns on any ATTENDEE or ORGANIZER line (RFC 6638 §7.2, §7.3)
_SERVER_PARAMS = frozenset({"SCHEDULE-STATUS", "SCHEDULE-FORCE-SEND"})

Mine = Callable[[str], bool]


class Merge:
    """Set (``MERGE``) around a client's PUT whose ``If-Schedule-Tag-Match`` matched: the
    attendees' answers the server wrote into the organizer's copy since (its "inconsequential"
    changes, which kept the tag) are merged into the client's text (§3.2.10: the server MUST
    resolve those conflicts); ``merged`` tells the caller the stored text is not the one sent."""

    __slots__ = ("merged",)

    def __init__(self) -> None:
        self.merged = False


MERGE: contextvars.ContextVar[Merge | None] = contextvars.ContextVar("gk_dav_schedule_merge", default=None)

# what an attendee agreed to (``gk.dav.itip.SIGNIFICANT``): an instance the organizer changed in one
# of these is sent again, and its answers are the client's (reset, or kept), never merged back
_SIGNIFICANT = ("DTSTART", "DTEND", "DURATION", "RRULE", "RDATE", "EXDATE", "LOCATION", "SUMMARY", "STATUS", "SEQUENCE")
_ANSWER_PARAMS = ("PARTSTAT", "RSVP", "SCHEDULE-STATUS")


def _instance(ev: Any) -> str:
    rid = ev.contents.get("recurrence-id")
    return str(rid[0].value) if rid else ""


def _significant(ev: Any) -> list[tuple[str, tuple[str, ...]]]:
    return [
        (name, tuple(sorted(str(line.value) for line in ev.contents.get(name.lower(), [])))) for name in _SIGNIFICANT
    ]


def merge(old: str, new: str, owner: Mine) -> str | None:
    """``new`` (the organizer's client's text of their copy) with each other attendee's answer as
    the stored ``old`` has it, in every instance whose significant properties ``new`` leaves as they
    were; None when that changes nothing (or either cannot be read, or it is not the owner's event)."""
    import vobject  # type: ignore[import-untyped]

    address = organizer(new)
    if not address or not owner(address):
        return None
    try:
        old_cal, new_cal = vobject.readOne(old), vobject.readOne(new)
    except Exception:
        return None
    stored = {_instance(ev): ev for ev in getattr(old_cal, "vevent_list", [])}
    changed = False
    for ev in getattr(new_cal, "vevent_list", []):
        before = stored.get(_instance(ev))
        if before is None or _significant(before) != _significant(ev):
            continue
        answers = {}
        for att in before.contents.get("attendee", []):
            who = _address(str(att.value))
            if who and not owner(who):
                answers[who] = {k: list(v) for k, v in att.params.items() if k.upper() in _ANSWER_PARAMS}
        for att in ev.contents.get("attendee", []):
            who = _address(str(att.value))
            if who not in answers:
                continue
            mine = {k: list(v) for k, v in att.params.items() if k.upper() in _ANSWER_PARAMS}
            if mine != answers[who]:
                for key in list(att.params):
                    if key.upper() in _ANSWER_PARAMS:
                        del att.params[key]
                att.params.update(answers[who])
                changed = True
    return new_cal.serialize() if changed else None


def new_tag() -> str:
    return f'"{secrets.token_hex(8)}"'


def organizer(text: str) -> str | None:
    """The ORGANIZER address (``mailto:`` stripped, lower case; "" for another kind of address)
    of the calendar object ``text``, None when it has none: no parse, a scan of its lines."""
    if "ORGANIZER" not in text.upper():
        return None
    unfolded = text.replace("\r\n ", "").replace("\r\n\t", "").replace("\n ", "").replace("\n\t", "")
    for line in unfolded.splitlines():
        head = line[:10].upper()
        if head.startswith("ORGANIZER") and line[9:10] in (";", ":"):
            value = _value(line)
            return value[7:].strip().lower() if value.lower().startswith("mailto:") else ""
    return None


def _value(line: str) -> str:
    """The value of a content line: after the first colon outside a quoted parameter value."""
    quoted = False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == ":" and not quoted:
            return line[i + 1 :]
    return ""


def _address(value: str) -> str:
    value = value.strip()
    return value[7:].lower() if value.lower().startswith("mailto:") else ""


def _shape(comp: Any, mine: Mine) -> list[str]:
    """What of ``comp`` an attendee may not change: every line but the attendee's own (see the
    module's docstring), sorted."""
    from vobject.base import Component  # type: ignore[import-untyped]

    out = []
    for name, lines in comp.contents.items():
        upper = name.upper()
        if upper in _ATTENDEE_PROPS or upper.startswith("X-") or upper == "VALARM":
            continue
        for line in lines:
            if isinstance(line, Component):
                out.append(f"{upper}:{_shape(line, mine)}")
                continue
            params = dict(line.params)
            if upper in ("ATTENDEE", "ORGANIZER"):
                # the server's own (gk.dav.itip: SCHEDULE-STATUS it writes, whatever a client sends)
                params = {k: v for k, v in params.items() if k.upper() not in _SERVER_PARAMS}
            if upper == "ATTENDEE" and mine(_address(str(line.value))):
                params = {k: v for k, v in params.items() if k.upper() not in _OWN_PARAMS}
            out.append(f"{upper}:{line.value!r}:{sorted((k.upper(), tuple(v)) for k, v in params.items())}")
    return sorted(out)


def attendee_only(old: str, new: str, mine: Mine) -> bool:
    """True when ``new`` differs from ``old`` in the attendee's own parts only (``mine``: the
    owner's addresses); False when either cannot be read."""
    import vobject  # type: ignore[import-untyped]

    try:
        return bool(_shape(vobject.readOne(old), mine) == _shape(vobject.readOne(new), mine))
    except Exception:
        return False


def decide(owner: Mine, old_text: str | None, old_tag: str | None, new_text: str) -> str | None:
    """The tag of an item written as ``new_text`` over ``old_text`` (tagged ``old_tag``) in a
    collection of the owner of ``owner``'s addresses; None: not a scheduling object."""
    address = organizer(new_text)
    if address is None:
        return None
    mode = SCHEDULE_TAG.get()
    if old_tag is None or old_text is None or mode == "new":
        return new_tag()
    if mode == "keep":
        return old_tag
    if address and owner(address):
        return new_tag()  # the organizer's client wrote its copy
    return old_tag if attendee_only(old_text, new_text, owner) else new_tag()
