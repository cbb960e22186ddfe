"""The chat's rooms for the administrator: ``/admin/rooms`` (list, create, topic, public or
private, add a member, export as JSON, delete) and the chat step of the first-boot wizard
(the default rooms, more rooms to create), the chat feature's entry in the wizard's list
(``gk.features``: shown when the chat runs).

Every change goes through the chat core (``ChatService``): members connected over IRC or the
web chat see a new topic, a room turning private or a room deleted at once. A room's export is
``gk chat export ROOM``'s JSON (``gk.chat.export``), the way to archive a room before deleting it.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import bottle

from gk.locale import N_
from gk.web import forms
from gk.web.app import Web
from gk.web.wizard import after, mark, page

if TYPE_CHECKING:
    from gk.chat.core import ChatError, ChatService

# ChatError codes as the page says them (the core's own texts are English, for logs and IRC)
ERRORS = {
    "bad_name": N_("Room names are 1 to 50 of a-z, 0-9, _ . - and start with a letter or a digit."),
    "exists": N_("A room with this name exists already."),
    "no_such_room": N_("No such room."),
    "no_such_user": N_("No such user."),
    "not_allowed": N_("This is a default room of the chat settings: it cannot be deleted."),
}
REFUSED = N_("The chat refused this change.")


def chat_service(web: Web) -> ChatService:
    from gk.chat.core import ChatService

    chat = web.ctx.services.maybe(ChatService)
    if chat is None:
        raise bottle.HTTPError(404, N_("The chat is turned off ([chat] enabled = false)."))
    return chat


def error_text(web: Web, exc: ChatError) -> str:
    return web.gettext(ERRORS.get(exc.code, REFUSED))


def room_rows(chat: ChatService) -> list[dict[str, object]]:
    from gk.chat.store import room_target

    return [
        {
            "name": r.name,
            "private": r.private,
            "topic": r.topic,
            "members": sorted(chat.members(r.name)),
            "messages": chat.store.count(room_target(r.name)),
            "default": r.name in chat.default_rooms,
        }
        for r in chat.rooms()
    ]


def rooms_page(web: Web, **kw: object) -> str:
    chat = chat_service(web)
    return web.render(
        "admin_rooms.html",
        rooms=room_rows(chat),
        users=sorted({u.local for u in web.ctx.accounts.list_users()}),
        errors=kw.pop("errors", {}),
        name=kw.pop("name", ""),
        **kw,
    )


def rooms(web: Web) -> str:
    return rooms_page(web)


def create_room(web: Web) -> str:
    from gk.chat.core import ChatError

    chat = chat_service(web)
    admin = web.signed_in()
    name = forms.text("name").lstrip("#").strip().lower()
    try:
        if chat.room(name) is not None:
            raise ChatError("exists", f"#{name} exists")
        chat.create_room(name, "", private=bool(forms.text("private")))
        topic = forms.text("topic")[:390]
        if topic:
            chat.manage_room(name, admin.local, topic=topic)
        if forms.text("private"):  # a private room nobody is in would be lost: the admin joins it
            chat.add_member(name, admin.local)
    except ChatError as exc:
        bottle.response.status = 400
        return rooms_page(web, errors={"name": error_text(web, exc)}, name=name)
    web.ctx.accounts.record_event("chat_room_created", "web", web.client_ip(), admin.address, f"#{name}")
    return rooms_page(web, notice=web.gettext("Created #{room}.", room=name))


def update_room(web: Web, name: str) -> str:
    from gk.chat.core import ChatError

    chat = chat_service(web)
    admin = web.signed_in()
    try:
        chat.manage_room(name, admin.local, topic=forms.text("topic")[:390], private=bool(forms.text("private")))
    except ChatError as exc:
        raise bottle.HTTPError(404, error_text(web, exc)) from exc
    return rooms_page(web, notice=web.gettext("Saved #{room}.", room=name.lower()))


def add_member(web: Web, name: str) -> str:
    from gk.chat.core import ChatError

    chat = chat_service(web)
    account = forms.text("account").lower()
    try:
        chat.add_member(name, account)
    except ChatError as exc:
        if exc.code == "no_such_room":
            raise bottle.HTTPError(404, error_text(web, exc)) from exc
        bottle.response.status = 400
        return rooms_page(web, errors={"list": error_text(web, exc)})
    return rooms_page(web, notice=web.gettext("{user} is a member of #{room}.", user=account, room=name.lower()))


def delete_room(web: Web, name: str) -> str:
    from gk.chat.core import ChatError

    chat = chat_service(web)
    admin = web.signed_in()
    if not forms.text("confirm"):
        bottle.response.status = 400
        return rooms_page(web, errors={"list": web.gettext("Tick the box to confirm the deletion.")})
    try:
        chat.delete_room(name, admin.local)
    except ChatError as exc:
        if exc.code == "no_such_room":
            raise bottle.HTTPError(404, error_text(web, exc)) from exc
        bottle.response.status = 400
        return rooms_page(web, errors={"list": error_text(web, exc)})
    web.ctx.accounts.record_event("chat_room_deleted", "web", web.client_ip(), admin.address, f"#{name.lower()}")
    return rooms_page(web, notice=web.gettext("Deleted #{room} and its messages.", room=name.lower()))


def export_room(web: Web, name: str) -> bytes:
    from gk.chat import export

    chat = chat_service(web)
    out = io.StringIO()
    try:
        export.write(out, chat.store, name, direct=False)
    except KeyError as exc:
        raise bottle.HTTPError(404, N_("No such room.")) from exc
    bottle.response.content_type = "application/json; charset=utf-8"
    bottle.response.set_header("Content-Disposition", f'attachment; filename="chat-{name.lower()}.json"')
    bottle.response.set_header("Cache-Control", "no-store")
    return out.getvalue().encode()


# -- the wizard's chat step ---------------------------------------------------------------------


def chat_step(web: Web) -> str:
    """The default rooms exist already; the owner may name a few more (one per line or comma).
    Everyone with an account then (the owner, the users step's) joins each new room, as they
    join the default rooms: created without members, the rooms were in nobody's list, not even
    the owner's who had just named them."""
    from gk.chat.core import ChatError
    from gk.web.chat import chat_name

    chat = chat_service(web)
    errors: dict[str, str] = {}
    names = ""
    if bottle.request.method == "POST":
        names = forms.text("rooms")
        wanted = [n.strip().lstrip("#").lower() for n in names.replace(",", "\n").splitlines() if n.strip()]
        try:
            for name in wanted:
                if chat.room(name) is None:
                    chat.create_room(name, "")
                    for user in web.ctx.accounts.list_users():
                        if (account := chat_name(web, user)) is not None:
                            chat.join(name, account)
        except ChatError as exc:
            errors["rooms"] = error_text(web, exc)
            bottle.response.status = 400
        else:
            mark(web, "chat")
            raise bottle.redirect(after(web, "chat"))
    return page(web, "chat", rooms=room_rows(chat), names=names, errors=errors, port=web.ctx.config.chat.irc_port)


def chat_summary(web: Web) -> str:
    """The chat rooms on the wizard's summary."""
    return ", ".join(f"#{r.name}" for r in chat_service(web).rooms()) or web.gettext("none")
