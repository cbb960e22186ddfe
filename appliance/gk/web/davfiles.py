"""Whole collections as files, for the web calendar (``.ics``) and contacts (``.vcf``): the upload
read within ``dav.max_request_size``, the import into a collection with the "Imported" notice on
the page it returns to, and the export as a download; and an item's deletion from those pages.
One place, so both pages refuse, limit and name files alike; the parsing and the rights are
``gk.dav.webapi``'s.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import Any

import bottle

from gk.accounts import User
from gk.dav.webapi import DavWeb, Invalid, NotFound
from gk.locale import N_
from gk.web import forms
from gk.web.app import Web

IMPORTED = N_("Imported: {created} new, {updated} updated.")


def upload_text(web: Web, name: str = "file") -> str:
    """The uploaded file as text, bounded by ``dav.max_request_size``; Invalid if missing or too large."""
    limit = int(web.ctx.config.dav.max_request_size)
    if (bottle.request.content_length or 0) > limit + 64 * 1024:
        raise Invalid(N_("The file is larger than the limit of {size} bytes."), size=limit)
    upload = bottle.request.files.get(name)
    if upload is None or not getattr(upload, "filename", ""):
        raise Invalid(N_("Choose a file to import."))
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise Invalid(N_("The file is larger than the limit of {size} bytes."), size=limit)
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return str(data.decode(encoding))
        except UnicodeDecodeError:
            continue
    raise Invalid(N_("This file could not be read: {reason}"), reason="encoding")


def export(user: User, api: DavWeb, param: str, tag: str, mime: str, suffix: str) -> bottle.HTTPResponse:
    """The collection named by the query's ``param`` (one of ``tag``'s kind) as a download."""
    try:
        book = api.book(user.address, bottle.request.query.getunicode(param, default="") or "")
        if book.tag != tag:
            raise NotFound(book.path)
        text = api.export_text(user.address, book)
    except NotFound:
        raise bottle.HTTPError(404, N_("Not found")) from None
    name = "".join(ch for ch in f"{book.owner}-{book.name}" if ch.isalnum() or ch in "@.-_") + suffix
    resp = bottle.HTTPResponse(text.encode())
    resp.set_header("Content-Type", f"{mime}; charset=utf-8")
    resp.set_header("Content-Disposition", f'attachment; filename="{name}"')
    return resp


def import_file(web: Web, user: User, api: DavWeb, param: str, back: str) -> Any:
    """The uploaded file into the collection named by the form's ``param``; back to ``back`` with
    the counts (``imported_notice`` says them), or a 400 page that says why nothing was imported."""
    try:
        text = upload_text(web)
        created, updated = api.import_text(user.address, forms.text(param), text)
    except NotFound:
        raise bottle.HTTPError(404, N_("Not found")) from None
    except Invalid as e:
        bottle.response.status = 400
        return web.render("calendar/import_refused.html", message=web.error_text(e), back=back)
    raise bottle.redirect(back + "?" + urllib.parse.urlencode({"imported": created, "updated": updated}), 303)


def imported_notice(web: Web) -> str:
    """The "Imported: N new, M updated." notice when the page was reached from ``import_file``, else ""."""
    query = bottle.request.query
    created, updated = query.get("imported"), query.get("updated", "0")
    if created is None or not (created.isdigit() and updated.isdigit()):
        return ""
    return web.gettext(IMPORTED, created=int(created), updated=int(updated))


def delete_item(
    web: Web, user: User, api: DavWeb, param: str, back: str, refused: Callable[[str], Any] | None = None
) -> Any:
    """Deletes the item the form names (collection ``param``, ``href``, ``etag``) and goes back to
    ``back``; an item changed since the page was shown is refused with 409, or by ``refused``."""
    try:
        api.delete(user.address, forms.text(param), forms.text("href"), forms.text("etag"))
    except NotFound:
        raise bottle.HTTPError(404, N_("Not found")) from None
    except Invalid as e:
        if refused is None:
            raise bottle.HTTPError(409, web.error_text(e)) from None
        return refused(web.error_text(e))
    raise bottle.redirect(back, 303)
