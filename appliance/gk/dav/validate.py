"""The preconditions of a PUT of one object into a calendar or an address book (RFC 4791
§5.3.2.1, RFC 6352 §6.3.2.1), checked before Radicale sees the body.

Radicale 3.9 stores an empty ``VCALENDAR`` (no ``VEVENT``/``VTODO``/``VJOURNAL``) with 201, stores
a ``VTODO`` in a calendar whose ``supported-calendar-component-set`` is ``VEVENT`` only, and
answers the rest of what it refuses with a bare 400. The RFCs want 403 and a ``DAV:error`` that
names the precondition, so a client can tell the user why:

* in a calendar: ``CALDAV:valid-calendar-data`` — not one iCalendar ``VCALENDAR`` object (text
  that does not parse, several objects, another kind); ``CALDAV:valid-calendar-object-resource``
  — no ``VEVENT``/``VTODO``/``VJOURNAL`` in it, components of more than one type, several
  different UIDs or one without a UID (§4.1: one calendar object resource holds the components
  of one UID), or a ``METHOD`` property (§4.1: "MUST NOT specify the iCalendar METHOD
  property"; Radicale stored it. Refused, not stripped: sabre/dav refuses it too (415, its
  vobject's CalDAV profile) and Apple's calendar server with this precondition; stripping would
  store a text other than the one sent); ``CALDAV:supported-calendar-component`` — a component type the collection does not
  take (its ``supported-calendar-component-set``; none set: any);
* in an address book: ``CARDDAV:valid-address-data`` — anything but exactly one ``VCARD`` with a
  UID (§5.1).

What passes is handed to Radicale parsed and checked (``Parsed``, ``install``): its PUT takes
the components of this parse when it reads the same text, and skips its own
``check_and_sanitize_items`` on them (done here with the same arguments), so an accepted PUT is
parsed once. What it still refuses (an unreadable recurrence rule found later, say) keeps its
400. A body that is not UTF-8 is left to Radicale's own decoding and answer.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

CALDAV_NS = "urn:ietf:params:xml:ns:caldav"
CARDDAV_NS = "urn:ietf:params:xml:ns:carddav"
OBJECT_COMPONENTS = ("VEVENT", "VTODO", "VJOURNAL")


class Refused(ValueError):
    """A failed precondition: ``ns`` and ``name`` of the element for the ``DAV:error`` body."""

    def __init__(self, ns: str, name: str, reason: str):
        super().__init__(reason)
        self.ns = ns
        self.name = name


class Parsed:
    """A body that passed ``check_put``: its text, its UID and the components read from it, already
    through Radicale's ``check_and_sanitize_items`` with ``tag`` and ``max_occurrences``;
    ``handed``: the list once Radicale's PUT took it (``install``)."""

    __slots__ = ("handed", "max_occurrences", "objects", "tag", "text", "uid")

    def __init__(self, text: str, objects: list[Any], tag: str, max_occurrences: int):
        self.text = text
        first = objects[0]
        if tag == "VCALENDAR":
            first = next(c for c in first.components() if str(c.name or "").upper() in OBJECT_COMPONENTS)
        self.uid = _uid(first)
        self.objects: list[Any] | None = objects
        self.tag = tag
        self.max_occurrences = max_occurrences
        self.handed: list[Any] | None = None


# set by gk.dav.extensions (``handing``) around the Radicale PUT whose body was checked
PARSED: contextvars.ContextVar[Parsed | None] = contextvars.ContextVar("gk_dav_parsed", default=None)


