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
attendee's answer written back) and objects written by ``gk dav import`` (no observer there).
Each message goes through ``gk.mail.submission.submit`` as the organizer: local attendees get it
in their INBOX at once, remote ones through the queue, DKIM-signed. Sending runs in its own
greenlet after the request's commit: a slow disk or a refused recipient never delays or fails
the PUT (it is logged).
"""

from __future__ import annotations

import email.utils
import logging
import os
import time
from collections.abc import Iterable
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from typing import TYPE_CHECKING, Any

import gevent

if TYPE_CHECKING:
    from gk.context import AppContext
    from gk.dav.storage import Change

log = logging.getLogger("gk.dav")

# what an attendee agreed to: a change of any of these is sent again as a REQUEST
SIGNIFICANT = ("DTSTART", "DTEND", "DURATION", "RRULE", "RDATE", "EXDATE", "LOCATION", "SUMMARY", "STATUS", "SEQUENCE")


def _address(value: str) -> str:
    value = value.strip()
    return value[7:].lower() if value.lower().startswith("mailto:") else ""


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
        elif new_att - old_att:
            sends.append(("REQUEST", new_att - old_att))
    return sends


# -- one occurrence of a repeating event: iTIP for that instance only (RFC 5546 §3.2.2.1, §3.2.5)
# a write that leaves the series' master as it was but for these (an EXDATE added, the SEQUENCE
# bumped, the stamps) changes instances only: the attendees are sent those instances, each a
# VEVENT with its RECURRENCE-ID, not the whole series again
_INSTANCE_ONLY = frozenset({"EXDATE", "SEQUENCE", "DTSTAMP", "LAST-MODIFIED"})
_STAMPS = frozenset({"DTSTAMP", "LAST-MODIFIED"})


def _when_key(value: Any) -> str:
    """An instance's identity (RECURRENCE-ID or EXDATE value): UTC for zoned times."""
    import datetime as dt

    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            return value.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        return value.strftime("%Y%m%dT%H%M%S")
    if isinstance(value, dt.date):
        return value.strftime("%Y%m%d")
    return str(value)


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
            out[_when_key(value)] = value
    return out


def _instance_calendar(text: str, key: str, value: Any = None) -> str:
    """``text``'s calendar (its VTIMEZONEs kept) with one VEVENT: the override of instance
    ``key``, or (``value``: that instance's start) the master made into that instance."""
    import datetime as dt

    import vobject  # type: ignore[import-untyped]

    cal = vobject.readOne(text)
    keep = None
    for ev in list(getattr(cal, "vevent_list", [])):
        rid = ev.contents.get("recurrence-id")
        if value is None and rid and _when_key(rid[0].value) == key and keep is None:
            keep = ev
        elif value is not None and not rid and keep is None:
            keep = ev
            start = ev.dtstart.value if "dtstart" in ev.contents else None
            length = None
            if "dtend" in ev.contents and start is not None:
                length = ev.dtend.value - start
            elif "duration" in ev.contents:
                length = ev.duration.value
            for name in ("rrule", "rdate", "exdate", "exrule", "dtstart", "dtend", "duration"):
                for line in list(ev.contents.get(name, [])):
                    ev.remove(line)
            ev.add("recurrence-id").value = value
            ev.add("dtstart").value = value
            if isinstance(length, dt.timedelta):
                ev.add("dtend").value = value + length
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
    old_over = {_when_key(e.recurrence_id.value): e for e in old_events if "recurrence-id" in e.contents}
    new_over = {_when_key(e.recurrence_id.value): e for e in new_events if "recurrence-id" in e.contents}
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
        if not summary and "summary" in ev.contents:
            summary = str(ev.summary.value)
        if method == "CANCEL":
            for line in list(ev.contents.get("status", [])):
                ev.remove(line)
            ev.add("status").value = "CANCELLED"
    return cal.serialize(), summary


