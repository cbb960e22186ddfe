"""Web pages of the DAV feature: the wizard's "Family" calendar step and ``/sharing``, where an
owner picks who may read or write each of their calendars and address books.

The calendar and contacts pages themselves are ``gk.web.calendar*``/``gk.web.contacts*``; these
two only write the sharing table (``gk.dav.defaults``) through the running ``DAVService`` (its
write lock), so they answer 404 when DAV is off.
"""

from __future__ import annotations

import bottle

from gk.dav.defaults import FAMILY, RIGHTS, ShareError
from gk.dav.service import DAVService
from gk.locale import N_
from gk.web import forms
from gk.web.app import USER, Route, Web
from gk.web.wizard import WizardStep, after, mark, page

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


FAMILY_STEP = WizardStep("family", N_("Family calendar"), family_step, skippable=True)


def sharing_page(web: Web, **kw: object) -> str:
    svc = _service(web)
    me = web.signed_in().address
    from gk.dav import defaults

    svc.ensure_user(me)
    collections = [
        (name, tag, title, svc.shares.members(me, name))
        for name, tag, title in defaults.collections_of(svc.db, me)
        if tag in ("VCALENDAR", "VADDRESSBOOK")
    ]
    others = [u.address for u in web.ctx.accounts.list_users() if u.address != me]
    shared_with_me = svc.shares.shared_with(me)
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


ROUTES = (
    Route("GET", "/sharing", sharing, USER),
    Route("POST", "/sharing/<collection>", save_sharing, USER),
)
