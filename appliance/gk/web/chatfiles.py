"""Files shared in the chat over HTTP: the upload endpoint (``POST /chat/files/upload``) and the files
(``GET /chat/files/<id>/<name>``), over ``gk.chat.files.FileStore``.

Upload, two ways in:
- the web chat's form (multipart, field ``file``, with ``to`` and an optional ``text``): the
  web session and its CSRF token, like every form; the file is shared in ``to`` and a message
  carrying its URL is posted there; the answer is the send box again (an error in it if refused);
- IRC clients through the ISUPPORT token ``draft/FILEHOST`` (the file as the request body, its
  name in ``Content-Disposition``): HTTP Basic with the user's password or an app password (the
  same throttled login as IMAP and SASL); the answer is ``201 Created`` with the file's URL in
  ``Location``. The file becomes readable by a conversation when its uploader posts that URL there.
Larger than ``chat.max_upload_bytes``: ``413`` with a message saying the limit, refused from
``Content-Length`` before the body is read (or as soon as the body passes the limit).

Download: the uploader and the members of a conversation it was shared in (web session, or
HTTP Basic for IRC clients); anyone else gets 404, as for a file that does not exist. Served
with a type from the allow-list (``gk.chat.files.ALLOWED``), ``Content-Disposition: attachment``
for anything but an image, ``X-Content-Type-Options: nosniff`` and a CSP that runs nothing.
"""

from __future__ import annotations

import base64
import hmac
import re
import urllib.parse
from typing import BinaryIO

import bottle

from gk.accounts import User
from gk.chat.core import ChatError, ChatService
from gk.chat.files import ALLOWED, OCTET, FileStore, FileTooLarge, SharedFile
from gk.locale import N_
from gk.web import chat as webchat
from gk.web import forms
from gk.web.app import Web, check_origin

FILE_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"
MULTIPART_SLACK = 64 * 1024
DRAIN_FACTOR = 4  # an oversize web upload up to this many times the limit is read (and dropped) before the refusal  # form fields and boundaries around the file in a web upload
TOO_LARGE = N_("This file is too large: files are limited to {mb} MB.")


def _store(web: Web) -> tuple[ChatService, FileStore]:
    chat = web.ctx.services.maybe(ChatService)
    files = web.ctx.services.maybe(FileStore)
    if chat is None or files is None:
        raise bottle.HTTPError(404, N_("The chat is turned off on this server."))
    return chat, files


