"""Invitations received by mail (iMIP, RFC 6047), answered from the webmail reader.

A message with a ``text/calendar`` part of ``METHOD:REQUEST`` is an invitation: ``read`` gives
what the reader shows (title, times, place, organizer, attendees, the reader's own answer and
whether the calendar already holds this event, an older or a newer version of it). ``answer``
puts the event in the user's calendar through the DAV storage (the collection that already
holds its UID, else the default calendar), with the user's ``PARTSTAT``, and mails the iTIP
``REPLY`` (RFC 5546 §3.2.3) to the organizer through GK's submission path (a local organizer's
copy is updated at once, before the answer's page returns, and the mail marked so; remote ones
get it through the queue). Declining removes the user's copy, if any. A ``REQUEST`` with a lower ``SEQUENCE`` than
the stored copy is outdated and refused; a higher one replaces it. ``METHOD:CANCEL`` offers the
removal of the user's copy, and only of a copy organized by the same organizer: a forged cancel
cannot delete an unrelated event (and the web route asks "I know this sender" first when the box
cannot vouch for the sender, as for an answer).

Only the user's own collections (``<user>/…``) are looked at or written, and the message is read
from the signed-in user's own mailbox by the web route (``gk.dav.web``).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from gk.dav.itip import _address, reply_component
from gk.locale import N_

if TYPE_CHECKING:
    from gk.accounts import User
    from gk.context import AppContext
    from gk.dav.webapi import DavWeb
    from gk.mail.mailbox import Part

log = logging.getLogger("gk.dav")

MAX_INVITE_BYTES = 256 * 1024
METHODS = ("REQUEST", "CANCEL")
ANSWERS = {"accept": "ACCEPTED", "tentative": "TENTATIVE", "decline": "DECLINED"}
PRODID = "-//GK//Invitations//EN"


NOT_ANSWERABLE = N_("This invitation cannot be answered.")
NOT_ATTENDEE = N_("You are not among the attendees of this invitation.")
OUTDATED = N_("Your calendar holds a newer version of this event: this invitation is outdated.")
FOREIGN = N_("Your calendar holds another event with the same identifier.")
NOT_MAILED = N_("Your answer is saved in your calendar but could not be mailed to the organizer.")
NOT_CANCEL = N_("This message does not cancel an event.")
UNCONFIRMED = N_(
    'Nothing was done: the sender of this invitation could not be verified. Tick "I know this sender" to answer anyway.'
)
UNCONFIRMED_CANCEL = N_(
    'Nothing was removed: the sender of this cancellation could not be verified. Tick "I know this sender" to remove the event anyway.'
)
# the reader's error banner: a key in the redirect's query, never the text itself
DONE_ERRORS = {
    "answerable": NOT_ANSWERABLE,
    "attendee": NOT_ATTENDEE,
    "outdated": OUTDATED,
    "foreign": FOREIGN,
    "mailed": NOT_MAILED,
    "cancel": NOT_CANCEL,
    "unconfirmed": UNCONFIRMED,
    "unconfirmed_cancel": UNCONFIRMED_CANCEL,
}


class InviteError(ValueError):
    """A refused answer; ``template`` for the catalog."""

    def __init__(self, template: str):
        super().__init__(template)
        self.template = template


@dataclass(frozen=True)
class Person:
    address: str
    name: str
    partstat: str = ""


@dataclass
class Invitation:
    method: str  # REQUEST or CANCEL
    uid: str
    sequence: int
    summary: str
    start: dt.date | dt.datetime | None
    end: dt.date | dt.datetime | None
    all_day: bool
    location: str
    organizer: Person
    attendees: list[Person]
    me: Person | None  # the reader, when listed among the attendees
    text: str
    recurring: bool = False
    # the user's copy: "" none, "same", "older" (this one updates it), "newer" (this one is outdated)
    stored: str = ""
    stored_partstat: str = ""
    stored_path: str = ""
    stored_href: str = ""
    notes: list[str] = field(default_factory=list)


def calendar_part(top: Part) -> Part | None:
    """The first ``text/calendar`` part with ``method=REQUEST`` or ``CANCEL`` of a message."""
    stack = [top]
    while stack:
        part = stack.pop(0)
        if part.maintype.lower() == "text" and part.subtype.lower() == "calendar":
            if (part.param("method") or "").upper() in METHODS and part.size <= MAX_INVITE_BYTES:
                return part
        stack.extend(part.children)
        if part.message is not None:
            continue  # a forwarded message's invitation is not addressed to this reader
    return None


def _person(line: Any) -> Person:
    name = (line.params.get("CN") or [""])[0]
    partstat = (line.params.get("PARTSTAT") or ["NEEDS-ACTION"])[0].upper()
    return Person(_address(str(line.value)), str(name), partstat)


def _main_event(cal: Any) -> Any:
    events = list(getattr(cal, "vevent_list", []))
    if not events:
        return None
    masters = [e for e in events if "recurrence-id" not in e.contents]
    return (masters or events)[0]


def _sequence(ev: Any) -> int:
    try:
        return int(str(ev.sequence.value)) if "sequence" in ev.contents else 0
    except ValueError:
        return 0


def parse(text: str, is_own: Callable[[str], bool]) -> Invitation | None:
    """The invitation of an iTIP object, or None when it is not one this reader can show."""
    import vobject  # type: ignore[import-untyped]

    try:
        cal = vobject.readOne(text)
    except Exception:
        return None
    method = str(cal.method.value).upper() if "method" in cal.contents else ""
    ev = _main_event(cal)
    if method not in METHODS or ev is None or "uid" not in ev.contents:
        return None
    organizer = _person(ev.organizer) if "organizer" in ev.contents else Person("", "")
    attendees = [_person(a) for a in ev.contents.get("attendee", [])]
    me = next((a for a in attendees if a.address and is_own(a.address)), None)
    start = ev.dtstart.value if "dtstart" in ev.contents else None
    end = ev.dtend.value if "dtend" in ev.contents else None
    if end is None and start is not None and "duration" in ev.contents:
        try:
            end = start + ev.duration.value
        except TypeError:
            end = None
    return Invitation(
        method=method,
        uid=str(ev.uid.value),
        sequence=_sequence(ev),
        summary=str(ev.summary.value) if "summary" in ev.contents else "",
        start=start,
        end=end,
        all_day=isinstance(start, dt.date) and not isinstance(start, dt.datetime),
        location=str(ev.location.value) if "location" in ev.contents else "",
        organizer=organizer,
        attendees=attendees,
        me=me,
        text=text,
        recurring="rrule" in ev.contents,
    )


def _stored(davweb: DavWeb, user: str, uid: str) -> Any:
    """(path, href, text) of the user's own copy of ``uid``, or None."""
    st = davweb.storage
    with st.acquire_lock("r", user):
        return st.db.one(
            "SELECT c.path, i.href, i.text FROM items i JOIN collections c ON c.id = i.collection "
            "WHERE c.parent = ? AND i.uid = ? AND c.tag = 'VCALENDAR' ORDER BY c.path LIMIT 1",
            (user, uid),
        )


