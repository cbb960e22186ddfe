"""The web UI's route tables: every page's method, path, handler and policy (``gk.web.app.Route``).

A handler is named ``lazy("module:function")``: its module is imported by the first request to
one of its routes (``gk.web.app.LazyHandler``), so a started ``gk serve`` holds the tables but
none of the pages' modules until someone opens them. Measured on this machine (x86-64, every
feature on): the page modules and what only they import (the DAV web API and the calendar's
event builder, the chat's file store and markupsafe, ``zoneinfo`` with ``sysconfig``'s data, the
MCP write tools) were ~2.6 MB of Python objects in ``tracemalloc`` and ~1.5 MB of an idle
server's RSS; the largest, ``gk.web.calendar``, imports in ~25-40 ms on its first request.
A typo in a name fails at start for the module (``find_spec``) and in
``tests/unit/test_web_routes.py`` for the function (it resolves every handler).

The wizard's routes are its steps' (``gk.web.wizardsteps``); other features' apps are mounted
(``gk.features.Mount``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import bottle

from gk.web.app import ADMIN, ANYONE, USER, Route, lazy

if TYPE_CHECKING:
    from gk.web.app import Web

# gk.web.account
ACCOUNT = (
    Route("GET", "/", lazy("gk.web.account:home"), ANYONE),
    Route("GET", "/login", lazy("gk.web.account:login_form"), ANYONE),
    Route("POST", "/login", lazy("gk.web.account:login_submit"), ANYONE),
    Route("POST", "/logout", lazy("gk.web.account:logout"), ANYONE),
    Route("GET", "/account", lazy("gk.web.account:account"), USER),
    Route("POST", "/account/password", lazy("gk.web.account:change_password"), USER),
    Route("POST", "/account/language", lazy("gk.web.account:set_language"), USER),
    Route("POST", "/account/chat-digest", lazy("gk.web.account:set_chat_digest"), USER),
    Route("POST", "/account/app-passwords", lazy("gk.web.account:add_app_password"), USER),
    Route("POST", "/account/app-passwords/<app_id:int>/delete", lazy("gk.web.account:delete_app_password"), USER),
    Route("POST", "/account/tokens", lazy("gk.web.account:add_token"), USER),
    Route("POST", "/account/tokens/<token_id:int>/delete", lazy("gk.web.account:delete_token"), USER),
)

# gk.web.dashboard
DASHBOARD = (
    Route("GET", "/dashboard", lazy("gk.web.dashboard:dashboard"), ADMIN),
    Route("GET", "/api/status", lazy("gk.web.dashboard:api_status"), ADMIN),
    Route("GET", "/api/mail/queue", lazy("gk.web.dashboard:api_queue"), ADMIN),
)

# gk.web.admin
ADMIN_PAGES = (
    Route("GET", "/admin/users", lazy("gk.web.admin:users"), ADMIN),
    Route("POST", "/admin/users", lazy("gk.web.admin:add_user"), ADMIN),
    Route("POST", "/admin/users/<address>/delete", lazy("gk.web.admin:delete_user"), ADMIN),
    Route("POST", "/admin/users/<address>/password", lazy("gk.web.admin:reset_password"), ADMIN),
    Route("POST", "/admin/users/<address>/profile", lazy("gk.web.admin:save_profile"), ADMIN),
    Route("POST", "/admin/aliases", lazy("gk.web.admin:add_alias"), ADMIN),
    Route("POST", "/admin/aliases/<address>/delete", lazy("gk.web.admin:delete_alias"), ADMIN),
    Route("POST", "/admin/domains", lazy("gk.web.admin:add_domain"), ADMIN),
    Route("POST", "/admin/domains/<name>/delete", lazy("gk.web.admin:delete_domain"), ADMIN),
    Route("GET", "/admin/settings", lazy("gk.web.admin:settings"), ADMIN),
    Route("POST", "/admin/settings", lazy("gk.web.admin:save_settings"), ADMIN),
    Route("POST", "/admin/settings/certificate", lazy("gk.web.admin:save_certificate"), ADMIN),
    Route("POST", "/admin/settings/host", lazy("gk.web.admin:save_host"), ADMIN),
)

# gk.web.backup: the admin's backups (made by gk.backup)
BACKUP = (
    Route("GET", "/admin/backup", lazy("gk.web.backup:page"), ADMIN),
    Route("POST", "/admin/backup/download", lazy("gk.web.backup:download_now"), ADMIN),
    Route("POST", "/admin/backup/schedule", lazy("gk.web.backup:save_schedule"), ADMIN),
    Route("POST", "/admin/backup/now", lazy("gk.web.backup:back_up_now"), ADMIN),
    Route("GET", "/admin/backup/files/<name>", lazy("gk.web.backup:download_kept"), ADMIN),
)

# gk.web.maildelivery
MAIL_DELIVERY = (
    Route("GET", "/admin/mail", lazy("gk.web.maildelivery:mail_delivery"), ADMIN),
    Route("POST", "/admin/mail/check", lazy("gk.web.maildelivery:mail_check"), ADMIN),
    Route("POST", "/admin/mail/queue/<msg_id:int>/retry", lazy("gk.web.maildelivery:queue_retry"), ADMIN),
    Route("POST", "/admin/mail/queue/<msg_id:int>/delete", lazy("gk.web.maildelivery:queue_delete"), ADMIN),
    Route("POST", "/admin/mail/smarthost", lazy("gk.web.maildelivery:mail_route"), ADMIN),
)

# gk.web.diagnosis
DIAGNOSIS = (
    Route("GET", "/admin/diagnosis", lazy("gk.web.diagnosis:page"), ADMIN),
    Route("POST", "/admin/diagnosis", lazy("gk.web.diagnosis:diagnosis_run"), ADMIN),
)

# gk.web.clientsetup
CLIENT_SETUP = (
    Route("GET", "/.well-known/autoconfig/mail/config-v1.1.xml", lazy("gk.web.clientsetup:autoconfig"), ANYONE),
    Route("GET", "/mail/config-v1.1.xml", lazy("gk.web.clientsetup:autoconfig"), ANYONE),
    Route("GET", "/.well-known/acme-challenge/<token>", lazy("gk.web.clientsetup:acme_challenge"), ANYONE),
    # any method: DAVx⁵ and iOS probe with PROPFIND; a PROPFIND on the server root (a client
    # given only the host name) is sent to the DAV root too
    Route("ANY", "/.well-known/caldav", lazy("gk.web.clientsetup:dav_redirect"), ANYONE),
    Route("ANY", "/.well-known/carddav", lazy("gk.web.clientsetup:dav_redirect"), ANYONE),
    Route("PROPFIND", "/", lazy("gk.web.clientsetup:dav_redirect"), ANYONE),
    Route("GET", "/devices", lazy("gk.web.clientsetup:devices"), USER),
    Route("GET", "/devices/gk.mobileconfig", lazy("gk.web.clientsetup:mobileconfig"), USER),
)

# gk.web.approvals
APPROVALS = (
    Route("GET", "/approvals", lazy("gk.web.approvals:list_page"), USER),
    Route("GET", "/approvals/count", lazy("gk.web.approvals:count"), USER),
    Route("GET", "/approvals/<action_id>", lazy("gk.web.approvals:detail"), USER),
    Route("POST", "/approvals/<action_id>/approve", lazy("gk.web.approvals:approve"), USER),
    Route("POST", "/approvals/<action_id>/reject", lazy("gk.web.approvals:reject"), USER),
    Route("GET", "/admin/audit", lazy("gk.web.approvals:admin_audit"), ADMIN),
)

# gk.web.nextsteps: the dashboard's checklist after Finish
NEXT_STEPS = (Route("POST", "/next-steps/dismiss", lazy("gk.web.nextsteps:dismiss"), ADMIN),)

# gk.web.roomsadmin: the chat's rooms (404 while the chat is off)
ROOMS_ADMIN = (
    Route("GET", "/admin/rooms", lazy("gk.web.roomsadmin:rooms"), ADMIN),
    Route("POST", "/admin/rooms", lazy("gk.web.roomsadmin:create_room"), ADMIN),
    Route("POST", "/admin/rooms/<name>", lazy("gk.web.roomsadmin:update_room"), ADMIN),
    Route("POST", "/admin/rooms/<name>/members", lazy("gk.web.roomsadmin:add_member"), ADMIN),
    Route("POST", "/admin/rooms/<name>/delete", lazy("gk.web.roomsadmin:delete_room"), ADMIN),
    Route("GET", "/admin/rooms/<name>/export", lazy("gk.web.roomsadmin:export_room"), ADMIN),
)

# gk.web.webmail: every /mail page is a signed-in user's
WEBMAIL = (
    Route("GET", "/mail", lazy("gk.web.webmail:mail_list"), USER),
    Route("GET", "/mail/read", lazy("gk.web.webmail:read"), USER),
    Route("GET", "/mail/body", lazy("gk.web.webmail:body"), USER),
    Route("GET", "/mail/part", lazy("gk.web.webmail:part"), USER),
    Route("POST", "/mail/flag", lazy("gk.web.webmail:flag"), USER),
    Route("POST", "/mail/move", lazy("gk.web.webmail:move"), USER),
    Route("POST", "/mail/delete", lazy("gk.web.webmail:delete"), USER),
    Route("POST", "/mail/bulk", lazy("gk.web.webmail:bulk"), USER),
    Route("GET", "/mail/folders", lazy("gk.web.webmail:folders_page"), USER),
    Route("POST", "/mail/folders", lazy("gk.web.webmail:folders_change"), USER),
    Route("GET", "/mail/compose", lazy("gk.web.webmail:compose"), USER),
    Route("POST", "/mail/send", lazy("gk.web.webmail:send"), USER),
)

# gk.web.calendar
CALENDAR = (
    Route("GET", "/calendar", lazy("gk.web.calendar:calendar_page"), USER),
    Route("GET", "/calendar/event", lazy("gk.web.calendar:event_form"), USER),
    Route("POST", "/calendar/event", lazy("gk.web.calendar:event_save"), USER),
    Route("POST", "/calendar/event/delete", lazy("gk.web.calendar:event_delete"), USER),
    Route("POST", "/calendar/event/skip", lazy("gk.web.calendar:event_skip"), USER),
    Route("GET", "/calendar/export", lazy("gk.web.calendar:export"), USER),
    Route("POST", "/calendar/import", lazy("gk.web.calendar:import_file"), USER),
    Route("GET", "/calendar/tasks", lazy("gk.web.calendar:tasks_page"), USER),
    Route("POST", "/calendar/tasks", lazy("gk.web.calendar:task_add"), USER),
    Route("POST", "/calendar/tasks/toggle", lazy("gk.web.calendar:task_toggle"), USER),
    Route("POST", "/calendar/tasks/delete", lazy("gk.web.calendar:task_delete"), USER),
)

# gk.web.contacts
CONTACTS = (
    Route("GET", "/contacts", lazy("gk.web.contacts:contacts_page"), USER),
    Route("GET", "/contacts/contact", lazy("gk.web.contacts:contact_view"), USER),
    Route("GET", "/contacts/edit", lazy("gk.web.contacts:contact_edit"), USER),
    Route("POST", "/contacts/edit", lazy("gk.web.contacts:contact_save"), USER),
    Route("POST", "/contacts/delete", lazy("gk.web.contacts:contact_delete"), USER),
    Route("GET", "/contacts/export", lazy("gk.web.contacts:export"), USER),
    Route("POST", "/contacts/import", lazy("gk.web.contacts:import_file"), USER),
)

# gk.web.chat: the web chat (its pages answer 404 while the chat is off)
CHAT = (
    Route("GET", "/chat", lazy("gk.web.chat:index"), USER),
    Route("GET", "/chat/rooms", lazy("gk.web.chat:rooms_page"), USER),
    Route("POST", "/chat/rooms", lazy("gk.web.chat:create_or_join"), USER),
    Route("POST", "/chat/dm", lazy("gk.web.chat:start_dm"), USER),
    Route("GET", "/chat/search", lazy("gk.web.chat:search_page"), USER),
    Route("GET", "/chat/r/<name>", lazy("gk.web.chat:room_page"), USER),
    Route("POST", "/chat/r/<name>/leave", lazy("gk.web.chat:leave"), USER),
    Route("POST", "/chat/r/<name>/invite", lazy("gk.web.chat:invite"), USER),
    Route("POST", "/chat/r/<name>/topic", lazy("gk.web.chat:set_topic"), USER),
    Route("GET", "/chat/dm/<name>", lazy("gk.web.chat:dm_page"), USER),
    Route("GET", "/chat/older", lazy("gk.web.chat:older"), USER),
    Route("GET", "/chat/compose", lazy("gk.web.chat:compose"), USER),
    Route("POST", "/chat/send", lazy("gk.web.chat:send"), USER),
    Route("GET", "/chat/m/<msgid>/edit", lazy("gk.web.chat:edit_form"), USER),
    Route("POST", "/chat/m/<msgid>/edit", lazy("gk.web.chat:edit"), USER),
    Route("POST", "/chat/m/<msgid>/delete", lazy("gk.web.chat:delete"), USER),
    Route("POST", "/chat/m/<msgid>/react", lazy("gk.web.chat:react"), USER),
    # the live timeline (a WebSocket: the page's session cookie; gk.web.chatws)
    Route("GET", "/chat/ws", lazy("gk.web.chatws:live"), USER),
)

# gk.dav.web: /sharing and the webmail's invitation answers (404 while DAV is off)
SHARING = (
    Route("GET", "/sharing", lazy("gk.dav.web:sharing"), USER),
    Route("POST", "/sharing/<collection>", lazy("gk.dav.web:save_sharing"), USER),
    Route("POST", "/mail/invitation", lazy("gk.dav.web:answer_invitation"), USER),
)

# gk.web.assistant
ASSISTANT = (
    Route("GET", "/assistant", lazy("gk.web.assistant:index"), USER),
    Route("POST", "/assistant/new", lazy("gk.web.assistant:new"), USER),
    Route("GET", "/assistant/c/<conv:int>", lazy("gk.web.assistant:conversation"), USER),
    Route("POST", "/assistant/c/<conv:int>/send", lazy("gk.web.assistant:send"), USER),
    Route("GET", "/assistant/c/<conv:int>/stream", lazy("gk.web.assistant:stream"), USER),
    Route("POST", "/assistant/c/<conv:int>/stop", lazy("gk.web.assistant:stop"), USER),
    Route("POST", "/assistant/c/<conv:int>/rename", lazy("gk.web.assistant:rename"), USER),
    Route("POST", "/assistant/c/<conv:int>/delete", lazy("gk.web.assistant:delete"), USER),
    Route("GET", "/assistant/c/<conv:int>/export", lazy("gk.web.assistant:export"), USER),
)

# gk.web.assistant_models
ASSISTANT_MODELS = (
    Route("GET", "/admin/models", lazy("gk.web.assistant_models:index"), ADMIN),
    Route("POST", "/admin/models/pull", lazy("gk.web.assistant_models:pull"), ADMIN),
    Route("GET", "/admin/models/progress", lazy("gk.web.assistant_models:progress"), ADMIN),
    Route("POST", "/admin/models/stop", lazy("gk.web.assistant_models:stop_pull"), ADMIN),
    Route("POST", "/admin/models/use", lazy("gk.web.assistant_models:use"), ADMIN),
    Route("POST", "/admin/models/remove", lazy("gk.web.assistant_models:remove"), ADMIN),
)

# gk.oauth.web: the OAuth consent page (404 while MCP is off)
OAUTH = (
    Route("GET", "/oauth/authorize", lazy("gk.oauth.web:authorize"), ANYONE),
    Route("GET", "/oauth/consent/<rid>", lazy("gk.oauth.web:consent"), USER),
    Route("POST", "/oauth/consent/<rid>", lazy("gk.oauth.web:consent_submit"), USER),
    Route("POST", "/account/oauth/<grant_id:int>/revoke", lazy("gk.oauth.web:revoke"), USER),
)

# gk.web.assistant_tools
ASSISTANT_TOOLS = (
    Route("GET", "/assistant/tools", lazy("gk.web.assistant_tools:page"), USER),
    Route("POST", "/assistant/tools/switch", lazy("gk.web.assistant_tools:switch"), USER),
    Route("POST", "/assistant/tools/servers", lazy("gk.web.assistant_tools:add_server"), USER),
    Route(
        "POST", "/assistant/tools/servers/<server_id:int>/refresh", lazy("gk.web.assistant_tools:refresh_server"), USER
    ),
    Route(
        "POST", "/assistant/tools/servers/<server_id:int>/remove", lazy("gk.web.assistant_tools:remove_server"), USER
    ),
    Route("POST", "/assistant/tools/servers/<server_id:int>/edit", lazy("gk.web.assistant_tools:edit_server"), USER),
)

TABLES: tuple[tuple[Route, ...], ...] = (
    ACCOUNT,
    DASHBOARD,
    ADMIN_PAGES,
    BACKUP,
    MAIL_DELIVERY,
    DIAGNOSIS,
    CLIENT_SETUP,
    APPROVALS,
    NEXT_STEPS,
    ROOMS_ADMIN,
    WEBMAIL,
    CALENDAR,
    CONTACTS,
    CHAT,
    SHARING,
    ASSISTANT,
    ASSISTANT_MODELS,
    OAUTH,
    ASSISTANT_TOOLS,
)

# the chat's files: a mounted app of their own (IRC clients authenticate there with HTTP Basic,
# without a session, so the web UI's CSRF check is off for it; gk.web.chatfiles)
CHAT_FILES = "/chat/files/"
_UPLOAD = lazy("gk.web.chatfiles:upload")
_DOWNLOAD = lazy("gk.web.chatfiles:download")


def chat_files_app(web: Web) -> bottle.Bottle:
    """The files' app, mounted at ``CHAT_FILES`` with the web UI's CSRF check off: each request is
    authenticated by ``gk.web.chatfiles`` (HTTP Basic, or the session and, for the upload, its
    CSRF token)."""
    sub = bottle.Bottle(catchall=True)
    sub.route("/upload", "POST", lambda: _UPLOAD(web))
    sub.route("/<fid>/<name>", ("GET", "HEAD"), lambda fid, name: _DOWNLOAD(web, fid, name))
    for status in (400, 403, 404, 405, 413):
        sub.error(status)(web._error)
    return sub


def install(web: Web) -> None:
    """Every table, then the chat's files app, on ``web`` (the wizard's routes come first:
    ``gk.web.wizardsteps.install``)."""
    for table in TABLES:
        web.add_routes(table)
        if table is CHAT:
            web.mount(CHAT_FILES, chat_files_app(web), csrf_exempt=True)
