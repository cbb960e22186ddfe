"""Calendars and address books for the web UI, through the storage the DAV clients use.

The web calendar and contacts pages (``gk.web.calendar``, ``gk.web.contacts``) read and write
Radicale collections and items of ``DAVService.storage`` under its own read/write lock, exactly
as a CalDAV/CardDAV request does: an event made in the web is in the next ``sync-collection``
of a phone, and an event PUT by a phone is on the next page. Access is decided by the same
rights plugin as ``/dav/`` (``Rights.authorization``): a path the user may not read is
``NotFound``, never an error that tells it exists.

Items are checked and prepared with Radicale's own functions (``check_and_sanitize_items``,
``Item.prepare``) and bounded by ``dav.max_resource_size``, so the web cannot store what a PUT
would have refused. An import is one write lock, hence one SQLite transaction: every object of
the file is parsed and checked (in the CPU pool, off the hub) before the first is written, and
a file that fails anywhere leaves the collection as it was.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gk.locale import N_

if TYPE_CHECKING:
    from gk.dav.service import DAVService

CALENDAR = "VCALENDAR"
ADDRESSBOOK = "VADDRESSBOOK"
PRODID = "-//GK//Web calendar//EN"
MAX_RRULE_OCCURRENCES = 10000  # Radicale's default max_vevent_rrule_occurrence
_SAFE_HREF = re.compile(r"[^A-Za-z0-9@._+-]")


class NotFound(LookupError):
    """No such collection or item for this user (or no right to see it)."""


class Invalid(ValueError):
    """Refused input; ``template``/``params`` for the catalog, as ``gk.accounts.AccountError``."""

    def __init__(self, template: str, **params: object):
        super().__init__(template.format(**params) if params else template)
        self.template = template
        self.params = params


class Conflict(Invalid):
    """The item changed since the form was loaded (its etag differs)."""


@dataclass(frozen=True)
class Book:
    """A calendar, task list or address book the user may read."""

    path: str  # "alice@example.org/calendar"
    owner: str
    name: str
    title: str
    color: str
    tag: str
    components: frozenset[str]
    writable: bool

    @property
    def is_tasks(self) -> bool:
        return self.tag == CALENDAR and self.components == frozenset({"VTODO"})

    @property
    def has_events(self) -> bool:
        return self.tag == CALENDAR and (not self.components or "VEVENT" in self.components)


@dataclass(frozen=True)
class Entry:
    """One stored item: a calendar object (all components of one UID) or a vCard."""

    book: Book
    href: str
    etag: str
    uid: str
    text: str
    component: str
    start: int
    end: int


def _collection_of(found: Any) -> Any:
    from radicale import storage

    return found if isinstance(found, storage.BaseCollection) else None


class DavWeb:
    def __init__(self, dav: DAVService):
        self.dav = dav
        self._ensured: set[str] = set()

    @property
    def storage(self) -> Any:
        return self.dav.storage

    def _rights(self, user: str, path: str) -> str:
        return str(self.dav.application()._rights.authorization(user, set(), "/" + path.strip("/") + "/"))

    # -- collections -----------------------------------------------------------------------
    def ensure(self, user: str) -> None:
        """The user's default calendar, task list and address book, if they have none yet (once
        per process and user: it takes the storage's write lock)."""
        if user not in self._ensured:
            self.dav.ensure_user(user)
            self._ensured.add(user)

    def _book(self, user: str, col: Any) -> Book | None:
        path = str(col.path)
        owner, _, name = path.partition("/")
        if not name or "/" in name:
            return None
        tag = col.tag or ""
        if tag not in (CALENDAR, ADDRESSBOOK):
            return None
        granted = self._rights(user, path)
        if "r" not in granted and "w" not in granted:
            return None
        meta = col.get_meta()
        comps = frozenset(
            c.strip().upper() for c in str(meta.get("C:supported-calendar-component-set", "")).split(",") if c.strip()
        )
        return Book(
            path=path,
            owner=owner,
            name=name,
            title=str(meta.get("D:displayname") or name),
            color=_color(str(meta.get("ICAL:calendar-color", ""))),
            tag=tag,
            components=comps,
            writable="w" in granted,
        )

    def books(self, user: str, tag: str) -> list[Book]:
        """The user's collections of ``tag``, then those of others shared with them."""
        st = self.storage
        mine: list[Book] = []
        shared: list[Book] = []
        seen: set[str] = set()
        with st.acquire_lock("r", user):
            for principal in list(st.discover("/", depth="1")):
                col = _collection_of(principal)
                if col is None or not col.path or "/" in col.path:
                    continue
                # another owner's principal is never listed to this user, but their collections
                # may be shared one by one: the rights plugin decides for each (``_book``). A
                # shared collection is also listed in each member's home: it is shown once, as its
                # owner's (the owner saw their Family calendar twice, once via the member's home).
                for child in st.discover("/" + col.path + "/", depth="1"):
                    sub = _collection_of(child)
                    if sub is None or sub.path == col.path or sub.path in seen:
                        continue
                    book = self._book(user, sub)
                    if book is not None and book.tag == tag:
                        seen.add(book.path)
                        (mine if book.owner == user else shared).append(book)
        mine.sort(key=lambda b: (b.name not in ("calendar", "contacts"), b.title.lower()))
        shared.sort(key=lambda b: (b.owner, b.title.lower()))
        return mine + shared

    def book(self, user: str, path: str, write: bool = False) -> Book:
        path = path.strip("/")
        if not path or path.count("/") != 1:
            raise NotFound(path)
        st = self.storage
        with st.acquire_lock("r", user):
            col = _collection_of(next(iter(st.discover("/" + path + "/")), None))
            book = self._book(user, col) if col is not None else None
        if book is None or (write and not book.writable):
            raise NotFound(path)
        return book

    # -- items -----------------------------------------------------------------------------
    def _entry(self, book: Book, item: Any) -> Entry:
        start, end = item.time_range
        return Entry(
            book=book,
            href=str(item.href),
            etag=str(item.etag),
            uid=str(item.uid),
            text=str(item.serialize()),
            component=str(item.component_name),
            start=int(start),
            end=int(end),
        )

    def entries(
        self, user: str, book: Book, start: int | None = None, end: int | None = None, component: str = "VEVENT"
    ) -> list[Entry]:
        """Every item of ``book``; with [start, end) (POSIX seconds) only the ``component`` objects
        whose time range (recurrences included) meets it: candidates the caller expands."""
        st = self.storage
        out: list[Entry] = []
        with st.acquire_lock("r", user):
            col = _collection_of(next(iter(st.discover("/" + book.path + "/")), None))
            if col is None:
                return []
            if start is None or end is None or book.tag != CALENDAR:
                items = col.get_all()
            else:
                # a CalDAV calendar-query's time-range filter: the storage answers it from its
                # indexed ranges (recurrences included) without reading the other rows
                items = (item for item, _ in col.get_filtered([_range_filter(component, start, end)]))
            for item in items:
                s, e = item.time_range
                if start is not None and end is not None and not (s < end and e > start):
                    continue
                out.append(self._entry(book, item))
        return out

    def entry(self, user: str, path: str, href: str, write: bool = False) -> Entry:
        book = self.book(user, path, write)
        st = self.storage
        with st.acquire_lock("r", user):
            col = _collection_of(next(iter(st.discover("/" + book.path + "/")), None))
            if col is None:
                raise NotFound(href)
            for _, item in col.get_multi([href]):
                if item is not None:
                    return self._entry(book, item)
        raise NotFound(href)

    def _prepare(self, book: Book, vobject_item: Any) -> Any:
        from radicale import item as radicale_item

        try:
            radicale_item.check_and_sanitize_items(
                [vobject_item], max_vevent_rrule_occurrence=MAX_RRULE_OCCURRENCES, is_collection=False, tag=book.tag
            )
            item = radicale_item.Item(collection_path=book.path, vobject_item=vobject_item)
            item.prepare()
        except Exception as e:  # Radicale raises ValueError, RuntimeError, AttributeError...
            raise Invalid(N_("This entry is not valid: {reason}"), reason=str(e)[:200]) from e
        if book.tag == CALENDAR and book.components and item.component_name not in book.components:
            raise Invalid(N_("This calendar does not hold this kind of entry ({kind})."), kind=item.component_name)
        if len(item.serialize().encode()) > self.dav.cfg.max_resource_size:
            raise Invalid(
                N_("This entry is larger than the limit of {size} bytes."), size=self.dav.cfg.max_resource_size
            )
        return item

    def save(self, user: str, path: str, vobject_item: Any, href: str = "", etag: str = "") -> Entry:
        """Create (no ``href``) or replace an item. ``etag``: refuse if it changed meanwhile."""
        book = self.book(user, path, write=True)
        item = self._prepare(book, vobject_item)
        st = self.storage
        suffix = ".ics" if book.tag == CALENDAR else ".vcf"
        with st.acquire_lock("w", user):
            col = _collection_of(next(iter(st.discover("/" + book.path + "/")), None))
            if col is None:
                raise NotFound(path)
            if href:
                old = next((it for _, it in col.get_multi([href]) if it is not None), None)
                if old is None:
                    raise NotFound(href)
                if etag and old.etag != etag:
                    raise Conflict(N_("This entry was changed elsewhere meanwhile; reload it and try again."))
            else:
                if col.has_uid(item.uid):
                    raise Invalid(N_("An entry with this UID already exists."))
                href = _free_href(col, item.uid, suffix)
            saved, _ = col.upload(href, item)
            return self._entry(book, saved)

    def delete(self, user: str, path: str, href: str, etag: str = "") -> None:
        book = self.book(user, path, write=True)
        st = self.storage
        with st.acquire_lock("w", user):
            col = _collection_of(next(iter(st.discover("/" + book.path + "/")), None))
            if col is None:
                raise NotFound(path)
            old = next((it for _, it in col.get_multi([href]) if it is not None), None)
            if old is None:
                raise NotFound(href)
            if etag and old.etag != etag:
                raise Conflict(N_("This entry was changed elsewhere meanwhile; reload it and try again."))
            col.delete(href)

    # -- files -----------------------------------------------------------------------------
    def export_text(self, user: str, book: Book) -> str:
        st = self.storage
        with st.acquire_lock("r", user):
            col = _collection_of(next(iter(st.discover("/" + book.path + "/")), None))
            if col is None:
                raise NotFound(book.path)
            return str(col.serialize())

    def import_text(self, user: str, path: str, text: str) -> tuple[int, int]:
        """Add the objects of an .ics or .vcf file; (created, updated). An object whose UID is
        already in the collection replaces it (a re-import updates, never duplicates)."""
        from gk import pools

        book = self.book(user, path, write=True)
        # parsing and checking a file of up to dav.max_request_size is seconds of pure Python:
        # in the CPU pool, never on the hub (the writes then run under the storage's lock here)
        items = pools.run_cpu(lambda: list(self._parse_file(book, text)))
        if not items:
            raise Invalid(N_("The file holds nothing to import."))
        st = self.storage
        suffix = ".ics" if book.tag == CALENDAR else ".vcf"
        created = updated = 0
        with st.acquire_lock("w", user):
            col = _collection_of(next(iter(st.discover("/" + book.path + "/")), None))
            if col is None:
                raise NotFound(path)
            by_uid: dict[str, str] = {}
            for it in col.get_all():
                by_uid[str(it.uid)] = str(it.href)
            for item in items:
                href = by_uid.get(item.uid)
                if href is None:
                    href = _free_href(col, item.uid, suffix)
                    by_uid[item.uid] = href
                    created += 1
                else:
                    updated += 1
                col.upload(href, item)
        return created, updated

    def _parse_file(self, book: Book, text: str) -> Iterator[Any]:
        import vobject  # type: ignore[import-untyped]
        from radicale import item as radicale_item

        try:
            components = list(vobject.readComponents(text, allowQP=True))
        except Exception as e:
            raise Invalid(N_("This file could not be read: {reason}"), reason=str(e)[:200]) from e
        if book.tag == CALENDAR:
            if not components or any(c.name != "VCALENDAR" for c in components):
                raise Invalid(N_("This is not an iCalendar (.ics) file."))
            for cal in components:
                try:
                    radicale_item.check_and_sanitize_items(
                        [cal], max_vevent_rrule_occurrence=MAX_RRULE_OCCURRENCES, is_collection=True, tag=CALENDAR
                    )
                except Exception as e:
                    raise Invalid(N_("This file could not be read: {reason}"), reason=str(e)[:200]) from e
                # one object per UID, as Radicale's whole-collection PUT splits a calendar: the
                # VTIMEZONEs its times use are written again by vobject from their parsed zones
                parts: list[Any] = []
                for name in ("vevent", "vtodo", "vjournal"):
                    parts.extend(getattr(cal, f"{name}_list", []))
                for _, group in itertools.groupby(sorted(parts, key=radicale_item.get_uid), radicale_item.get_uid):
                    one = vobject.iCalendar()
                    for comp in group:
                        one.add(comp)
                    one.add(vobject.base.ContentLine("PRODID", [], PRODID))
                    yield self._prepare(book, one)
        else:
            if not components or any(c.name != "VCARD" for c in components):
                raise Invalid(N_("This is not a vCard (.vcf) file."))
            for card in components:
                yield self._prepare(book, card)


