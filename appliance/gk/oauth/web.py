"""The authorization endpoint and the consent page (web UI routes), and the user's list of
connected OAuth clients on the account page.

``GET /oauth/authorize`` checks the request in RFC 6749 §4.1.2.1's order: an unknown
``client_id`` or a ``redirect_uri`` the client did not register is an error *page* (never a
redirect: no open redirector); every other error goes back to the client's ``redirect_uri``
(``error``, ``state``, ``iss``). PKCE ``S256`` is mandatory; ``resource`` (RFC 8707), when
given, must be this box's ``/mcp``. The checked request is stored (``gk.oauth.store``, ten
minutes) and the browser goes to ``/oauth/consent/ID``: a signed-in page (a visitor logs in
first and comes back) showing the client's name, its URL, where it will send the answer and
the access asked, in the user's language, with Allow and Deny buttons (a form with the
session's CSRF token). Allow issues a single-use code bound to the user, the client, the
redirect URI, the PKCE challenge, the scope and the resource.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

import bottle

from gk.ai.tokens import ScopeError
from gk.locale import N_
from gk.oauth.clients import ClientError
from gk.oauth.server import OAuthServer, base_url, oauth_scope, resource_of
from gk.oauth.store import Grant
from gk.web import forms
from gk.web.app import Web
from gk.web.i18n import translator

if TYPE_CHECKING:
    from gk.oauth.store import Client


def _server(web: Web) -> OAuthServer:
    from gk.mcp.service import MCPService

    svc = web.ctx.services.maybe(MCPService)
    if svc is None:
        raise bottle.HTTPError(404, N_("Not found"))
    return svc.oauth


def _back(redirect_uri: str, params: dict[str, str]) -> bottle.HTTPResponse:
    sep = "&" if urlsplit(redirect_uri).query else "?"
    return bottle.HTTPResponse(status=302, headers={"Location": redirect_uri + sep + urlencode(params),
                                                    "Cache-Control": "no-store"})  # fmt: skip


def authorize(web: Web) -> str | bottle.HTTPResponse:
    server = _server(web)
    q = bottle.request.query
    client_id, redirect_uri = q.getunicode("client_id") or "", q.getunicode("redirect_uri") or ""
    try:
        client = server.resolver.resolve(client_id)
    except ClientError as exc:
        bottle.response.status = 400
        return web.render("oauth/error.html", message=web.gettext("This application is unknown or cannot be verified."),
                          detail=str(exc))  # fmt: skip
    if not redirect_uri and len(client.redirect_uris) == 1:
        redirect_uri = client.redirect_uris[0]
    if redirect_uri not in client.redirect_uris:
        bottle.response.status = 400
        return web.render("oauth/error.html", message=web.gettext("This application asked to send the answer to an address it did not register."),
                          detail=redirect_uri)  # fmt: skip
    state = q.getunicode("state") or ""
    issuer = base_url(bottle.request.environ)

    def fail(error: str, description: str) -> bottle.HTTPResponse:
        params = {"error": error, "error_description": description, "iss": issuer}
        if state:
            params["state"] = state
        return _back(redirect_uri, params)

    if q.getunicode("response_type") != "code":
        return fail("unsupported_response_type", "only response_type=code")
    challenge, method = q.getunicode("code_challenge") or "", q.getunicode("code_challenge_method") or ""
    if method != "S256" or not 43 <= len(challenge) <= 128:
        return fail("invalid_request", "PKCE is required: code_challenge with code_challenge_method=S256")
    resource = q.getunicode("resource") or resource_of(bottle.request.environ)
    if not server.resource_allowed(resource, bottle.request.environ):
        return fail("invalid_target", "resource must be this server's /mcp")
    try:
        scope = oauth_scope(q.getunicode("scope") or "")
    except ScopeError:
        return fail("invalid_scope", "unknown scope")
    rid = server.store.save_request({
        "client_id": client.client_id, "redirect_uri": redirect_uri, "state": state, "challenge": challenge,
        "scope": scope, "resource": resource, "issuer": issuer,
    })  # fmt: skip
    raise bottle.redirect(f"/oauth/consent/{rid}", 303)


def _pending(web: Web, rid: str) -> tuple[OAuthServer, dict[str, str], Client]:
    server = _server(web)
    params = server.store.request(rid)
    if params is None:
        raise bottle.HTTPError(404, N_("This authorization request has expired; start again from the application."))
    try:
        client = server.resolver.resolve(params["client_id"])
    except ClientError:
        raise bottle.HTTPError(404, N_("This authorization request has expired; start again from the application.")) from None  # fmt: skip
    return server, params, client


READ_WRITE = N_("read and write (sending, posting and deleting wait for your approval)")
READ_ONLY = N_("read only")


def scope_lines(scope: str, lang: str) -> list[str]:
    """What a grant's scopes allow, one line each, in ``lang``."""
    from gk.web.account import TOKEN_FEATURES

    _ = translator(lang)
    have = set(scope.split())
    lines = []
    for key, label in TOKEN_FEATURES:
        if f"{key}:write" in have:
            lines.append(f"{_(label)}: {_(READ_WRITE)}")
        elif f"{key}:read" in have:
            lines.append(f"{_(label)}: {_(READ_ONLY)}")
    return lines


def consent(web: Web, rid: str) -> str:
    _server_, params, client = _pending(web, rid)
    return web.render(
        "oauth/consent.html",
        rid=rid,
        client=client,
        redirect_host=urlsplit(params["redirect_uri"]).netloc or params["redirect_uri"],
        lines=scope_lines(params["scope"], web.lang()),
        resource=params["resource"],
    )


def consent_submit(web: Web, rid: str) -> bottle.HTTPResponse:
    server, params, client = _pending(web, rid)
    user = web.signed_in()
    server.store.drop_request(rid)  # one answer per request
    answer = {"iss": params["issuer"], **({"state": params["state"]} if params["state"] else {})}
    if forms.text("action") != "allow":
        return _back(params["redirect_uri"], {"error": "access_denied", "error_description": "the user refused", **answer})  # fmt: skip
    code = server.store.new_code(
        user.address, client, params["redirect_uri"], params["challenge"], params["scope"], params["resource"]
    )
    web.ctx.accounts.record_event("oauth_granted", "web", web.client_ip(), user.address,
                                  f"{client.client_id} {params['scope']}")  # fmt: skip
    return _back(params["redirect_uri"], {"code": code, **answer})


def grants_of(web: Web, address: str) -> list[tuple[Grant, str]]:
    """The user's connected OAuth clients and what each may do (the account page)."""
    from gk.mcp.service import MCPService

    svc = web.ctx.services.maybe(MCPService)
    if svc is None:
        return []
    lang = web.lang()
    return [(g, "; ".join(scope_lines(g.scope, lang))) for g in svc.oauth.store.grants(address)]


def revoke(web: Web, grant_id: int) -> None:
    user = web.signed_in()
    if not _server(web).store.delete_grant(grant_id, user.address):  # another user's grant: not found
        raise bottle.HTTPError(404, N_("Not found"))
    web.ctx.accounts.record_event("oauth_revoked", "web", web.client_ip(), user.address, str(grant_id))
    raise bottle.redirect("/account", 303)