def check_put(body: bytes, tag: str, components: frozenset[str], max_occurrences: int) -> Parsed | None:
    """Raise ``Refused`` when ``body`` may not be stored as one object of a collection of ``tag``
    (``VCALENDAR``/``VADDRESSBOOK``) taking ``components`` (empty: any); ``max_occurrences`` is
    Radicale's ``max_vevent_rrule_occurrence`` (a bounded rule with more is not stored). What
    passes comes back parsed (None: not checked here, Radicale decides)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None  # Radicale decodes with the request's charset and answers for itself
    if tag == "VCALENDAR":
        objects = _check_calendar(text, components, max_occurrences)
    elif tag == "VADDRESSBOOK":
        objects = _check_card(text, max_occurrences)
    else:
        return None
    return Parsed(text, objects, tag, max_occurrences)


@contextlib.contextmanager
def handing(parsed: Parsed | None) -> Iterator[None]:
    """Within: Radicale's PUT of ``parsed.text`` takes ``parsed``'s components (``install``)."""
    if parsed is None:
        yield
        return
    token = PARSED.set(parsed)
    try:
        yield
    finally:
        PARSED.reset(token)
        parsed.objects = parsed.handed = None


def install() -> None:
    """Make Radicale's PUT take the parse of ``PARSED`` (idempotent): ``read_components`` of the
    very text checked returns its components (once), and ``check_and_sanitize_items`` on that
    list with the arguments it was checked with does nothing more (it ran on it here, and
    Radicale's ``prepare`` then builds the item from it as from its own parse). Any other call is
    Radicale's own."""
    from radicale import item as radicale_item

    if getattr(radicale_item.read_components, "gk_parsed", False):
        return
    read, check = radicale_item.read_components, radicale_item.check_and_sanitize_items

    def read_components(s: str) -> list[Any]:
        parsed = PARSED.get()
        if parsed is not None and parsed.objects is not None and s == parsed.text:
            parsed.handed, parsed.objects = parsed.objects, None  # once: Radicale may change them
            return parsed.handed
        return read(s)

    def check_and_sanitize_items(
        vobject_items: list[Any], max_vevent_rrule_occurrence: int, is_collection: bool = False, tag: str = ""
    ) -> None:
        parsed = PARSED.get()
        if (
            parsed is not None
            and parsed.handed is vobject_items
            and not is_collection
            and (tag, max_vevent_rrule_occurrence) == (parsed.tag, parsed.max_occurrences)
        ):
            return
        check(vobject_items, max_vevent_rrule_occurrence, is_collection=is_collection, tag=tag)

    read_components.gk_parsed = True  # type: ignore[attr-defined]
    radicale_item.read_components = read_components
    radicale_item.check_and_sanitize_items = check_and_sanitize_items


def _read(text: str) -> list[Any]:
    from radicale import item as radicale_item

    return list(radicale_item.read_components(text))


def _uid(component: Any) -> str:
    line = getattr(component, "uid", None) if hasattr(component, "uid") else None
    return str(line.value or "").strip() if line is not None else ""


def _check_calendar(text: str, components: frozenset[str], max_occurrences: int) -> list[Any]:
    def refuse(name: str, reason: str) -> Refused:
        return Refused(CALDAV_NS, name, reason)

    try:
        objects = _read(text)
    except Exception as e:
        raise refuse("valid-calendar-data", f"not iCalendar data: {e}") from None
    if len(objects) != 1 or objects[0].name != "VCALENDAR":
        raise refuse("valid-calendar-data", "not one VCALENDAR object")
    if "method" in objects[0].contents:
        # RFC 4791 §4.1: an iTIP message (METHOD:REQUEST, PUBLISH...) is not a stored object
        raise refuse("valid-calendar-object-resource", "a METHOD property (RFC 4791 §4.1)")
    kinds: set[str] = set()
    uids: set[str] = set()
    for comp in objects[0].components():
        name = str(comp.name or "").upper()
        if name not in OBJECT_COMPONENTS:
            continue  # VTIMEZONE, and X- components Radicale keeps as they are
        kinds.add(name)
        uids.add(_uid(comp))
    if not kinds:
        raise refuse("valid-calendar-object-resource", "no VEVENT, VTODO or VJOURNAL component")
    if len(kinds) > 1:
        raise refuse("valid-calendar-object-resource", f"components of several types: {', '.join(sorted(kinds))}")
    if "" in uids:
        raise refuse("valid-calendar-object-resource", "a component without a UID")
    if len(uids) > 1:
        raise refuse("valid-calendar-object-resource", "components with different UIDs")
    (kind,) = kinds
    if components and kind not in components:
        raise refuse("supported-calendar-component", f"this calendar does not take {kind} components")
    _check_with_radicale(objects, "VCALENDAR", refuse("valid-calendar-data", ""), max_occurrences)
    return objects


def _check_card(text: str, max_occurrences: int) -> list[Any]:
    def refuse(reason: str) -> Refused:
        return Refused(CARDDAV_NS, "valid-address-data", reason)

    try:
        objects = _read(text)
    except Exception as e:
        raise refuse(f"not vCard data: {e}") from None
    if len(objects) != 1 or objects[0].name != "VCARD":
        raise refuse("not one VCARD object")
    if not _uid(objects[0]):
        raise refuse("a vCard without a UID")
    _check_with_radicale(objects, "VADDRESSBOOK", refuse(""), max_occurrences)
    return objects


def _check_with_radicale(objects: list[Any], tag: str, refused: Refused, max_occurrences: int) -> None:
    """Radicale's own checks of one object (recurrence rules, dates of EXDATE/RDATE), on this
    parse of the body (Radicale parses its own): what fails them is not valid data."""
    from radicale import item as radicale_item

    try:
        radicale_item.check_and_sanitize_items(
            objects, max_vevent_rrule_occurrence=max_occurrences, is_collection=False, tag=tag
        )
    except Exception as e:
        raise Refused(refused.ns, refused.name, str(e)[:200]) from None
