"""Web pages of the DAV feature: the wizard's "Family" calendar step, ``/sharing``, where an
owner picks who may read or write each of their calendars and address books, and the invitation
box of the webmail reader (``reader_invitation``, answered by ``POST /mail/invitation``:
``gk.dav.invites``).

The calendar and contacts pages themselves are ``gk.web.calendar*``/``gk.web.contacts*``; these
two only write the sharing table (``gk.dav.defaults``) through the running ``DAVService`` (its
write lock), so they answer 404 when DAV is off.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import bottle

from gk.dav.defaults import FAMILY, RIGHTS, ShareError
from gk.dav.service import DAVService
from gk.locale import N_
from gk.web import forms
from gk.web.app import Web
from gk.web.wizard import after, mark, page

if TYPE_CHECKING:
    from gk.mail.mailbox import Part, UserMailbox

# the default collections' display names, translated on the pages (stored in English)
DEFAULT_TITLES = (N_("Calendar"), N_("Tasks"), N_("Contacts"))


def _service(web: Web) -> DAVService:
    svc = web.ctx.services.maybe(DAVService)
    if svc is None:
        raise bottle.HTTPError(404, "calendars and contacts are off")
    return svc


def _chosen_members(candidates: list[str], prefix: str) -> dict[str, str]:
    """address -> rights from the form's ``<prefix><address>`` fields ("", "r" or "rw")."""
    chosen = {}
    for address in candidates:
        value = forms.text(prefix + address)
        if value in RIGHTS:
            chosen[address] = value
    return chosen


def family_step(web: Web) -> str:
    """Wizard: a "Family" calendar of the administrator, shared (read and write) with the users ticked."""
    svc = _service(web)
    me = web.signed_in().address
    others = [u.address for u in web.ctx.accounts.list_users() if u.address != me]
    if bottle.request.method == "POST":
        if forms.text("create"):
            members = {a: "rw" for a in forms.all_of("member") if a in others}
            svc.create_shared(me, members, FAMILY, web.gettext("Family"))
            web.ctx.accounts.record_event(
                "dav_shared", "web", web.client_ip(), me, f"{FAMILY} with {', '.join(sorted(members)) or 'nobody'}"
            )
        mark(web, "family")
        raise bottle.redirect(after(web, "family"))
    current = svc.shares.members(me, FAMILY)
    return page(web, "family", others=others, current=current)


def family_summary(web: Web) -> str:
    """The Family calendar on the wizard's summary: with whom it is shared, or not made."""
    from gk.dav import defaults

    svc = _service(web)
    me = web.signed_in().address
    if not any(name == FAMILY for name, _, _ in defaults.collections_of(svc.db, me)):
        return web.gettext("not created")
    members = sorted(svc.shares.members(me, FAMILY))
    if not members:
        return web.gettext("yours alone for now")
    return web.gettext("shared with {members}", members=", ".join(members))


def _shown_title(web: Web, name: str, title: str) -> str:
    """A collection's display name as the page shows it: a default collection's in the viewer's
    language (stored in English), any other as its owner or their client named it (never looked up
    in the catalog: a calendar called "Tasks" by hand is not a default one)."""
    from gk.dav.defaults import DEFAULT_COLLECTIONS

    default = DEFAULT_COLLECTIONS.get(name, {}).get("D:displayname")
    return web.gettext(title) if default is not None and title == default else title


def sharing_page(web: Web, **kw: object) -> str:
    svc = _service(web)
    me = web.signed_in().address
    from gk.dav import defaults

    svc.ensure_user(me)
    collections = [
        (name, tag, _shown_title(web, name, title), svc.shares.members(me, name))
        for name, tag, title in defaults.collections_of(svc.db, me)
        if tag in ("VCALENDAR", "VADDRESSBOOK")
    ]
    others = [u.address for u in web.ctx.accounts.list_users() if u.address != me]
    # (owner, display name, rights): a member sees the name its owner gave, not the collection's id
    titles: dict[str, dict[str, str]] = {}
    shared_with_me = []
    for owner, name, rights in svc.shares.shared_with(me):
        if owner not in titles:
            titles[owner] = {n: t for n, _, t in defaults.collections_of(svc.db, owner)}
        shared_with_me.append((owner, _shown_title(web, name, titles[owner].get(name, name)), rights))
    return web.render(
        "dav/sharing.html",
        collections=collections,
        others=others,
        shared_with_me=shared_with_me,
        errors=kw.pop("errors", {}),
        **kw,
    )


def sharing(web: Web) -> str:
    return sharing_page(web)


def save_sharing(web: Web, collection: str) -> str:
    svc = _service(web)
    me = web.signed_in().address
    from gk.dav import defaults

    if collection not in {name for name, _, _ in defaults.collections_of(svc.db, me)}:
        raise bottle.HTTPError(404, "no such collection")
    others = [u.address for u in web.ctx.accounts.list_users() if u.address != me]
    members = _chosen_members(others, "rights:")
    try:
        svc.set_members(me, collection, members)
    except ShareError as exc:
        bottle.response.status = 400
        return sharing_page(web, errors={"list": str(exc)})
    web.ctx.accounts.record_event(
        "dav_shared", "web", web.client_ip(), me, f"{collection} with {', '.join(sorted(members)) or 'nobody'}"
    )
    return sharing_page(web, notice=web.gettext("Sharing saved."))


# -- invitations in the webmail reader ----------------------------------------------------------

