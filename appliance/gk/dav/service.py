"""``gk.dav.service``: Radicale under ``/dav/`` on the web listeners, built on the first DAV request.

``start(ctx)`` costs nothing but this module: ``gk.features`` declares ``wsgi`` mounted at
``/dav/`` (CSRF-exempt: DAV clients authenticate every request with HTTP Basic over HTTPS and
send no CSRF token). The first request to ``/dav/`` imports Radicale (~18 MB of RSS, measured by
``bench/dav.py``) and builds its ``Application`` from a configuration made here in code: no
config file is read, hooks and Radicale's sharing/web UI are off, and storage, auth and rights
are GK's plugins (``gk.dav.storage``, ``gk.dav.auth``, ``gk.dav.rights``).

Before Radicale sees a request, ``DAVService.wsgi`` bounds it: bodies over ``dav.max_request_size``
get 413, a PUT of one resource over ``dav.max_resource_size`` gets 403 with the CalDAV/CardDAV
``max-resource-size`` precondition, chunked bodies are read up to the limit, and XML bodies
carrying a DTD (``<!DOCTYPE``/``<!ENTITY``: entity bombs, external entities) or nested deeper
than ``MAX_XML_DEPTH`` elements get 400 — no DAV client sends one. Radicale itself parses XML with defusedxml, which would refuse them too but
with a 500.

Every user gets a calendar, a task list and an address book (``gk.dav.defaults``, plain SQL, no
Radicale import): at start for every account (an upgraded box's existing users), when an
account is created while ``gk serve`` runs (``AccountStore.on_user_added``), and on a first DAV
login in between (Radicale's ``storage.predefined_collections``, the same three). Shared
calendars (the wizard's "Family" calendar): ``create_shared`` and ``shares.set_members``; a
member finds them in their own home set (``gk.dav.storage``) and ``gk.dav.rights`` lets them in.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from xml.parsers import expat

import gevent
import gevent.lock

from gk import pools
from gk.dav import defaults, recurrence
from gk.dav.defaults import DEFAULT_COLLECTIONS, Shares
from gk.dav.rwlock import RWLock
from gk.dav.schema import MIGRATIONS
from gk.store import Database, open_database

if TYPE_CHECKING:
    from gk.context import AppContext

log = logging.getLogger("gk.dav")

PREFIX = "/dav/"
XML_METHODS = {"PROPFIND", "PROPPATCH", "REPORT", "MKCALENDAR", "MKCOL"}
# Nesting of an XML body's elements: a DAV request nests a handful (a calendar-query's filters
# about ten). Radicale walks request trees recursively (``xmlutils.pretty_xml`` on every REPORT):
# 100,000 nested elements (600 KB) raised RecursionError, a 500.
MAX_XML_DEPTH = 64


# CalDAV time ranges (time-range, expand, limit-recurrence-set, limit-freebusy-set) are clamped
# to these years: Radicale computes ``start - duration`` and ``end + duration`` with Python
# datetimes, and ``start="00010101T000000Z"`` against an event with a DTEND answered 500
# (OverflowError). Nothing a calendar holds lies outside them; "from the year 1" still means it.
MIN_YEAR, MAX_YEAR = 1000, 9000
_RANGE_DATE = re.compile(rb"""(\b(?:start|end)\s*=\s*["'])(\d{4})(\d{4}T)""")


def clamp_years(body: bytes) -> bytes:
    """A REPORT body with the years of its time ranges' ``start``/``end`` within MIN_YEAR..MAX_YEAR."""

    def clamp(m: re.Match[bytes]) -> bytes:
        year = min(max(int(m.group(2)), MIN_YEAR), MAX_YEAR)
        return m.group(1) + b"%04d" % year + m.group(3)

    return _RANGE_DATE.sub(clamp, body) if b"start" in body or b"end" in body else body


class _TooDeep(Exception):
    pass


def xml_too_deep(body: bytes, limit: int = MAX_XML_DEPTH) -> bool:
    """Whether the XML ``body`` nests elements deeper than ``limit`` (expat, streaming, C speed; a
    body with fewer tags than ``limit`` is not parsed). Malformed XML is Radicale's to refuse."""
    if body.count(b"<") <= limit:
        return False
    parser = expat.ParserCreate()
    depth = 0

    def start(name: str, attrs: Any) -> None:
        nonlocal depth
        depth += 1
        if depth > limit:
            raise _TooDeep

    def end(name: str) -> None:
        nonlocal depth
        depth -= 1

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(body, True)
    except _TooDeep:
        return True
    except expat.ExpatError:
        return False
    return False


CALDAV_NS = "urn:ietf:params:xml:ns:caldav"
CARDDAV_NS = "urn:ietf:params:xml:ns:carddav"
RADICALE_THREADS = 2
VERIFIED_KEY = "gk.dav.verified_user"  # gk.dav.auth.VERIFIED (that module imports Radicale)


StartResponse = Callable[..., Any]


def _reply(start_response: StartResponse, status: str, body: bytes, content_type: str) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def _text(start_response: StartResponse, status: str, message: str) -> list[bytes]:
    return _reply(start_response, status, (message + "\n").encode(), "text/plain; charset=utf-8")


def _precondition(start_response: StartResponse, ns: str, name: str) -> list[bytes]:
    body = (
        f'<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:" xmlns:P="{ns}"><P:{name}/></D:error>\n'
    ).encode()
    return _reply(start_response, "403 Forbidden", body, "application/xml; charset=utf-8")


def _basic_auth_ok(header: str) -> bool:
    """False for an ``Authorization: Basic`` header that is not base64 of UTF-8 ``user:password``."""
    if not header.startswith("Basic"):
        return True
    try:
        decoded = base64.b64decode(header[len("Basic") :].strip().encode("ascii"), validate=True).decode("utf-8")
    except (ValueError, UnicodeError):
        return False
    return ":" in decoded


class DAVService:
    """The DAV component: ``wsgi`` for the web service, ``ensure_user`` for other features."""

    name = "dav"

    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        self.cfg = ctx.config.dav
        self.db_path = ctx.data_dir / "dav.sqlite3"
        self._app: Any = None
        self._loading = gevent.lock.Semaphore()
        self.lock = RWLock()  # Radicale's storage lock, also taken by the writers below
        self._db: Database | None = None
        self._shares: Shares | None = None
        # Radicale requests running in pool threads at once: the I/O pool stays free for mail
        # (no ``commit_runner`` on the DAV database: a writer on the hub holding the storage lock
        # would wait for an I/O thread that Radicale requests waiting on that lock may all hold)
        self._running = gevent.lock.Semaphore(max(1, min(RADICALE_THREADS, pools.current_sizes().io - 1)))
        self.hub = gevent.get_hub()  # where the iTIP sender's greenlets run

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = open_database(self.db_path, MIGRATIONS)
        return self._db

    @property
    def shares(self) -> Shares:
        if self._shares is None:
            self._shares = Shares(self.db)
        return self._shares

    # -- Radicale, on first use ----------------------------------------------------------
    def configuration(self) -> Any:
        from radicale import config as radicale_config

        from gk.dav.auth import Auth
        from gk.dav.rights import Rights
        from gk.dav.storage import Storage

        configuration = radicale_config.Configuration(radicale_config.DEFAULT_CONFIG_SCHEMA)
        configuration.update(
            {
                "server": {
                    "max_content_length": str(self.cfg.max_request_size),
                    "max_resource_size": str(self.cfg.max_resource_size),
                    "delay_on_error": "0",
                },
                "auth": {"type": Auth.factory(self.ctx.auth), "delay": "0", "realm": "GK calendars and contacts"},
                "rights": {"type": Rights.factory(self.shares.rights)},
                "storage": {
                    "type": Storage.factory(self.db_path, self.lock, self.db),
                    "predefined_collections": json.dumps(DEFAULT_COLLECTIONS),
                },
                "web": {"type": "none"},
                "hook": {"type": "none"},
                "sharing": {"type": "none"},
            },
            "gk.dav",
            privileged=True,
        )
        return configuration

    def application(self) -> Any:
        if self._app is None:
            with self._loading:
                if self._app is None:
                    log.info("dav: loading Radicale (first DAV request)")
                    # Radicale logs every request and its whole configuration at INFO
                    logging.getLogger("radicale").setLevel(logging.WARNING)
                    from radicale.app import Application

                    recurrence.install()
                    from gk.dav import validate

                    validate.install()  # a checked PUT body reaches Radicale parsed (gk.dav.validate)
                    app = Application(self.configuration())
                    from gk.dav.itip import Scheduler, addresses_of
                    from gk.dav.storage import Storage

                    storage = app._storage
                    assert isinstance(storage, Storage)
                    # implicit scheduling: local attendees inside the request, iTIP mail after it
                    storage.scheduler = Scheduler(self.ctx, self.hub, storage)
                    # the organizer's copy of an event told from an attendee's (RFC 6638 Schedule-Tag)
                    storage.addresses = lambda principal: addresses_of(self.ctx, principal)
                    from gk.dav.extensions import Extensions

                    # paged sync-collection and RFC 6638 scheduling (free-busy) around Radicale
                    self._app = Extensions(app, self.cfg.sync_page_size)
        return self._app

    @property
    def storage(self) -> Any:
        return self.application()._storage

    def ensure_user(self, address: str) -> bool:
        """The user's principal and default collections, if missing; True when made now."""
        with self.lock.acquire("w"):
            return defaults.ensure_user(self.db, address)

    def ensure_all(self) -> list[str]:
        """``ensure_user`` for every account (at start: users of a box upgraded to DAV)."""
        with self.lock.acquire("w"):
            made = defaults.ensure_users(self.db, [u.address for u in self.ctx.accounts.list_users()])
        if made:
            log.info("dav: default calendar, tasks and contacts for %d user(s)", len(made))
        return made

    def create_shared(
        self, owner: str, members: dict[str, str], name: str = defaults.FAMILY, title: str = "Family"
    ) -> None:
        """A calendar of ``owner`` shared with ``members`` (address -> "r" | "rw")."""
        with self.lock.acquire("w"):
            defaults.create_shared(self.db, owner, name, title)
            self.shares.set_members(owner, name, members)

    def set_members(self, owner: str, collection: str, members: dict[str, str]) -> None:
        with self.lock.acquire("w"):
            self.shares.set_members(owner, collection, members)

    def _user_added(self, address: str) -> None:
        try:
            self.ensure_user(address)
        except Exception:
            log.exception("dav: could not make the default collections of %s", address)

    # -- WSGI ------------------------------------------------------------------------------
    def wsgi(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Bound and authenticate the request on the hub, then run Radicale in a pool thread.

        Radicale's work is pure Python that never yields: an initial ``sync-collection`` or a
        ``PROPFIND`` over 10,000 items builds and serializes its XML for seconds, and a PUT's
        commit waits on an fsync. In a pool thread the hub keeps serving meanwhile (it takes the
        GIL back within ``sys.getswitchinterval()``, 5 ms). The body is already read into memory
        (``_bound_request``, at most ``dav.max_request_size``) and the credentials are checked
        here with ``ctx.auth`` (its throttle and cache are greenlet code), so the thread touches
        no socket and no greenlet-only object; the storage's lock and database are shared with
        the hub (``gk.dav.rwlock``)."""
        refused = self._bound_request(environ, start_response)
        if refused is not None:
            return refused
        refused = self._authenticate(environ, start_response)
        if refused is not None:
            return refused
        captured: list[tuple[str, list[tuple[str, str]]]] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> Callable[[bytes], None]:
            captured[:] = [(status, headers)]
            return lambda data: None

        def run() -> list[bytes]:
            return list(self.application()(environ, capture))

        with self._running:
            body = pools.run_io(run)
        status, headers = captured[0]
        user = environ.get(VERIFIED_KEY)
        principal = str(environ.get("PATH_INFO", "")).strip("/")
        if (
            user
            and principal
            and "/" not in principal  # a principal: its PROPFIND lists collections, never items
            and str(environ.get("REQUEST_METHOD", "")).upper() == "PROPFIND"
            and status.startswith("207")
        ):
            joined = b"".join(body)
            gzipped = any(k.lower() == "content-encoding" and "gzip" in v.lower() for k, v in headers)
            if gzipped and len(joined) < 1024 * 1024:
                import gzip

                rewritten = gzip.compress(self._user_addresses(gzip.decompress(joined), str(user)))
            else:
                rewritten = self._user_addresses(joined, str(user))
            body = [rewritten]
            headers = [(k, str(len(rewritten)) if k.lower() == "content-length" else v) for k, v in headers]
        start_response(status, headers)
        return body

    def _user_addresses(self, body: bytes, user: str) -> bytes:
        """RFC 6638 §2.4.1: the principal's ``calendar-user-address-set`` lists its ``mailto:``
        addresses (the account's, then the aliases delivered to it) before the principal URL,
        which is all Radicale gives. iOS and macOS take the first ``mailto:`` as "me": the
        invitations a user organizes then show as theirs, and their own ATTENDEE line as theirs."""
        import urllib.parse
        import xml.etree.ElementTree as ET

        if b"calendar-user-address-set" not in body:
            return body
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            return body
        dav, caldav = "{DAV:}", "{" + CALDAV_NS + "}"
        addresses = [user, *(a for a in self.ctx.accounts.aliases_of(user) if "@" in a)]
        changed = False
        for response in root.iter(dav + "response"):
            href = urllib.parse.unquote(response.findtext(dav + "href") or "")
            if href.rstrip("/").rpartition("/")[2] != user:
                continue  # another principal, or a collection
            for prop in response.iter(caldav + "calendar-user-address-set"):
                if prop.find(dav + "href") is None:
                    continue  # asked, but not found on this resource
                for i, address in enumerate(addresses):
                    element = ET.Element(dav + "href")
                    element.text = f"mailto:{address}"
                    prop.insert(i, element)
                changed = True
        if not changed:
            return body
        return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8", xml_declaration=False)

    def _authenticate(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes] | None:
        """Basic credentials through ``ctx.auth`` on the hub; the verified address is handed to
        Radicale's auth plugin in the environ (``gk.dav.auth.VERIFIED``). Wrong ones: 401."""
        from gk.dav.auth import SERVICE, VERIFIED

        assert VERIFIED == VERIFIED_KEY
        environ.pop(VERIFIED, None)
        header = str(environ.get("HTTP_AUTHORIZATION", ""))
        if not header.startswith("Basic"):
            return None
        decoded = base64.b64decode(header[len("Basic") :].strip().encode("ascii")).decode("utf-8")
        login, _, password = decoded.partition(":")
        if login and password and len(login) <= 320 and len(password) <= 1024:
            result = self.ctx.auth.login(login, password, str(environ.get("REMOTE_ADDR") or ""), SERVICE)
            if result.ok and result.user is not None:
                environ[VERIFIED] = result.user.address
                return None
        start_response(
            "401 Unauthorized",
            [("WWW-Authenticate", 'Basic realm="GK calendars and contacts"'), ("Content-Length", "0")],
        )
        return []

    def _bound_request(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes] | None:
        """Size and XML checks before Radicale reads a byte; None = pass the request on."""
        method = str(environ.get("REQUEST_METHOD", "")).upper()
        limit = self.cfg.max_request_size
        length_text = str(environ.get("CONTENT_LENGTH") or "").strip()
        chunked = "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower()
        body: bytes | None = None
        if chunked and not length_text:
            body = environ["wsgi.input"].read(limit + 1)
            if len(body) > limit:
                return _text(start_response, "413 Payload Too Large", f"DAV requests are limited to {limit} bytes")
            length = len(body)
            environ["CONTENT_LENGTH"] = str(length)
        else:
            try:
                length = int(length_text or 0)
            except ValueError:
                return _text(start_response, "400 Bad Request", "invalid Content-Length")
            if length < 0:
                return _text(start_response, "400 Bad Request", "invalid Content-Length")
            if length > limit:
                return _text(start_response, "413 Payload Too Large", f"DAV requests are limited to {limit} bytes")
        if not _basic_auth_ok(str(environ.get("HTTP_AUTHORIZATION", ""))):
            # Radicale would answer a 500 for undecodable Basic credentials
            start_response(
                "401 Unauthorized",
                [("WWW-Authenticate", 'Basic realm="GK calendars and contacts"'), ("Content-Length", "0")],
            )
            return []
        path = str(environ.get("PATH_INFO", ""))
        if method == "PUT" and length > self.cfg.max_resource_size and not path.endswith("/"):
            vcard = "vcard" in str(environ.get("CONTENT_TYPE", "")).lower() or path.lower().endswith(".vcf")
            return _precondition(start_response, CARDDAV_NS if vcard else CALDAV_NS, "max-resource-size")
        if method in XML_METHODS and length:
            if body is None:
                body = environ["wsgi.input"].read(length)
                if len(body) < length:
                    return _text(start_response, "400 Bad Request", "request body shorter than its Content-Length")
            probe = body.replace(b"\0", b"").upper()
            if b"<!DOCTYPE" in probe or b"<!ENTITY" in probe:
                log.warning("dav: refused an XML body with a DTD from %s", environ.get("REMOTE_ADDR", "?"))
                return _text(start_response, "400 Bad Request", "XML with a DTD is not accepted")
            if xml_too_deep(body):
                return _text(start_response, "400 Bad Request", f"XML nested deeper than {MAX_XML_DEPTH} elements")
            if method == "REPORT":
                body = clamp_years(body)
                environ["CONTENT_LENGTH"] = str(len(body))
        if body is None:
            # Radicale runs in a pool thread (``wsgi``): it must not read the client's socket
            body = environ["wsgi.input"].read(length) if length else b""
            if len(body) < length:
                return _text(start_response, "400 Bad Request", "request body shorter than its Content-Length")
        environ["wsgi.input"] = io.BytesIO(body)
        return None

    def stop(self, grace: float) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def start(ctx: AppContext) -> DAVService | None:
    if not ctx.config.dav.enabled:
        return None
    svc = DAVService(ctx)
    ctx.accounts.on_user_added(svc._user_added)
    if ctx.config.dav.invitations:
        from gk import events

        def to_inbox(user: str, sender: str, uid: str, method: str, text: str) -> None:
            from gk.dav import inbox

            if not inbox.is_new(svc.db, user, uid, text):
                return  # seen before
            # From a user of this box (a mail not applied when it was sent: gk.dav.itip.Scheduler
            # applies its own at once), the calendar copy is written first (RFC 6638 §3.2.1:
            # processed by the time the client sees it in the inbox — a client that finds the
            # inbox item looks for the event next). From outside, the user adds it (webmail,
            # their mail app), never a stranger.
            if ctx.accounts.get_user(sender) is not None:
                from gk.dav.itip import addresses_of, schedule_copy

                if schedule_copy(svc.storage, user, method, text, addresses_of(ctx, user)):
                    log.info("dav: iTIP %s from %s written into the calendar of %s", method, sender, user)
            if inbox.deliver(svc.db, svc.lock, user, uid, method, text):
                log.info("dav: iTIP %s placed in the scheduling inbox of %s", method, user)

        watcher: list[Callable[[Any], None]] = []

        def watch(event: Any) -> None:
            """``gk.dav.itip.ReplyWatcher``, made on the first mail added to an INBOX: the iTIP
            module and the DAV web API it imports (~0.3 MB) are not an idle server's."""
            if not watcher:
                if event.folder.upper() != "INBOX" or not isinstance(
                    event, events.MessagesAdded | events.MaildirChanged
                ):
                    return  # what the watcher ignores anyway
                from gk.dav.itip import ReplyWatcher

                watcher.append(ReplyWatcher(ctx, lambda: svc.storage, to_inbox))
            watcher[0](event)

        events.subscribe(None, watch)
    gevent.spawn(svc.ensure_all)
    return svc
