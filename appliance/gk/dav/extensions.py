"""What GK adds in front of Radicale's WSGI application (``DAVService.application``), in the
thread that runs the request:

* **PUT preconditions** (RFC 4791 §5.3.2.1, RFC 6352 §6.3.2.1; ``gk.dav.validate``): a PUT of an
  object its calendar or address book may not hold — an empty ``VCALENDAR``, several UIDs or
  component types, a component type outside the calendar's ``supported-calendar-component-set``,
  anything but one ``VCARD`` with a UID — gets 403 with a ``DAV:error`` naming the precondition
  (``valid-calendar-object-resource``, ``supported-calendar-component``, ``valid-calendar-data``,
  ``valid-address-data``) and nothing is stored; Radicale took the first and third with 201 and
  answered the rest with a bare 400. A ``METHOD`` property is refused the same way
  (``valid-calendar-object-resource``, RFC 4791 §4.1; Radicale stored it). The same for the
  object a MOVE or COPY would write into another collection (an event into a tasks-only
  calendar, a vCard into a calendar): Radicale moved the first and refused the second with a
  bare 403. The body that passes reaches Radicale parsed (``validate.handing``): parsed once.
* **MOVE and COPY of an object** (RFC 4918 §9.8, §9.9, §10.6; RFC 4791 §5.3.2.1; RFC 6352
  §6.3.2.1; ``_move_preconditions``, under the write lock, a rename within one collection
  included): no ``Overwrite`` means ``T`` (Radicale took it as ``F``: 412), ``F`` onto an
  existing object 412, the source onto itself 403, a UID the destination collection already holds
  under another name, or an overwritten object of another UID, 403 ``no-uid-conflict`` naming it
  (Radicale: a bare 409; a PUT's conflict gets the same answer). COPY, which Radicale lacks (405), is the PUT of the source's text at
  the destination: checked, authorized (the destination's rights: another user's calendar only
  when shared read-write) and scheduled as that PUT, the destination's sync token moving; a
  scheduling object copied into calendars of an owner who has its UID is 403
  ``unique-scheduling-object-resource`` (RFC 6638 §3.2.4.1).
* **Paged ``sync-collection``** (RFC 6578 §3.6, §3.7): an answer lists at most
  ``dav.sync_page_size`` changes, or the client's ``DAV:limit``/``DAV:nresults`` when smaller. A
  truncated answer carries a ``507 Insufficient Storage`` response for the request-URI (with the
  ``DAV:number-of-matches-within-limits`` error) and the sync token of its last change
  (``gk.dav.storage.Collection.sync``): the client asks again with it and gets the next page, so a
  phone with an old token, or none, pages through a huge collection. An ``nresults`` under 1
  cannot be honoured: 403 with that precondition.
* **Scheduling for CalDAV clients** (RFC 6638), the part that fits here: the DAV header says
  ``calendar-auto-schedule`` (the server schedules: ``gk.dav.itip`` mails the organizer's REQUEST
  and CANCEL, and, for a write from a CalDAV client, an attendee's REPLY); the principal answers
  ``schedule-inbox-URL``, ``schedule-outbox-URL`` and ``calendar-user-type``; the inbox
  (``<user>/schedule-inbox/``, with ``schedule-default-calendar-URL``, their first calendar)
  holds the invitations mailed to the user as scheduling objects (``gk.dav.inbox``: PROPFIND,
  GET, DELETE, calendar-multiget and calendar-query); the outbox (``<user>/schedule-outbox/``)
  answers a ``VFREEBUSY`` ``REQUEST`` POSTed to it (§5) with each local attendee's busy times,
  read from their own calendars (any authenticated user of the box may ask, as in Apple's
  calendar server's default); an attendee outside the box gets ``3.7;Invalid calendar user``.
  An invitation from a user of the box is also written into the attendee's calendar
  (``gk.dav.itip.schedule_copy``), within the organizer's request (``gk.dav.itip.Scheduler``).
* **Schedule-Tag** (RFC 6638 §3.2.10, §8.2, §8.3; the rules in ``gk.dav.scheduletag``): the
  ``Schedule-Tag`` header on GET, HEAD and 2xx PUT, MOVE and COPY answers for a scheduling object,
  and ``CALDAV:schedule-tag`` in a PROPFIND or REPORT that names it
  (not in allprop).
  ``If-Schedule-Tag-Match`` on PUT, DELETE and MOVE is checked against the request-URI's tag
  and the write made in one hold of the write lock: 412 when it does not match or the object has
  none; an ``If-Match`` beside it is ignored (iOS Calendar sends both, with the ETag of a copy the
  server may have refreshed since: the tag is the validator that allows that). A matched PUT of the organizer's copy has the attendees' answers stored since merged
  in (the "inconsequential" changes the server MUST resolve), and its answer then carries no ETag.
  Cost on a 512 MB board: no resident memory (a 16-byte tag per scheduling object on disk), one
  indexed lookup per GET, one query per collection for the asked property, one upsert per write,
  two vobject parses (a few ms) on a client's write of an attendee's copy or a matched PUT.
* **SCHEDULE-STATUS** (RFC 6638 §3.2.9, §7.3; written by ``gk.dav.itip``'s ``Scheduler`` in the
  request's transaction): the organizer's copy says on each ATTENDEE what became of the last
  message sent to them (``1.2`` delivered to a user of the box, ``1.1`` mailed, ``3.7`` no such
  calendar user, ``5.2`` no outbound mail), the attendee's copy on its ORGANIZER what became of
  their REPLY; a client's own value on a line the server schedules is not kept, none goes into an
  iTIP message, and ``SCHEDULE-FORCE-SEND`` (§7.2) is honoured and not stored. A PUT whose object
  the server so wrote again within the request answers no ETag (RFC 4791 §5.3.4: the stored text
  is not the one sent; ``_rewritten``, one indexed lookup), the Schedule-Tag its write decided.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import io
import json
import logging
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from typing import Any

from gk.dav import inbox, scheduletag, validate
from gk.dav.storage import DAV_CLIENT, SYNC_PAGE, Collection, Storage, SyncPage

log = logging.getLogger("gk.dav")

DAV = "{DAV:}"
CALDAV_NS = "urn:ietf:params:xml:ns:caldav"
CARDDAV_NS = "urn:ietf:params:xml:ns:carddav"
# the headers of a COPY that are not those of the PUT it becomes (If-Match: the source's, checked)
_COPY_DROPPED = frozenset(
    {
        "HTTP_DESTINATION",
        "HTTP_OVERWRITE",
        "HTTP_DEPTH",
        "HTTP_IF_MATCH",
        "HTTP_IF_NONE_MATCH",
        "HTTP_IF_SCHEDULE_TAG_MATCH",
    }
)
C = "{" + CALDAV_NS + "}"
CS = "{http://calendarserver.org/ns/}"
INBOX = "schedule-inbox"
OUTBOX = "schedule-outbox"
AUTO_SCHEDULE = "calendar-auto-schedule"
VERIFIED_KEY = "gk.dav.verified_user"  # gk.dav.auth.VERIFIED
MAX_RECIPIENTS = 100
MAX_FREEBUSY_DAYS = 400
ICAL_UTC = "%Y%m%dT%H%M%SZ"

StartResponse = Callable[..., Any]
Headers = list[tuple[str, str]]


def _xml(status: str, root: ET.Element) -> tuple[str, Headers, bytes]:
    body = b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return status, [("Content-Type", "application/xml; charset=utf-8")], body


def _error(status: str, tag: str) -> tuple[str, Headers, bytes]:
    root = ET.Element(DAV + "error")
    ET.SubElement(root, tag)
    return _xml(status, root)


def _plain(status: str, text: str) -> tuple[str, Headers, bytes]:
    return status, [("Content-Type", "text/plain; charset=utf-8")], (text + "\n").encode()


def _href(parent: ET.Element, href: str) -> None:
    ET.SubElement(parent, DAV + "href").text = href


def _utc(value: Any) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _mailto(value: str) -> str:
    value = value.strip()
    if value.lower().startswith("mailto:"):
        value = value[len("mailto:") :]
    return urllib.parse.unquote(value).strip().lower()


def merge_periods(
    periods: Iterable[tuple[dt.datetime, dt.datetime, str]],
) -> list[tuple[dt.datetime, dt.datetime, str]]:
    """Overlapping or touching periods of one FBTYPE joined, sorted by start."""
    by_type: dict[str, list[tuple[dt.datetime, dt.datetime]]] = {}
    for start, end, fbtype in periods:
        by_type.setdefault(fbtype, []).append((start, end))
    merged: list[tuple[dt.datetime, dt.datetime, str]] = []
    for fbtype, ranges in by_type.items():
        ranges.sort()
        cur_start, cur_end = ranges[0]
        for start, end in ranges[1:]:
            if start <= cur_end:
                cur_end = max(cur_end, end)
            else:
                merged.append((cur_start, cur_end, fbtype))
                cur_start, cur_end = start, end
        merged.append((cur_start, cur_end, fbtype))
    return sorted(merged)


class Extensions:
    """A WSGI application around Radicale's; every other attribute is Radicale's (``_storage``,
    ``_rights``, ``configuration``)."""

    def __init__(self, app: Any, sync_page_size: int):
        self._app = app
        self.sync_page_size = sync_page_size

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)

    @property
    def storage(self) -> Storage:
        storage = self._app._storage
        assert isinstance(storage, Storage)
        return storage

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        reset = DAV_CLIENT.set(True)
        try:
            return self._call(environ, start_response)
        finally:
            DAV_CLIENT.reset(reset)

    def _call(self, environ: dict[str, Any], outer_start_response: StartResponse) -> Iterable[bytes]:
        def start_response(status: str, headers: Headers, exc_info: object = None) -> Any:
            # RFC 6638 §2: implicit scheduling is what GK does (gk.dav.itip), announced in DAV
            headers = [(k, f"{v}, {AUTO_SCHEDULE}" if k.lower() == "dav" else v) for k, v in headers]
            return (
                outer_start_response(status, headers, exc_info) if exc_info else outer_start_response(status, headers)
            )

        method = str(environ.get("REQUEST_METHOD", "")).upper()
        path = str(environ.get("PATH_INFO", "")) or "/"
        parts = [p for p in path.split("/") if p]
        user = str(environ.get(VERIFIED_KEY) or "")
        if len(parts) >= 2 and parts[1] in (INBOX, OUTBOX) and method != "OPTIONS":
            status, headers, body = self._scheduling(environ, method, parts, user)
        elif method in ("GET", "HEAD") and len(parts) == 3 and not path.endswith("/"):
            return self._tagged_read(environ, start_response, path)
        elif method in ("PUT", "DELETE", "MOVE", "COPY") and len(parts) == 3 and not path.endswith("/"):
            return self._tagged_write(environ, start_response, method, path, user)
        elif method in ("REPORT", "PROPFIND"):
            request = environ["wsgi.input"].read()
            environ["wsgi.input"] = io.BytesIO(request)
            principal = method == "PROPFIND" and bool(user) and len(parts) == 1
            tags = b"schedule-tag" in request  # CALDAV:schedule-tag asked (RFC 6638 §8.3: not in allprop)
            if method == "PROPFIND" and not principal and not tags:
                return list(self._app(environ, start_response))
            with self.storage.lock.acquire("r") if tags else contextlib.nullcontext():
                if method == "REPORT":
                    status, headers, body = self._report(environ, start_response)
                else:
                    status, headers, body = self._radicale(environ)
                if principal and status.startswith("207"):
                    body = self._edit_xml(headers, body, lambda root: self._principal_props(root, environ, user))
                if tags and status.startswith("207"):
                    body = self._edit_xml(headers, body, lambda root: self._schedule_tags(root, environ))
        else:
            return list(self._app(environ, start_response))
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        return [body]

    def _radicale(self, environ: dict[str, Any]) -> tuple[str, Headers, bytes]:
        captured: list[tuple[str, Headers]] = []

        def capture(status: str, headers: Headers, exc_info: object = None) -> Callable[[bytes], None]:
            captured[:] = [(status, list(headers))]
            return lambda data: None

        body = b"".join(self._app(environ, capture))
        status, headers = captured[0]
        return status, headers, body

    @staticmethod
    def _edit_xml(headers: Headers, body: bytes, edit: Callable[[ET.Element], bool]) -> bytes:
        """``body`` after ``edit`` (True = changed) of its XML, gzip undone and redone as Radicale
        sent it."""
        gzipped = any(k.lower() == "content-encoding" and "gzip" in v.lower() for k, v in headers)
        raw = gzip.decompress(body) if gzipped else body
        try:
            root = ET.fromstring(raw)
        except ET.ParseError:
            return body
        if not edit(root):
            return body
        out = b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8", xml_declaration=False)
        return gzip.compress(out) if gzipped else out

    # -- Schedule-Tag (RFC 6638 §3.2.10, §3.3, §8.3) -------------------------------------
    @staticmethod
    def _item_path(path: str) -> tuple[str, str] | None:
        """(collection path, href) of an object's request path, as Radicale stores it."""
        from radicale import pathutils

        sane = pathutils.strip_path(pathutils.sanitize_path(path))
        collection, _, href = sane.rpartition("/")
        return (collection, href) if collection.count("/") == 1 and href else None

    def _tag_of(self, path: str) -> str | None:
        where = self._item_path(path)
        return self.storage.schedule_tag(*where) if where is not None else None

    def _tagged_read(self, environ: dict[str, Any], start_response: StartResponse, path: str) -> Iterable[bytes]:
        """GET and HEAD of an object: Radicale's answer, with the Schedule-Tag of a scheduling
        object (read under the same lock as the object)."""
        with self.storage.lock.acquire("r"):
            status, headers, body = self._radicale(environ)
            tag = self._tag_of(path) if status.startswith("200") else None
        if tag is not None:
            headers.append(("Schedule-Tag", tag))
        start_response(status, headers)
        return [body]

    def _tagged_write(
        self, environ: dict[str, Any], start_response: StartResponse, method: str, path: str, user: str
    ) -> Iterable[bytes]:
        """PUT, DELETE, MOVE and COPY of an object: ``If-Schedule-Tag-Match`` checked against the
        request-URI's tag (§3.2.10: never the destination's) and the write made under one hold of
        the write lock, so no other write comes between; a 2xx answer to a PUT, MOVE or COPY
        carries the Schedule-Tag of the object written. The body is read before the lock is
        taken: a slow upload holds no one up."""
        match = environ.get("HTTP_IF_SCHEDULE_TAG_MATCH")
        if match is not None:
            # the Schedule-Tag decides: iOS Calendar sends If-Match with it on an attendee's PUT,
            # and the ETag of a copy the server refreshed (an other attendee's answer) no longer
            # matches though the write is one the tag allows; refused on it, the tag would be
            # pointless (EGroupware saw the same and notes it)
            environ.pop("HTTP_IF_MATCH", None)
        parsed = None
        if method == "PUT":
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = -1
            limit = int(self._app.configuration.get("server", "max_content_length"))
            if not 0 <= length <= limit:
                return list(self._app(environ, start_response))  # Radicale's own 400 or 413
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
            refused, parsed = self._refused_put(user, path, body)
            if refused is not None:
                return self._answer(start_response, refused)
        checked = None
        if method in ("MOVE", "COPY"):
            refused, checked, parsed = self._refused_move(environ, user, path, locked=False)
            if refused is not None:
                return self._answer(start_response, refused)
        state = scheduletag.Merge()
        with self.storage.lock.acquire("w"):
            if checked is not None and self._object(path) != checked:
                # written since it was checked (outside the lock): checked again, rarely, under it
                refused, _, parsed = self._refused_move(environ, user, path, locked=True)
                if refused is not None:
                    return self._answer(start_response, refused)
            merging = None
            if match is not None and self._may_write(user, path):
                current = self._tag_of(path)
                if current is None or current != match.strip():
                    return self._answer(
                        start_response, _plain("412 Precondition Failed", "the Schedule-Tag does not match")
                    )
                if method == "PUT":
                    merging = scheduletag.MERGE.set(state)
            copy: dict[str, Any] | None = None
            if method in ("MOVE", "COPY"):
                refused, copy = self._move_preconditions(environ, method, user, path)
                if refused is not None:
                    return self._answer(start_response, refused)
            uid = parsed.uid if parsed is not None else ""
            try:
                with validate.handing(parsed):
                    status, headers, body = self._radicale(copy if copy is not None else environ)
            finally:
                if merging is not None:
                    scheduletag.MERGE.reset(merging)
            if status.startswith("409") and b"no-uid-conflict" in body and uid:
                # Radicale's bare 409 to a PUT (or a COPY's) of a UID held under another name, or
                # over an object of another UID: 403 naming the holder, as a MOVE or COPY gets
                # (RFC 4791 §5.3.2.1 and RFC 6352 §6.3.2.1: "SHOULD report the URL")
                conflict = self._put_conflict(environ, path if copy is None else self._destination(environ), uid)
                if conflict is not None:
                    return self._answer(start_response, conflict)
            written = path if method != "COPY" else self._destination(environ)
            if state.merged or (
                method in ("PUT", "COPY") and status.startswith("2") and self._rewritten(written, headers)
            ):
                # the stored text is not the one sent (merged answers, or the server's SCHEDULE-STATUS
                # written by gk.dav.itip): no ETag (RFC 4791 §5.3.4), the client reads it again
                headers = [(k, v) for k, v in headers if k.lower() != "etag"]
            tag = None
            if status.startswith("2") and method != "DELETE":
                target = path
                if method != "PUT":
                    target = self._destination(environ)
                tag = self._tag_of(target)
        if tag is not None:
            headers.append(("Schedule-Tag", tag))
        start_response(status, headers)
        return [body]

    @staticmethod
    def _answer(start_response: StartResponse, answer: tuple[str, Headers, bytes]) -> list[bytes]:
        status, headers, body = answer
        start_response(status, headers + [("Content-Length", str(len(body)))])
        return [body]

    def _destination(self, environ: dict[str, Any]) -> str:
        """The request path of a MOVE's or COPY's ``Destination`` (the base path taken off)."""
        destination = urllib.parse.urlsplit(str(environ.get("HTTP_DESTINATION", ""))).path
        base = self._base(environ)
        target = urllib.parse.unquote(destination)
        return target[len(base) :] if base and target.startswith(base + "/") else target

    def _object(self, path: str) -> tuple[str, str] | None:
        """(etag, text) of the object at request path ``path``, None when there is none; the
        caller holds the lock."""
        where = self._item_path(path)
        if where is None:
            return None
        row = self.storage.db.one(
            "SELECT i.etag, i.text FROM items i JOIN collections c ON c.id = i.collection"
            " WHERE c.path = ? AND i.href = ?",
            where,
        )
        return (str(row[0]), str(row[1])) if row is not None else None

    def _may(self, user: str, path: str, what: str) -> bool:
        """Has ``user`` right ``what`` ("r" or "w") on the collection of object ``path``?"""
        where = self._item_path(path)
        if not user or where is None:
            return False
        return what in self._app._rights.authorization(user, set(), "/" + where[0] + "/")

    def _refused_move(
        self, environ: dict[str, Any], user: str, path: str, locked: bool
    ) -> tuple[tuple[str, Headers, bytes] | None, tuple[str, str] | None, validate.Parsed | None]:
        """The PUT preconditions applied to the object a MOVE or COPY would write into another
        collection (RFC 4791 §5.3.2.1 names COPY and MOVE; RFC 6352 §6.3.2.1 the same): an event
        into a tasks-only calendar, a vCard into a calendar, a stored object with a ``METHOD``.
        Returns (the 403 answer or None, the (etag, text) checked, None when nothing was, its
        parse): the check is made outside the write lock, and again under it when the object
        changed meanwhile (``locked``). Only for a user who may read (COPY) or write (MOVE) the
        source and write the destination (anyone else gets a refusal that tells nothing of the
        object); a move within one collection (a rename) is not checked: the object is already
        held there (its UID and name are, under the lock: ``_move_preconditions``). Radicale itself
        refuses a move between a calendar and an address book with a bare 403."""
        target = self._destination(environ)
        source, dest = self._item_path(path), self._item_path(target)
        if source is None or dest is None or source[0] == dest[0] or self._elsewhere(environ) is not None:
            return None, None, None
        copying = str(environ.get("REQUEST_METHOD", "")).upper() == "COPY"
        if not self._may(user, path, "r" if copying else "w") or not self._may(user, target, "w"):
            return None, None, None
        with self.storage.lock.acquire("r") if not locked else contextlib.nullcontext():
            found = self._object(path)
            row = self.storage.db.one("SELECT tag, meta FROM collections WHERE path = ?", (dest[0],))
        if found is None or row is None:
            return None, None, None  # 404 or 409, below
        refused, parsed = self._precondition(
            f"{environ.get('REQUEST_METHOD')} {path} -> {target}", row, found[1].encode()
        )
        return refused, found, parsed if copying else None

    def _move_preconditions(
        self, environ: dict[str, Any], method: str, user: str, path: str
    ) -> tuple[tuple[str, Headers, bytes] | None, dict[str, Any] | None]:
        """What RFC 4918 §9.8/§9.9 and RFC 4791 §5.3.2.1 / RFC 6352 §6.3.2.1 ask of a COPY or MOVE of
        an object, checked under the write lock, within one collection too (a rename):

        * ``Overwrite`` absent means ``T`` (RFC 4918 §10.6; Radicale took it as ``F``); ``F`` onto
          an existing object: 412; another value: 400; the source onto itself: 403;
        * ``CALDAV:no-uid-conflict`` / ``CARDDAV:no-uid-conflict`` (403, with the ``DAV:href`` of
          the object holding the UID): the destination collection holds the UID under another name
          (a COPY within one collection always does), or the object overwritten has another UID
          (Radicale answered a bare 409 to both);
        * a COPY of a scheduling object into the calendars of an owner who already has its UID:
          ``CALDAV:unique-scheduling-object-resource`` (RFC 6638 §3.2.4.1, 403).

        Returns (an answer, None) to send, or (None, the environ to run): a MOVE goes to Radicale
        (``Overwrite`` made explicit); a COPY — which Radicale does not have (405) — becomes the PUT
        of the source's text at the destination, so it is checked and authorized as that PUT (the
        destination's rights, ``gk.dav.validate``), moves the destination's sync token, and is
        scheduled as a PUT is. Who may not read (COPY) or write (MOVE) the source or write the
        destination: a MOVE gets Radicale's answer, a COPY a bare 403, before anything is looked
        up."""
        copying = method == "COPY"
        elsewhere = self._elsewhere(environ)
        if elsewhere is not None:
            return (elsewhere, None) if copying else (None, None)  # Radicale's own answer to a MOVE
        target = self._destination(environ)
        source, dest = self._item_path(path), self._item_path(target)
        if source is None or dest is None:
            return (_plain("403 Forbidden", "the Destination is not a DAV object"), None) if copying else (None, None)
        if not self._may(user, path, "r" if copying else "w") or not self._may(user, target, "w"):
            return (_plain("403 Forbidden", "access to the resource is forbidden"), None) if copying else (None, None)
        overwrite = str(environ.get("HTTP_OVERWRITE", "T")).strip().upper()
        if overwrite not in ("T", "F"):
            return _plain("400 Bad Request", "Overwrite is T or F"), None
        db = self.storage.db
        src = db.one(
            "SELECT i.uid, i.text, i.etag, c.tag FROM items i JOIN collections c ON c.id = i.collection"
            " WHERE c.path = ? AND i.href = ?",
            source,
        )
        if src is None:
            return (_plain("404 Not Found", "no such object"), None) if copying else (None, None)
        collection = db.one("SELECT id, tag FROM collections WHERE path = ?", (dest[0],))
        if collection is None:
            return (
                (_plain("409 Conflict", "the Destination's collection does not exist"), None)
                if copying
                else (
                    None,
                    None,
                )
            )
        if source == dest:
            return _plain("403 Forbidden", "the source and the destination are the same"), None
        if copying:
            etag = environ.get("HTTP_IF_MATCH")
            if etag is not None and etag.strip() not in ("*", str(src["etag"])):
                return _plain("412 Precondition Failed", "the source's ETag does not match"), None
        tag = str(collection["tag"] or "")
        if tag != str(src["tag"] or "") or tag not in ("VCALENDAR", "VADDRESSBOOK"):
            # a calendar object into an address book (or the reverse) was refused above with its
            # precondition when the user may write both; anything else is Radicale's to answer
            return (
                (_plain("403 Forbidden", "the Destination cannot hold this object"), None)
                if copying
                else (
                    None,
                    None,
                )
            )
        existing = db.one("SELECT uid FROM items WHERE collection = ? AND href = ?", (collection["id"], dest[1]))
        if existing is not None and overwrite == "F":
            return _plain("412 Precondition Failed", "the Destination exists and Overwrite is F"), None
        uid = str(src["uid"] or "")
        ns = CALDAV_NS if tag == "VCALENDAR" else CARDDAV_NS
        if existing is not None and str(existing["uid"] or "") != uid:
            return self._uid_conflict(environ, ns, "no-uid-conflict", dest[0], dest[1]), None
        holder = db.one(
            "SELECT href FROM items WHERE collection = ? AND uid = ? AND href != ? ORDER BY href LIMIT 1",
            (collection["id"], uid, dest[1]),
        )
        if holder is not None and not (not copying and source[0] == dest[0] and holder["href"] == source[1]):
            return self._uid_conflict(environ, ns, "no-uid-conflict", dest[0], str(holder["href"])), None
        text = str(src["text"])
        if copying and tag == "VCALENDAR" and scheduletag.organizer(text) is not None:
            owner = dest[0].partition("/")[0]
            held = db.one(
                "SELECT c.path, i.href FROM items i JOIN collections c ON c.id = i.collection"
                " WHERE i.uid = ? AND substr(c.path, 1, length(?) + 1) = ? || '/'"
                " AND NOT (c.path = ? AND i.href = ?) ORDER BY c.path, i.href LIMIT 1",
                (uid, owner, owner, dest[0], dest[1]),
            )
            if held is not None:
                return self._uid_conflict(
                    environ, CALDAV_NS, "unique-scheduling-object-resource", str(held[0]), str(held[1])
                ), None
        if not copying:
            environ["HTTP_OVERWRITE"] = overwrite
            return None, None
        data = text.encode("utf-8")
        put = {k: v for k, v in environ.items() if k not in _COPY_DROPPED}
        put.update(
            {
                "REQUEST_METHOD": "PUT",
                "PATH_INFO": target,
                "CONTENT_LENGTH": str(len(data)),
                "CONTENT_TYPE": ("text/calendar" if tag == "VCALENDAR" else "text/vcard") + "; charset=utf-8",
                "wsgi.input": io.BytesIO(data),
            }
        )
        return None, put

    def _elsewhere(self, environ: dict[str, Any]) -> tuple[str, Headers, bytes] | None:
        """The answer to a Destination that is none of this server's DAV objects: missing (400),
        on another server (502, RFC 4918 §9.8.5), outside the DAV base path (403); None for one
        of ours."""
        raw = str(environ.get("HTTP_DESTINATION", "")).strip()
        if not raw:
            return _plain("400 Bad Request", "no Destination")
        split = urllib.parse.urlsplit(raw)
        if split.netloc:
            from radicale import utils as radicale_utils

            theirs = (
                split.netloc if split.port is not None else f"{split.netloc}:{443 if split.scheme == 'https' else 80}"
            )
            if theirs != radicale_utils.get_server_netloc(environ, force_port=True):
                return _plain("502 Bad Gateway", "the Destination is on another server")
        base = self._base(environ)
        if base and not urllib.parse.unquote(split.path).startswith(base + "/"):
            return _plain("403 Forbidden", "the Destination is not a DAV object")
        return None

    def _put_conflict(self, environ: dict[str, Any], path: str, uid: str) -> tuple[str, Headers, bytes] | None:
        """403 ``no-uid-conflict`` naming the object of collection of ``path`` that holds ``uid``
        (or the object at ``path``, of another UID); None when there is neither."""
        where = self._item_path(path)
        if where is None:
            return None
        row = self.storage.db.one(
            "SELECT c.tag, i.href FROM items i JOIN collections c ON c.id = i.collection"
            " WHERE c.path = ? AND (i.uid = ? OR i.href = ?) ORDER BY i.href = ? DESC, i.href LIMIT 1",
            (where[0], uid, where[1], where[1]),
        )
        if row is None:
            return None
        ns = CARDDAV_NS if row["tag"] == "VADDRESSBOOK" else CALDAV_NS
        return self._uid_conflict(environ, ns, "no-uid-conflict", where[0], str(row["href"]))

    def _uid_conflict(
        self, environ: dict[str, Any], ns: str, name: str, collection: str, href: str
    ) -> tuple[str, Headers, bytes]:
        """403 with ``name`` (in ``ns``) naming, in a ``DAV:href``, the object that holds the UID."""
        root = ET.Element(DAV + "error")
        element = ET.SubElement(root, "{" + ns + "}" + name)
        _href(element, urllib.parse.quote(f"{self._base(environ)}/{collection}/{href}"))
        log.info("dav: %s of %s refused (%s)", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"), name)
        return _xml("403 Forbidden", root)

    def _refused_put(
        self, user: str, path: str, body: bytes
    ) -> tuple[tuple[str, Headers, bytes] | None, validate.Parsed | None]:
        """(403 with the failed precondition, None) for a PUT of an object its collection may not
        hold (``gk.dav.validate``: RFC 4791 §5.3.2.1, RFC 6352 §6.3.2.1), else (None, the body's
        parse, handed to Radicale: ``validate.handing``). Checked before the write lock (the parse
        holds no one up) and only for a user who may write there: anyone else gets Radicale's 403,
        which tells nothing of the collection."""
        where = self._item_path(path)
        if where is None or not self._may_write(user, path):
            return None, None
        with self.storage.lock.acquire("r"):
            row = self.storage.db.one("SELECT tag, meta FROM collections WHERE path = ?", (where[0],))
        return self._precondition(f"PUT {path}", row, body) if row is not None else (None, None)

    def _precondition(
        self, what: str, row: Any, body: bytes
    ) -> tuple[tuple[str, Headers, bytes] | None, validate.Parsed | None]:
        """(403 with the failed precondition, None) when ``body`` may not be one object of the
        collection of ``row`` (its ``tag`` and ``meta``), (None, its parse) when it may, (None,
        None) when the collection is neither a calendar nor an address book."""
        if row["tag"] not in ("VCALENDAR", "VADDRESSBOOK"):
            return None, None
        try:
            meta = json.loads(row["meta"] or "{}")
        except ValueError:
            meta = {}
        supported = str(meta.get("C:supported-calendar-component-set", "") or "")
        components = frozenset(c.strip().upper() for c in supported.split(",") if c.strip())
        try:
            most = int(self._app.configuration.get("server", "max_vevent_rrule_occurrence"))
            parsed = validate.check_put(body, str(row["tag"]), components, most)
        except validate.Refused as e:
            log.info("dav: %s refused (%s): %s", what, e.name, e)
            root = ET.Element(DAV + "error")
            ET.SubElement(root, "{" + e.ns + "}" + e.name)
            return _xml("403 Forbidden", root), None
        return None, parsed

    def _rewritten(self, path: str, headers: Headers) -> bool:
        """True when the object a PUT stored was written again within its request (its ETag is no
        longer the one Radicale answered, ``headers``): one indexed lookup, under the write lock."""
        etag = next((v for k, v in headers if k.lower() == "etag"), None)
        where = self._item_path(path)
        if etag is None or where is None:
            return False
        row = self.storage.db.one(
            "SELECT i.etag FROM items i JOIN collections c ON c.id = i.collection WHERE c.path = ? AND i.href = ?",
            where,
        )
        return row is not None and str(row[0]) != etag

    def _may_write(self, user: str, path: str) -> bool:
        """May ``user`` write the collection of object ``path``? (Who may not gets Radicale's 401
        or 403, never a 412 telling what is there.)"""
        where = self._item_path(path)
        if not user or where is None:
            return False
        return "w" in self._app._rights.authorization(user, set(), "/" + where[0] + "/")

    def _schedule_tags(self, root: ET.Element, environ: dict[str, Any]) -> bool:
        """CALDAV:schedule-tag (a live property) moved to the 200 propstat of each scheduling
        object of a PROPFIND or REPORT answer that asked for it."""
        base = self._base(environ)
        changed = False
        tags: dict[str, dict[str, str]] = {}  # collection path -> href -> tag: one query per collection
        for response in root.iter(DAV + "response"):
            href = urllib.parse.unquote(response.findtext(DAV + "href") or "")
            if base and href.startswith(base + "/"):
                href = href[len(base) :]
            where = self._item_path(href) if not href.endswith("/") else None
            if where is None:
                continue
            if where[0] not in tags:
                tags[where[0]] = self.storage.schedule_tags(where[0])
            tag = tags[where[0]].get(where[1])
            if tag is not None:
                changed |= _answer_missing(response, {C + "schedule-tag": _filled(tag)})
        return changed

    # -- sync-collection paging ----------------------------------------------------------
    def _report(self, environ: dict[str, Any], start_response: StartResponse) -> tuple[str, Headers, bytes]:
        request = environ["wsgi.input"].getvalue()
        if b"sync-collection" not in request:
            return self._radicale(environ)
        try:
            root = ET.fromstring(request)
        except ET.ParseError:
            return self._radicale(environ)  # Radicale's own 400
        if root.tag != DAV + "sync-collection":
            return self._radicale(environ)
        limit = self.sync_page_size
        nresults = root.find(f"{DAV}limit/{DAV}nresults")
        if nresults is not None:
            try:
                asked = int((nresults.text or "").strip())
            except ValueError:
                asked = 0
            if asked < 1:
                return _error("403 Forbidden", DAV + "number-of-matches-within-limits")
            limit = min(limit, asked) if limit > 0 else asked
        page = SyncPage(limit)
        reset = SYNC_PAGE.set(page)
        try:
            status, headers, body = self._radicale(environ)
        finally:
            SYNC_PAGE.reset(reset)
        if page.truncated and status.startswith("207"):
            uri = urllib.parse.quote(str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", "")))
            body = self._edit_xml(headers, body, lambda root: self._truncated(root, uri))
        return status, headers, body

    @staticmethod
    def _truncated(root: ET.Element, uri: str) -> bool:
        response = ET.Element(DAV + "response")
        _href(response, uri)
        ET.SubElement(response, DAV + "status").text = "HTTP/1.1 507 Insufficient Storage"
        ET.SubElement(ET.SubElement(response, DAV + "error"), DAV + "number-of-matches-within-limits")
        token = root.find(DAV + "sync-token")
        # the responses, then the 507 one, then the token (RFC 6578's order; Radicale puts it first)
        if token is not None:
            root.remove(token)
        root.append(response)
        if token is not None:
            root.append(token)
        return True

    # -- scheduling: principal properties ------------------------------------------------
    def _base(self, environ: dict[str, Any]) -> str:
        return str(environ.get("SCRIPT_NAME", "")).rstrip("/")

    def _principal_props(self, root: ET.Element, environ: dict[str, Any], user: str) -> bool:
        base = self._base(environ)
        home = f"{base}/{urllib.parse.quote(user)}/"
        values: dict[str, Callable[[ET.Element], None]] = {
            C + "schedule-inbox-URL": lambda e: _href(e, f"{home}{INBOX}/"),
            C + "schedule-outbox-URL": lambda e: _href(e, f"{home}{OUTBOX}/"),
        }

        def user_type(e: ET.Element) -> None:
            e.text = "INDIVIDUAL"

        values[C + "calendar-user-type"] = user_type
        changed = False
        for response in root.iter(DAV + "response"):
            href = urllib.parse.unquote(response.findtext(DAV + "href") or "")
            if href.rstrip("/").rpartition("/")[2].lower() != user.lower():
                continue
            changed |= _answer_missing(response, values)
        return changed

    # -- scheduling: inbox and outbox ----------------------------------------------------
    def _scheduling(
        self, environ: dict[str, Any], method: str, parts: list[str], user: str
    ) -> tuple[str, Headers, bytes]:
        if not user:
            return (
                "401 Unauthorized",
                [("WWW-Authenticate", 'Basic realm="GK calendars and contacts"'), ("Content-Type", "text/plain")],
                b"",
            )
        if parts[0].lower() != user.lower():
            return _plain("403 Forbidden", "another user's scheduling collection")
        owner, box = user.lower(), parts[1]
        if len(parts) > 3 or (len(parts) == 3 and box != INBOX):
            return _plain("404 Not Found", "no such scheduling message")
        if len(parts) == 3:  # a message of the inbox
            message = inbox.get(self.storage.db, owner, parts[2])
            if message is None:
                return _plain("404 Not Found", "no such scheduling message")
            if method in ("GET", "HEAD"):
                body = message.text.encode() if method == "GET" else b""
                return "200 OK", [("Content-Type", "text/calendar; charset=utf-8"), ("ETag", message.etag)], body
            if method == "DELETE":
                inbox.delete(self.storage.db, self.storage.lock, owner, parts[2])
                return "204 No Content", [], b""
            if method == "PROPFIND":
                return self._box_propfind(environ, user, box, only=message)
            return _plain("405 Method Not Allowed", f"{method} is not allowed on a scheduling message")
        if method == "PROPFIND":
            return self._box_propfind(environ, user, box)
        if method == "REPORT" and box == INBOX:
            return self._inbox_report(environ, user)
        if method == "REPORT":
            return _error("403 Forbidden", DAV + "supported-report")
        if method == "POST" and box == OUTBOX:
            return self._freebusy(environ, user)
        return _plain("405 Method Not Allowed", f"{method} is not allowed on a scheduling collection")

    def _message_response(
        self, parent: ET.Element, home: str, message: inbox.Message, asked: list[str] | None, data: bool = False
    ) -> None:
        values: dict[str, Callable[[ET.Element], None]] = {
            DAV + "getetag": _filled(message.etag),
            DAV + "getcontenttype": _filled("text/calendar; charset=utf-8; component=VEVENT"),
            DAV + "getcontentlength": _filled(str(len(message.text.encode()))),
            DAV + "resourcetype": lambda e: None,
        }
        if data:
            values[C + "calendar-data"] = _filled(message.text)
        _prop_response(parent, f"{home}{INBOX}/{message.href}", asked, values)

    def _inbox_report(self, environ: dict[str, Any], user: str) -> tuple[str, Headers, bytes]:
        """calendar-multiget (the hrefs asked) and calendar-query (every message) on the inbox."""
        home = f"{self._base(environ)}/{urllib.parse.quote(user)}/"
        try:
            root = ET.fromstring(environ["wsgi.input"].read())
        except ET.ParseError:
            return _plain("400 Bad Request", "malformed XML")
        if root.tag not in (C + "calendar-multiget", C + "calendar-query"):
            return _error("403 Forbidden", DAV + "supported-report")
        prop = root.find(DAV + "prop")
        asked = [child.tag for child in prop] if prop is not None else [DAV + "getetag"]
        messages = inbox.messages(self.storage.db, user.lower())
        multistatus = ET.Element(DAV + "multistatus")
        if root.tag == C + "calendar-multiget":
            by_href = {m.href: m for m in messages}
            for element in root.findall(DAV + "href"):
                href = urllib.parse.unquote(element.text or "").rstrip("/").rpartition("/")[2]
                message = by_href.get(href)
                if message is None:
                    missing = ET.SubElement(multistatus, DAV + "response")
                    _href(missing, element.text or "")
                    ET.SubElement(missing, DAV + "status").text = "HTTP/1.1 404 Not Found"
                    continue
                self._message_response(multistatus, home, message, asked, data=True)
        else:
            for message in messages:
                self._message_response(multistatus, home, message, asked, data=True)
        return _xml("207 Multi-Status", multistatus)

    def _box_propfind(
        self, environ: dict[str, Any], user: str, box: str, only: inbox.Message | None = None
    ) -> tuple[str, Headers, bytes]:
        base = self._base(environ)
        home = f"{base}/{urllib.parse.quote(user)}/"
        request = environ["wsgi.input"].read()
        asked: list[str] | None = None  # None: allprop
        if request.strip():
            try:
                root = ET.fromstring(request)
            except ET.ParseError:
                return _plain("400 Bad Request", "malformed XML")
            prop = root.find(DAV + "prop")
            if prop is not None:
                asked = [child.tag for child in prop]
        multistatus = ET.Element(DAV + "multistatus")
        if only is not None:
            self._message_response(multistatus, home, only, asked)
            return _xml("207 Multi-Status", multistatus)
        values: dict[str, Callable[[ET.Element], None]] = {}

        def resourcetype(e: ET.Element) -> None:
            ET.SubElement(e, DAV + "collection")
            ET.SubElement(e, C + ("schedule-inbox" if box == INBOX else "schedule-outbox"))

        def privileges(e: ET.Element) -> None:
            names = (
                [
                    DAV + "read",
                    DAV + "unbind",
                    C + "schedule-deliver",
                    C + "schedule-deliver-invite",
                    C + "schedule-deliver-reply",
                ]
                if box == INBOX
                else [DAV + "read", C + "schedule-send", C + "schedule-send-freebusy"]
            )
            for name in names:
                ET.SubElement(ET.SubElement(e, DAV + "privilege"), name)

        values[DAV + "resourcetype"] = resourcetype
        values[DAV + "current-user-privilege-set"] = privileges
        values[DAV + "displayname"] = _filled("Inbox" if box == INBOX else "Outbox")
        values[DAV + "owner"] = lambda e: _href(e, home)
        values[DAV + "current-user-principal"] = lambda e: _href(e, home)
        messages: list[inbox.Message] = []
        if box == INBOX:
            calendar = self._default_calendar(user)
            if calendar:
                values[C + "schedule-default-calendar-URL"] = lambda e: _href(
                    e, f"{base}/{urllib.parse.quote(calendar)}/"
                )
            version = inbox.version(self.storage.db, user.lower())
            values[CS + "getctag"] = _filled(f'"gk-inbox-{version}"')
            values[DAV + "getetag"] = _filled(f'"gk-inbox-{version}"')

            def components(e: ET.Element) -> None:
                for name in ("VEVENT", "VTODO"):
                    ET.SubElement(e, C + "comp", {"name": name})

            values[C + "supported-calendar-component-set"] = components

            def reports(e: ET.Element) -> None:
                for name in (C + "calendar-multiget", C + "calendar-query"):
                    ET.SubElement(ET.SubElement(ET.SubElement(e, DAV + "supported-report"), DAV + "report"), name)

            values[DAV + "supported-report-set"] = reports
            if str(environ.get("HTTP_DEPTH", "0")) != "0":
                messages = inbox.messages(self.storage.db, user.lower())
        _prop_response(multistatus, f"{home}{box}/", asked, values)
        for message in messages:
            self._message_response(multistatus, home, message, asked)
        return _xml("207 Multi-Status", multistatus)

    def _default_calendar(self, user: str) -> str:
        return inbox.default_calendar(self.storage.db, user)

    # -- scheduling: free-busy -----------------------------------------------------------
    def _freebusy(self, environ: dict[str, Any], user: str) -> tuple[str, Headers, bytes]:
        import vobject  # type: ignore[import-untyped]

        if "text/calendar" not in str(environ.get("CONTENT_TYPE", "")).lower():
            return _error("415 Unsupported Media Type", C + "supported-calendar-data")
        raw = environ["wsgi.input"].read()
        try:
            calendars = list(vobject.readComponents(raw.decode("utf-8")))
            (calendar,) = calendars
            method = str(calendar.method.value).upper() if "method" in calendar.contents else ""
            requests = calendar.contents.get("vfreebusy", [])
            if len(requests) != 1 or method != "REQUEST":
                return _error("403 Forbidden", C + "valid-scheduling-message")
            (request,) = requests
            start = _utc(request.dtstart.value)
            end = _utc(request.dtend.value)
            organizer = _mailto(str(request.organizer.value))
            attendees = [str(a.value) for a in request.contents.get("attendee", [])]
            uid = str(request.uid.value) if "uid" in request.contents else ""
        except Exception:
            # vobject raises anything from ParseError to AttributeError on a bad calendar
            return _error("400 Bad Request", C + "valid-calendar-data")
        if method != "REQUEST" or any(k in calendar.contents for k in ("vevent", "vtodo", "vjournal")):
            return _error("403 Forbidden", C + "valid-scheduling-message")
        if organizer != user.lower():
            return _error("403 Forbidden", C + "organizer-allowed")
        if not attendees:
            return _error("403 Forbidden", C + "recipient-specified")
        if len(attendees) > MAX_RECIPIENTS or not start < end or (end - start).days > MAX_FREEBUSY_DAYS:
            return _error("403 Forbidden", C + "valid-scheduling-message")
        max_occurrence = int(self._app.configuration.get("reporting", "max_freebusy_occurrence"))
        root = ET.Element(C + "schedule-response")
        for attendee in attendees:
            address = _mailto(attendee)
            response = ET.SubElement(root, C + "response")
            _href(ET.SubElement(response, C + "recipient"), attendee)
            principal = self._principal(address)
            if principal is None:
                ET.SubElement(response, C + "request-status").text = "3.7;Invalid calendar user"
                continue
            try:
                periods = self._busy(principal, start, end, max_occurrence)
            except ValueError as e:  # too many occurrences (max_freebusy_occurrence)
                log.warning("dav: free-busy of %s: %s", principal, e)
                ET.SubElement(response, C + "request-status").text = "5.3;Too many occurrences"
                continue
            ET.SubElement(response, C + "request-status").text = "2.0;Success"
            ET.SubElement(response, C + "calendar-data").text = _reply(uid, start, end, user, attendee, periods)
        return _xml("200 OK", root)

    def _principal(self, address: str) -> str | None:
        if "/" in address or not address:
            return None
        row = self.storage.db.one(
            "SELECT path FROM collections WHERE parent = '' AND path = ? COLLATE NOCASE", (address,)
        )
        return str(row["path"]) if row is not None else None

    def _busy(
        self, principal: str, start: dt.datetime, end: dt.datetime, max_occurrence: int
    ) -> list[tuple[dt.datetime, dt.datetime, str]]:
        from radicale.app.report import freebusy_periods

        storage = self.storage
        periods: list[tuple[dt.datetime, dt.datetime, str]] = []
        with storage.acquire_lock("r"):
            rows = storage.db.query(
                "SELECT * FROM collections WHERE parent = ? AND tag = 'VCALENDAR' ORDER BY path", (principal,)
            )
            items: list[Any] = []
            for row in rows:
                collection = Collection(storage, row["path"], row)
                items.extend(
                    collection._item(r)
                    for r in storage.db.query(
                        "SELECT href, uid, etag, name, component, start, end, modified, text FROM items "
                        "WHERE collection = ? AND component = 'VEVENT' AND start < ? AND end > ?",
                        (row["id"], int(end.timestamp()), int(start.timestamp())),
                    )
                )
        for item in items:
            try:
                periods.extend(freebusy_periods(item, start, end, max_occurrence))
            except ValueError:
                raise
            except Exception:
                log.warning("dav: free-busy skipped an unreadable event %s", item.href)
        return merge_periods(periods)


def _reply(
    uid: str,
    start: dt.datetime,
    end: dt.datetime,
    organizer: str,
    attendee: str,
    periods: list[tuple[dt.datetime, dt.datetime, str]],
) -> str:
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//GK//CalDAV scheduling//EN",
        "METHOD:REPLY",
        "BEGIN:VFREEBUSY",
        f"UID:{_escape(uid or str(uuid.uuid4()))}",
        f"DTSTAMP:{dt.datetime.now(dt.UTC).strftime(ICAL_UTC)}",
        f"DTSTART:{start.strftime(ICAL_UTC)}",
        f"DTEND:{end.strftime(ICAL_UTC)}",
        f"ORGANIZER:mailto:{organizer}",
        f"ATTENDEE:{_escape(attendee)}",
    ]
    for p_start, p_end, fbtype in periods:
        lines.append(f"FREEBUSY;FBTYPE={fbtype}:{p_start.strftime(ICAL_UTC)}/{p_end.strftime(ICAL_UTC)}")
    lines += ["END:VFREEBUSY", "END:VCALENDAR", ""]
    return "\r\n".join(lines)


def _escape(value: str) -> str:
    """One content line's value without the line breaks that would end it."""
    return value.replace("\r", "").replace("\n", "")


def _filled(value: str) -> Callable[[ET.Element], None]:
    def fill(e: ET.Element) -> None:
        e.text = value

    return fill


def _prop_response(
    parent: ET.Element, href: str, asked: list[str] | None, values: dict[str, Callable[[ET.Element], None]]
) -> None:
    """One DAV:response of ``parent``: the asked properties (all of ``values`` for allprop) in a
    200 propstat when known, in a 404 one when not."""
    response = ET.SubElement(parent, DAV + "response")
    _href(response, href)
    found = ET.Element(DAV + "prop")
    missing = ET.Element(DAV + "prop")
    for tag in asked if asked is not None else list(values):
        element = ET.SubElement(found if tag in values else missing, tag)
        if tag in values:
            values[tag](element)
    for prop, status in ((found, "200 OK"), (missing, "404 Not Found")):
        if len(prop):
            propstat = ET.SubElement(response, DAV + "propstat")
            propstat.append(prop)
            ET.SubElement(propstat, DAV + "status").text = f"HTTP/1.1 {status}"


def _answer_missing(response: ET.Element, values: dict[str, Callable[[ET.Element], None]]) -> bool:
    """Move the properties of ``values`` a PROPFIND asked for from the response's 404 propstat to
    its 200 one, filled in."""
    found_prop: ET.Element | None = None
    for propstat in response.findall(DAV + "propstat"):
        if " 200 " in (propstat.findtext(DAV + "status") or ""):
            found_prop = propstat.find(DAV + "prop")
    moved = False
    for propstat in list(response.findall(DAV + "propstat")):
        prop = propstat.find(DAV + "prop")
        if prop is None or " 404 " not in (propstat.findtext(DAV + "status") or ""):
            continue
        for element in list(prop):
            if element.tag in values:
                prop.remove(element)
                if found_prop is None:
                    ok = ET.Element(DAV + "propstat")
                    found_prop = ET.SubElement(ok, DAV + "prop")
                    ET.SubElement(ok, DAV + "status").text = "HTTP/1.1 200 OK"
                    response.insert(1, ok)
                values[element.tag](element)
                found_prop.append(element)
                moved = True
        if not len(prop):
            response.remove(propstat)
    return moved