PARTSTATS = {
    "ACCEPTED": N_("accepted"),
    "TENTATIVE": N_("maybe"),
    "DECLINED": N_("declined"),
    "NEEDS-ACTION": N_("no answer yet"),
    "DELEGATED": N_("delegated"),
}
# the reader's banner after an answer: a key from the query, never text from the URL itself
DONE = {
    "ACCEPTED": N_("You accepted: the event is in your calendar and the organizer was told."),
    "TENTATIVE": N_("You answered maybe: the event is in your calendar and the organizer was told."),
    "DECLINED": N_("You declined: the organizer was told."),
    "removed": N_("The cancelled event was removed from your calendar."),
    "absent": N_("This event is not in your calendar."),
}


def _when(value: dt.date | dt.datetime | None, tz: dt.tzinfo, lang: str) -> str:
    from gk.web.webmail import DAYS, MONTHS, fmt_full

    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(tz)
        return fmt_full(value, lang)
    months, days = MONTHS.get(lang, MONTHS["en"]), DAYS.get(lang, DAYS["en"])
    if lang == "fr":
        return f"{days[value.weekday()]} {value.day} {months[value.month - 1]} {value.year}"
    return f"{days[value.weekday()]}, {months[value.month - 1]} {value.day}, {value.year}"


def _load_invitation(web: Web, mb: UserMailbox, folder: str, uid: int, top: Part) -> Any:
    from gk import pools
    from gk.dav import invites
    from gk.mail.mailbox import reading
    from gk.web.webmail import own_addresses

    part = invites.calendar_part(top)
    if part is None:
        return None
    with mb.open_message(folder, uid) as fh:
        text = reading.part_text(fh, part, invites.MAX_INVITE_BYTES)
    is_own = own_addresses(web.ctx, web.signed_in())
    return pools.run_cpu(invites.parse, text, is_own)  # vobject: pure Python, off the hub


def _unverified(sender: str, inv: Any) -> bool:
    """True when the box cannot vouch that the invitation comes from its organizer: the message's
    From is not verified (``_verified_sender``), or is not the ORGANIZER."""
    return not sender or sender != inv.organizer.address.lower()


def _verified_sender(web: Web, mb: UserMailbox, folder: str, uid: int) -> str:
    """The message's From address when the box vouches for it, else "" (its header section read
    in the I/O pool: at most 64 KiB)."""
    from gk import pools
    from gk.mail.authcheck.sender import verified_sender

    with mb.open_message(folder, uid) as fh:
        head = pools.run_io(fh.read, 65536)
    return verified_sender(head, web.ctx.authserv_id, web.ctx.accounts)


def reader_invitation(web: Web, mb: UserMailbox, folder: str, uid: int, top: Part) -> dict[str, Any] | None:
    """What the mail reader shows of an invitation in this message (None: not one, or DAV off)."""
    from gk import localtime
    from gk.dav import invites
    from gk.web.calendar import davweb

    if web.ctx.services.maybe(DAVService) is None:
        return None
    inv = _load_invitation(web, mb, folder, uid, top)
    if inv is None:
        return None
    user = web.signed_in().address
    inv = invites.with_state(davweb(web), user, inv)
    sender = _verified_sender(web, mb, folder, uid)
    tz, lang = localtime.zone(web.data_dir), web.lang()
    done = DONE.get(bottle.request.query.get("invitation", ""))
    error = invites.DONE_ERRORS.get(bottle.request.query.get("invitation_error", ""))
    return {
        "inv": inv,
        "start": _when(inv.start, tz, lang),
        "end": _when(inv.end, tz, lang) if inv.end is not None and inv.end != inv.start else "",
        "partstat": {k: web.gettext(v) for k, v in PARTSTATS.items()},
        # the organizer as the box can vouch for it (gk.mail.authcheck.sender): else a warning,
        # the From field and ORGANIZER being anyone's to write, and an answer needs "I know this
        # sender" ticked (answer_invitation refuses it without)
        "unverified": _unverified(sender, inv),
        "done": web.gettext(done) if done else "",
        "error": web.gettext(error) if error else "",
    }


def answer_invitation(web: Web) -> None:
    """POST /mail/invitation: accept, maybe, decline (a REQUEST) or remove (a CANCEL), for a
    message of the signed-in user's own mailbox only."""
    from gk.dav import invites
    from gk.web.calendar import davweb
    from gk.web.webmail import info_or_404, mailbox, uid_param

    _service(web)
    user, mb = mailbox(web)
    folder, uid = forms.text("folder") or "INBOX", uid_param(forms.text("uid"))
    info_or_404(mb, folder, uid)
    choice = forms.text("answer")
    inv = _load_invitation(web, mb, folder, uid, mb.structure(folder, uid))
    if inv is None:
        raise bottle.HTTPError(404, "no invitation in this message")
    back = {"folder": folder, "uid": str(uid)}
    if forms.text("known_sender") != "yes" and _unverified(_verified_sender(web, mb, folder, uid), inv):
        # an answer stores the event and mails a REPLY, a cancel's removal deletes the user's copy:
        # from a sender the box cannot vouch for (a forged organizer, a spammer's calendar link,
        # a stranger who read the invitation's UID and organizer) only once the user says they
        # know it
        back["invitation_error"] = "unconfirmed_cancel" if inv.method == "CANCEL" else "unconfirmed"
        raise bottle.redirect("/mail/read?" + bottle.urlencode(back))
    api = davweb(web)
    try:
        if choice == "remove":
            back["invitation"] = "removed" if invites.remove(api, user.address, inv) else "absent"
        else:
            back["invitation"] = invites.answer(web.ctx, api, user, inv, choice)
    except invites.InviteError as exc:
        key = next((k for k, v in invites.DONE_ERRORS.items() if v == exc.template), "")
        back.pop("invitation", None)
        back["invitation_error"] = key
    raise bottle.redirect("/mail/read?" + bottle.urlencode(back))