def _basic_user(web: Web) -> User | None:
    """The user of an ``Authorization: Basic`` header (password or app password), else None;
    bad credentials are a 401 (after the login throttle's delay)."""
    header = bottle.request.get_header("Authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        login, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        login = password = ""
    if login and password and len(login) <= 320 and len(password) <= 1024:
        if "@" not in login:  # the chat name (IRC clients log in with it): the one user with that local part
            matches = [u.address for u in web.ctx.accounts.list_users() if u.local == login.lower()]
            login = matches[0] if len(matches) == 1 else login
        result = web.ctx.auth.login(login, password, web.client_ip(), "chat")
        if result.ok and result.user is not None:
            return result.user
    raise _unauthorized()


def _unauthorized() -> bottle.HTTPResponse:
    return bottle.HTTPResponse(
        "authentication required\n",
        status=401,
        headers={"WWW-Authenticate": 'Basic realm="GK chat", charset="UTF-8"', "Content-Type": "text/plain"},
    )


def _too_large(web: Web, files: FileStore) -> str:
    return web.gettext(TOO_LARGE, mb=files.max_bytes // (1024 * 1024))


def base_url() -> str:
    parts = bottle.request.urlparts
    return f"{parts.scheme}://{parts.netloc}"


def _filename(disposition: str) -> str:
    """The file name of a Content-Disposition header (RFC 6266: ``filename*`` first)."""
    m = re.search(r"filename\*\s*=\s*([^;]+)", disposition, re.I)
    if m:
        value = m.group(1).strip().strip('"')
        charset, _, rest = value.partition("'")
        _, _, encoded = rest.partition("'")
        try:
            return urllib.parse.unquote(encoded or value, encoding=charset or "utf-8", errors="replace")
        except LookupError:
            return urllib.parse.unquote(encoded or value)
    m = re.search(r'filename\s*=\s*("([^"]*)"|[^;]+)', disposition, re.I)
    if m:
        return (m.group(2) if m.group(2) is not None else m.group(1)).strip()
    return "file"


def upload(web: Web) -> object:
    chat, files = _store(web)
    req = bottle.request
    length = req.content_length if req.content_length >= 0 else None
    user = _basic_user(web)
    if user is not None:  # an IRC client (draft/FILEHOST): the body is the file
        if length is not None and length > files.max_bytes:
            bottle.response.set_header("Connection", "close")
            raise bottle.HTTPResponse(_too_large(web, files) + "\n", status=413, headers={"Content-Type": "text/plain"})
        name = _filename(req.get_header("Content-Disposition", ""))
        try:
            f = files.save(webchat.account_of(web, user), name, req.environ["wsgi.input"], length)
        except FileTooLarge:
            raise bottle.HTTPResponse(
                _too_large(web, files) + "\n", status=413, headers={"Content-Type": "text/plain", "Connection": "close"}
            ) from None
        url = base_url() + _quoted(f)
        raise bottle.HTTPResponse(url + "\n", status=201, headers={"Location": url, "Content-Type": "text/plain"})
    # the web chat's form: the session and its CSRF token
    session_user = web.user()
    if session_user is None:
        raise _unauthorized()
    if length is not None and length > files.max_bytes + MULTIPART_SLACK:
        # refused unstored: the CSRF field is inside the body, but nothing is stored or changed.
        # A browser still sending would see a reset instead of the answer: a body up to a few
        # times the limit is read and dropped first; a larger one is cut off
        if length <= DRAIN_FACTOR * files.max_bytes:
            _drain(req.environ["wsgi.input"], length)
        bottle.response.set_header("Connection", "close")
        webchat.refuse(413)
        return webchat._compose(web, req.query.getunicode("to", default="") or "", None, _too_large(web, files))
    check_origin(req.environ)
    sess = web.session(create=False)
    token = req.forms.get("csrf") or req.get_header("X-CSRF-Token") or ""
    if sess is None or not hmac.compare_digest(sess.csrf.encode(), token.encode()):
        raise bottle.HTTPError(403, N_("Missing or invalid CSRF token; reload the page and try again."))
    account = webchat.account_of(web, session_user)
    to = forms.text("to")
    caption = forms.raw("text").strip()
    try:
        target = chat.resolve(account, to)
    except ChatError as exc:
        webchat.refuse(webchat.status_of(exc))
        return webchat._compose(web, to, None, webchat.refusal(web, exc))
    upload_ = req.files.get("file")
    if upload_ is None:
        webchat.refuse(400)
        return webchat._compose(web, to, None, web.gettext(N_("Choose a file to send.")), caption)
    try:
        f = files.save(account, upload_.raw_filename or "file", upload_.file)
    except FileTooLarge:
        webchat.refuse(413)
        return webchat._compose(web, to, None, _too_large(web, files), caption)
    files.share(f.id, target)
    url = base_url() + _quoted(f)
    try:
        chat.post(account, to, f"{caption} {url}".strip())
    except ChatError as exc:
        webchat.refuse(403)
        return webchat._compose(web, to, None, webchat.refusal(web, exc), caption)
    webchat.back_unless_htmx(to)
    return webchat._compose(web, to)


def _drain(stream: BinaryIO, length: int) -> None:
    while length > 0:
        data = stream.read(min(length, 256 * 1024))
        if not data:
            return
        length -= len(data)


def _quoted(f: SharedFile) -> str:
    return f"/chat/files/{f.id}/" + urllib.parse.quote(f.name)


def download(web: Web, fid: str, name: str) -> object:
    chat, files = _store(web)
    user = _basic_user(web) or web.user()
    if user is None:
        raise _unauthorized()
    f = files.get(fid)
    if f is None or not files.may_read(f, webchat.account_of(web, user), chat):
        raise bottle.HTTPError(404, N_("Not found"))
    ctype = f.ctype if f.ctype in ALLOWED else OCTET
    disposition = "inline" if f.is_image else "attachment"
    quoted = urllib.parse.quote(f.name)
    bottle.request.environ["gk.csp"] = FILE_CSP
    headers = {
        "Content-Type": ctype + ("; charset=utf-8" if ctype == "text/plain" else ""),
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quoted}",
        "Content-Length": str(f.size),
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, max-age=86400",
    }
    if bottle.request.method == "HEAD":
        return bottle.HTTPResponse("", status=200, headers=headers)
    return bottle.HTTPResponse(files.open(f), status=200, headers=headers)