def with_state(davweb: DavWeb, user: str, inv: Invitation) -> Invitation:
    """``inv`` with what the user's calendar holds of it."""
    row = _stored(davweb, user, inv.uid)
    if row is None:
        return inv
    copy = parse_plain(str(row["text"]))
    if copy is None:
        return inv
    inv.stored_path, inv.stored_href = str(row["path"]), str(row["href"])
    seq = _sequence(copy)
    inv.stored = "same" if seq == inv.sequence else ("older" if seq < inv.sequence else "newer")
    if inv.me is not None:
        mine = [_person(a) for a in copy.contents.get("attendee", []) if _address(str(a.value)) == inv.me.address]
        inv.stored_partstat = mine[0].partstat if mine else ""
    organizer = _address(str(copy.organizer.value)) if "organizer" in copy.contents else ""
    if organizer != inv.organizer.address:
        inv.stored = "foreign"  # an event of the same UID from someone else: never touched
    return inv


def parse_plain(text: str) -> Any:
    """The main VEVENT of a stored calendar object, or None."""
    import vobject

    try:
        return _main_event(vobject.readOne(text))
    except Exception:
        return None


def answer(ctx: AppContext, davweb: DavWeb, user: User, inv: Invitation, choice: str) -> str:
    """Store (or remove, for a decline) the event and mail the REPLY; the PARTSTAT sent."""
    import vobject

    partstat = ANSWERS.get(choice)
    if partstat is None or inv.method != "REQUEST":
        raise InviteError(NOT_ANSWERABLE)
    if inv.me is None or not inv.organizer.address:
        raise InviteError(NOT_ATTENDEE)
    inv = with_state(davweb, user.address, inv)
    if inv.stored == "newer":
        raise InviteError(OUTDATED)
    if inv.stored == "foreign":
        raise InviteError(FOREIGN)
    me = inv.me
    assert me is not None
    cal = vobject.readOne(inv.text)
    for line in list(cal.contents.get("method", [])):
        cal.remove(line)  # RFC 4791 §4.1: a stored calendar object has no METHOD
    for ev in getattr(cal, "vevent_list", []):
        for att in ev.contents.get("attendee", []):
            if _address(str(att.value)) == me.address:
                att.params["PARTSTAT"] = [partstat]
                att.params.pop("RSVP", None)
    if partstat == "DECLINED":
        if inv.stored:
            davweb.delete(user.address, inv.stored_path, inv.stored_href)
    elif inv.stored:
        davweb.save(user.address, inv.stored_path, cal, href=inv.stored_href)
    else:
        davweb.ensure(user.address)
        davweb.save(user.address, f"{user.address}/calendar", cal)
    send_reply(ctx, user, inv, partstat)
    return partstat


