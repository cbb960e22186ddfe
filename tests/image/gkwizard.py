"""A minimal browser for the wizard: cookies, CSRF hidden fields and form posts (stdlib only).

It fills each step's form the way a person would accept the defaults: hidden fields and
pre-filled values are kept, the first option of a select is chosen, unchecked boxes stay
unchecked, and the test's own values override by field name.

Over plain HTTP the wizard is only a page that sends the owner to HTTPS ("Continue over HTTPS",
``id="continue-https"``); like a person, the browser follows it (accepting the self-signed
certificate) and stays on HTTPS. Its link names the guest's port 443, which QEMU forwards to
another host port: give that as ``https_base``.
"""

from __future__ import annotations

import http.cookiejar
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, object]] = []
        self._select: str | None = None
        self._option: list[str] | None = None  # [value or "", text, selected, has_value]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "method": a.get("method", "get").lower(), "fields": {}})
            return
        if not self.forms:
            return
        fields = self.forms[-1]["fields"]
        assert isinstance(fields, dict)
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text").lower()
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    fields[name] = a.get("value", "on")
                elif kind == "radio" and name not in fields:
                    fields[name] = a.get("value", "")
            elif kind not in ("submit", "button", "file"):
                fields[name] = a.get("value", "")
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select:
            self._end_option()
            self._option = [a.get("value", ""), "", "1" if "selected" in a else "", "1" if "value" in a else ""]
        elif tag == "textarea" and name:
            fields[name] = ""

    def handle_data(self, data: str) -> None:
        if self._option is not None:
            self._option[1] += data

    def _end_option(self) -> None:
        """An option's value is its value attribute, else its text; the first or selected one wins."""
        opt, self._option = self._option, None
        if opt is None or not self._select or not self.forms:
            return
        fields = self.forms[-1]["fields"]
        assert isinstance(fields, dict)
        value = opt[0] if opt[3] else opt[1].strip()
        if self._select not in fields or opt[2]:
            fields[self._select] = value

    def handle_endtag(self, tag: str) -> None:
        if tag in ("option", "select"):
            self._end_option()
        if tag == "select":
            self._select = None


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


CONTINUE_HTTPS = re.compile(r'id="continue-https" href="(https://[^/"]+)')


class Browser:
    def __init__(self, base: str, https_base: str = ""):
        self.base = base.rstrip("/")
        self.https_base = https_base.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE  # the box's self-signed certificate, as the owner accepts it
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirect(), urllib.request.HTTPSHandler(context=tls)
        )

    def request(self, path: str, data: dict[str, str] | None = None) -> tuple[int, str, str]:
        """(status, Location, body) of one request; redirects are returned, not followed, except
        the wizard's page that sends a plain-HTTP visitor to HTTPS (the GET is repeated there)."""
        status, location, body = self._request(path, data)
        link = CONTINUE_HTTPS.search(body) if data is None and status == 200 else None
        if link and not self.base.startswith("https:"):
            self.base = self.https_base or link.group(1)
            return self._request(path, data)
        return status, location, body

    def _request(self, path: str, data: dict[str, str] | None) -> tuple[int, str, str]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(self.base + path, data=body)
        try:
            with self.opener.open(req, timeout=60) as r:
                return r.status, r.headers.get("Location", ""), r.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Location", ""), e.read().decode(errors="replace")

    def form_index(self, path: str, action: str) -> int:
        status, location, body = self.request(path)
        assert status == 200, f"GET {path}: {status} {location} {body[:300]}"
        parser = _Forms()
        parser.feed(body)
        posts = [str(f["action"]) for f in parser.forms if f["method"] == "post"]
        assert action in posts, f"GET {path}: no form posting to {action} (forms post to {posts})"
        return posts.index(action)

    def form(self, path: str, index: int = -1) -> tuple[str, dict[str, str]]:
        status, location, body = self.request(path)
        assert status == 200, f"GET {path}: {status} {location} {body[:300]}"
        parser = _Forms()
        parser.feed(body)
        posts = [f for f in parser.forms if f["method"] == "post"]
        assert posts, f"GET {path}: no form in page: {body[:500]}"
        f = posts[index]
        action = str(f["action"]) or path
        return action, dict(f["fields"])  # type: ignore[arg-type]

    def post_forms(self, path: str) -> list[tuple[str, dict[str, str]]]:
        """(action, fields) of every POST form of ``path``, in page order."""
        status, location, body = self.request(path)
        assert status == 200, f"GET {path}: {status} {location} {body[:300]}"
        parser = _Forms()
        parser.feed(body)
        return [(str(f["action"]) or path, dict(f["fields"])) for f in parser.forms if f["method"] == "post"]  # type: ignore[arg-type]

    def submit(self, path: str, values: dict[str, str], index: int = -1, action: str = "") -> tuple[int, str, str]:
        """Fill in and post a form of ``path``: the one posting to ``action`` if given, else the
        ``index``-th (a page may hold several, the header's sign-out form first)."""
        if action:
            index = self.form_index(path, action)
        action, fields = self.form(path, index)
        fields.update(values)
        return self.request(action, fields)