def message(organizer: str, attendees: Iterable[str], method: str, ical: str, summary: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = organizer
    msg["To"] = ", ".join(sorted(attendees))
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
    return msg.as_bytes(policy=SMTP_POLICY)  # CRLF line ends, as on the wire


class Scheduler:
    """``Storage.observer`` of ``gk serve``: plans after the commit, sends in a greenlet."""

    def __init__(self, ctx: AppContext, hub: Any = None):
        self.ctx = ctx
        self.hub = hub  # the main hub: DAV requests run in pool threads, the sending on the hub

    def _spawn(self, *args: Any) -> None:
        from gk import pools

        if self.hub is None or not pools.in_pool_thread():
            gevent.spawn(self._send, *args)
        else:
            self.hub.loop.run_callback_threadsafe(gevent.spawn, self._send, *args)

    def __call__(self, user: str, changes: list[Change]) -> None:
        if not user or not self.ctx.config.dav.invitations:
            return
        for change in changes:
            if change.path.count("/") != 1:
                continue
            for method, attendees, text in sends(user.lower(), change.old, change.new):
                self._spawn(user, method, sorted(attendees), text)

    def _send(self, user: str, method: str, attendees: list[str], text: str) -> None:
        from gk.mail.submission import SubmissionError, submit

        account = self.ctx.accounts.get_user(user)
        if account is None:
            return
        try:
            ical, summary = itip_calendar(text, method)
            submit(self.ctx, account, message(account.address, attendees, method, ical, summary), attendees)
            log.info("dav: iTIP %s from %s to %s", method, account.address, ", ".join(attendees))
        except SubmissionError as exc:
            log.warning("dav: iTIP %s from %s not sent: %s", method, account.address, exc.reply)
        except Exception:
            log.exception("dav: iTIP %s from %s not sent", method, account.address)


# -- replies: an attendee's answer updates the organizer's copy ----------------------------------

MAX_REPLY_BYTES = 256 * 1024
RECENT_SECONDS = 600  # files of new/ older than this were looked at before (or predate the server)


def _reply_parts(top: Any) -> bool:
    """True when the MIME tree holds a ``text/calendar; method=REPLY`` part."""
    stack = [top]
    while stack:
        part = stack.pop()
        if part.maintype.lower() == "text" and part.subtype.lower() == "calendar":
            if any(k.lower() == "method" and v.upper() == "REPLY" for k, v in part.params):
                return True
        stack.extend(part.children)
    return False


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


def apply_reply(storage: Any, organizer: str, sender: str, text: str) -> bool:
    """Set the replying attendee's PARTSTAT in ``organizer``'s copy of the event; True when changed.

    Only the attendee who sent the mail (``From``) is updated, and only on an event the
    organizer organizes that lists that attendee: a reply can never touch anything else."""
    import vobject  # type: ignore[import-untyped]
    from radicale import item as radicale_item

    reply = _events(text)
    if not reply or _organizer(reply) != organizer:
        return False
    uid = str(reply[0].uid.value) if "uid" in reply[0].contents else ""
    answers: dict[str, str] = {}
    for ev in reply:
        for att in ev.contents.get("attendee", []):
            if _address(str(att.value)) == sender:
                answers[str(ev.contents["recurrence-id"][0].value) if "recurrence-id" in ev.contents else ""] = (
                    att.params.get("PARTSTAT") or ["NEEDS-ACTION"]
                )[0].upper()
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
    for ev in getattr(cal, "vevent_list", []):
        if _organizer([ev]) != organizer:
            continue
        key = str(ev.contents["recurrence-id"][0].value) if "recurrence-id" in ev.contents else ""
        partstat = answers.get(key, answers.get(""))
        for att in ev.contents.get("attendee", []):
            if partstat and _address(str(att.value)) == sender and att.params.get("PARTSTAT") != [partstat]:
                att.params["PARTSTAT"] = [partstat]
                att.params.pop("RSVP", None)
                changed = True
    if not changed:
        return False
    with storage.acquire_lock("w", organizer):
        (col,) = list(storage.discover("/" + row["path"] + "/"))
        item = radicale_item.Item(collection_path=col.path, vobject_item=cal)
        item.prepare()
        col.upload(row["href"], item)
    return True


class ReplyWatcher:
    """A bus subscriber: each message added to an INBOX is checked (from its cached MIME tree) for
    an iTIP REPLY; one found updates the mailbox owner's event, off the publisher's greenlet.
    Mail delivered by SMTP lands behind the index (``MaildirChanged``): the fresh files of the
    INBOX's ``new/`` are read as they are, never indexed nor moved (a reply already applied is
    applied again harmlessly: the same status is written once)."""

    def __init__(self, ctx: AppContext, storage: Any):
        self.ctx = ctx
        self.storage = storage  # a callable giving the DAV storage (Radicale is imported on first use)
        self._seen: dict[str, set[str]] = {}  # per user: files of new/ already looked at

    def __call__(self, event: Any) -> None:
        from gk import events

        if event.folder.upper() != "INBOX":
            return
        if isinstance(event, events.MessagesAdded):
            gevent.spawn(self._check, event.user, event.folder, event.uids)
        elif isinstance(event, events.MaildirChanged):
            gevent.spawn(self._scan_new, event.user)

    def _scan_new(self, user: str) -> None:
        """Mail delivered behind the index: read the INBOX's fresh files in ``new/`` without
        indexing or moving them (that stays the IMAP sessions' and the webmail's business)."""
        from gk.mail.mailbox import MailboxStore

        store = self.ctx.services.maybe(MailboxStore)
        if store is None:
            return
        new = store.user(user).root / "new"  # the INBOX is the Maildir's root folder
        seen = self._seen.setdefault(user, set())
        horizon = time.time() - RECENT_SECONDS
        try:
            entries = list(os.scandir(new))
        except OSError:
            return
        for entry in entries:
            if entry.name in seen:
                continue
            try:
                st = entry.stat()
                if st.st_mtime < horizon or st.st_size > MAX_REPLY_BYTES:
                    continue
                seen.add(entry.name)
                with open(entry.path, "rb") as f:
                    raw = f.read(MAX_REPLY_BYTES + 1)
            except OSError:
                continue  # indexed and moved to cur/ meanwhile: MessagesAdded brings it
            if b"text/calendar" not in raw.lower() or b"REPLY" not in raw.upper():
                continue
            self._apply(user, raw)
        if len(seen) > 4096:
            seen.clear()

    def _apply(self, user: str, raw: bytes) -> None:
        try:
            sender, texts = reply_calendars(raw)
            for text in texts:
                if apply_reply(self.storage(), user, sender, text):
                    log.info("dav: iTIP REPLY from %s updated an event of %s", sender, user)
        except Exception:
            log.exception("dav: iTIP reply to %s not applied", user)

    def _check(self, user: str, folder: str, uids: tuple[int, ...]) -> None:
        from gk.mail.mailbox import MailboxStore

        store = self.ctx.services.maybe(MailboxStore)
        if store is None:
            return
        mb = store.user(user)
        # Sizes first and the bytes' cheap test (as _scan_new) before the MIME tree: a folder
        # indexed lazily (issue 11: thousands of messages at its first SELECT) announces them all
        # at once, unparsed, and asking each one's structure parsed them all on the spot.
        sizes = {u: m.size for u, m in mb.infos(folder, uids, envelopes=False).items()}
        for n, uid in enumerate(uids):
            if n % 50 == 49:
                gevent.sleep(0)
            if sizes.get(uid, MAX_REPLY_BYTES + 1) > MAX_REPLY_BYTES:
                continue
            try:
                raw = mb.message_bytes(folder, uid)
                if b"text/calendar" not in raw.lower() or b"REPLY" not in raw.upper():
                    continue
                if not _reply_parts(mb.structure(folder, uid)):
                    continue
                self._apply(user, raw)
            except Exception:
                log.exception("dav: iTIP reply in %s's %s uid %d not applied", user, folder, uid)