def remove(davweb: DavWeb, user: str, inv: Invitation) -> bool:
    """A CANCEL: delete the user's copy organized by the same organizer; True when removed."""
    if inv.method != "CANCEL":
        raise InviteError(NOT_CANCEL)
    inv = with_state(davweb, user, inv)
    if not inv.stored or inv.stored == "foreign":
        return False
    davweb.delete(user, inv.stored_path, inv.stored_href)
    return True


def reply_calendar(inv: Invitation, partstat: str) -> str:
    """The iTIP REPLY (RFC 5546 §3.2.3): each VEVENT of the request with its identity, the
    organizer and the replying attendee only."""
    import vobject

    assert inv.me is not None
    request = vobject.readOne(inv.text)
    out = vobject.iCalendar()
    out.add("prodid").value = PRODID
    out.add("method").value = "REPLY"
    now = dt.datetime.now(vobject.icalendar.utc).replace(microsecond=0)
    for ev in getattr(request, "vevent_list", []):
        att = reply_component(out, ev, inv.me.address, partstat, now)
        if inv.me.name:
            att.params["CN"] = [inv.me.name]
    return str(out.serialize())


SUBJECTS = {"ACCEPTED": "Accepted", "TENTATIVE": "Tentative", "DECLINED": "Declined"}


def reply_message(inv: Invitation, partstat: str, ical: str, scheduled: Sequence[str] = ()) -> bytes:
    """The iMIP mail of a REPLY; ``scheduled``: the organizer when it was applied to their copy
    already (``gk.dav.itip.SCHEDULED_HEADER``)."""
    from gk.dav.itip import SCHEDULED_HEADER

    assert inv.me is not None
    msg = EmailMessage()
    msg["From"] = inv.me.address
    msg["To"] = inv.organizer.address
    if scheduled:
        msg[SCHEDULED_HEADER] = ", ".join(sorted(scheduled))
    title = inv.summary or "(no title)"
    msg["Subject"] = f"{SUBJECTS[partstat]}: {title}"
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg["Message-ID"] = email.utils.make_msgid(domain=inv.me.address.rpartition("@")[2] or None)
    msg.set_content(f"{inv.me.address} answered “{title}”: {partstat.lower()}.\n")
    msg.add_alternative(ical, subtype="calendar", params={"method": "REPLY"}, charset="utf-8")
    from email.policy import SMTP as SMTP_POLICY  # on first use: email.policy costs an idle box ~0.5 MB

    return msg.as_bytes(policy=SMTP_POLICY)


def reply_locally(ctx: AppContext, storage: Any, inv: Invitation, partstat: str) -> list[str]:
    """RFC 6638 §3.2.2: the answer applied at once to the organizer's copy when the organizer is
    a user of this box (before the answer's page or request returns); [the organizer] when
    applied, [] when the organizer is elsewhere or it failed (the mailed REPLY then applies it)."""
    from gk.dav.itip import addresses_of, local_owner, reply_local

    assert inv.me is not None
    organizer = local_owner(ctx, storage, inv.organizer.address)  # the user, invited as an alias too
    if not organizer:
        return []
    with storage.acquire_lock("w", organizer):
        reply = reply_calendar(inv, partstat)
        if reply_local(storage, organizer, inv.me.address.lower(), reply, addresses_of(ctx, organizer)):
            return [organizer]
    return []


def send_reply(
    ctx: AppContext,
    user: User,
    inv: Invitation,
    partstat: str,
    scheduled: Sequence[str] | None = None,
    ical: str | None = None,
) -> None:
    """Mail the REPLY to the organizer; ``scheduled``: the organizers it was applied to already
    (None: apply it now to a local organizer's copy, ``reply_locally``); ``ical``: the REPLY
    when it is not the whole invitation's (occurrences answered alone)."""
    from gk.mail.submission import SubmissionError, submit

    assert inv.me is not None
    if scheduled is None:
        scheduled = []
        from gk.dav.service import DAVService

        dav = ctx.services.maybe(DAVService)
        if dav is not None:
            try:
                scheduled = reply_locally(ctx, dav.storage, inv, partstat)
            except Exception:
                log.exception("dav: iTIP REPLY from %s not applied at once", inv.me.address)
    raw = reply_message(inv, partstat, ical or reply_calendar(inv, partstat), scheduled)
    try:
        submit(ctx, user, raw, [inv.organizer.address], mail_from=inv.me.address)
    except SubmissionError as exc:
        log.warning("dav: iTIP REPLY from %s to %s not sent: %s", inv.me.address, inv.organizer.address, exc.reply)
        raise InviteError(NOT_MAILED) from exc
    log.info("dav: iTIP REPLY %s from %s to %s", partstat, inv.me.address, inv.organizer.address)