def _range_filter(component: str, start: int, end: int) -> Any:
    """``<C:filter>`` for ``component`` objects meeting [start, end), as a CalDAV client sends it."""
    import datetime as dt
    import xml.etree.ElementTree as ET

    from radicale import xmlutils

    def stamp(ts: int) -> str:
        return dt.datetime.fromtimestamp(max(0, ts), dt.UTC).strftime("%Y%m%dT%H%M%SZ")

    root = ET.Element(xmlutils.make_clark("C:filter"))
    cal = ET.SubElement(root, xmlutils.make_clark("C:comp-filter"), name="VCALENDAR")
    comp = ET.SubElement(cal, xmlutils.make_clark("C:comp-filter"), name=component)
    ET.SubElement(comp, xmlutils.make_clark("C:time-range"), start=stamp(start), end=stamp(end))
    return root


def _free_href(col: Any, uid: str, suffix: str) -> str:
    base = _SAFE_HREF.sub("", uid)[:80] or "item"
    href = base + suffix
    n = 1
    while next((it for _, it in col.get_multi([href]) if it is not None), None) is not None:
        n += 1
        href = f"{base}-{n}{suffix}"
    return href


def _color(value: str) -> str:
    """A CSS color from a DAV calendar color (#RRGGBB or #RRGGBBAA), else a default."""
    value = value.strip()
    if re.fullmatch(r"#[0-9A-Fa-f]{6}([0-9A-Fa-f]{2})?", value):
        return value[:7]
    return "#1d5fd1"


def new_uid() -> str:
    import uuid

    return f"{uuid.uuid4()}@gk"


def instance_key(value: Any) -> str:
    """An occurrence's identity, to match a RECURRENCE-ID with an EXDATE or an expanded start:
    UTC for zoned times, floating and all-day values as written."""
    import datetime as dt

    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            return value.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        return value.strftime("%Y%m%dT%H%M%S")
    if isinstance(value, dt.date):
        return value.strftime("%Y%m%d")
    return str(value)
