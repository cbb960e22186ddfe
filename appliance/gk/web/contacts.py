"""The web contacts: list, search, view, create, edit and delete vCards, and .vcf import and
export, in the address books CardDAV clients sync (``gk.dav.webapi``, the same rights).

A card is shown and edited through the properties the form knows (name, organisation, emails,
phones, the first postal address, birthday, note); an edit replaces only those and keeps the
rest of the card (photos, other addresses, a phone's own X- properties) and its VERSION (3.0
or 4.0). New cards are vCard 3.0, which every CardDAV client reads.
"""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import bottle

from gk import pools
from gk.dav.webapi import ADDRESSBOOK, Book, DavWeb, Entry, Invalid, NotFound, new_uid
from gk.locale import N_
from gk.web import davfiles, forms
from gk.web.app import Web
from gk.web.calendar import labels, signed_in

EMAIL_TYPES = (("home", N_("Home")), ("work", N_("Work")), ("other", N_("Other")))
PHONE_TYPES = (("cell", N_("Mobile")), ("home", N_("Home")), ("work", N_("Work")), ("other", N_("Other")))
MAX_ROWS = 20  # emails or phones one form may carry


@dataclass
class Card:
    """The form's view of a vCard."""

    given: str = ""
    family: str = ""
    full: str = ""
    org: str = ""
    emails: list[tuple[str, str]] = field(default_factory=list)  # (type, address)
    phones: list[tuple[str, str]] = field(default_factory=list)
    street: str = ""
    city: str = ""
    code: str = ""
    region: str = ""
    country: str = ""
    birthday: str = ""
    note: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.full or " ".join(p for p in (self.given, self.family) if p) or self.org

    @property
    def has_address(self) -> bool:
        return any((self.street, self.city, self.code, self.region, self.country))


@dataclass
class Listed:
    book: Book
    href: str
    name: str
    email: str
    phone: str
    haystack: str


def _type_of(line: Any, choices: tuple[tuple[str, str], ...]) -> str:
    types = [t.lower() for t in line.params.get("TYPE", []) for t in str(t).split(",")]
    for value, _ in choices:
        if value in types:
            return value
    if "mobile" in types or "iphone" in types:
        return "cell"
    return "other"


def _value(card: Any, name: str) -> str:
    line = getattr(card, name, None) if hasattr(card, name) else None
    if line is None:
        return ""
    value = line.value
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def parse_card(text: str) -> Any:
    import vobject  # type: ignore[import-untyped]

    return vobject.readOne(text, allowQP=True)


def card_from_vcard(text: str) -> Card:
    v = parse_card(text)
    c = Card(full=_value(v, "fn"), note=_value(v, "note"))
    if hasattr(v, "n"):
        n = v.n.value
        c.given = str(getattr(n, "given", "") or "")
        c.family = str(getattr(n, "family", "") or "")
    if hasattr(v, "org"):
        org = v.org.value
        c.org = " ".join(str(o) for o in org if o) if isinstance(org, list) else str(org)
    c.emails = [(_type_of(e, EMAIL_TYPES), str(e.value)) for e in getattr(v, "email_list", [])]
    c.phones = [(_type_of(t, PHONE_TYPES), str(t.value)) for t in getattr(v, "tel_list", [])]
    adrs = getattr(v, "adr_list", [])
    if adrs:
        a = adrs[0].value
        c.street = str(getattr(a, "street", "") or "")
        c.city = str(getattr(a, "city", "") or "")
        c.code = str(getattr(a, "code", "") or "")
        c.region = str(getattr(a, "region", "") or "")
        c.country = str(getattr(a, "country", "") or "")
    c.birthday = _iso_birthday(_value(v, "bday"))
    return c


def _iso_birthday(value: str) -> str:
    value = value.strip()
    m = re.fullmatch(r"(\d{4})-?(\d{2})-?(\d{2})(T.*)?", value)
    return f"{m.group(1)}-{m.group(2)}-{m.group(3)}" if m else ""


def read_form() -> Card:
    c = Card(
        given=forms.text("given")[:200],
        family=forms.text("family")[:200],
        full=forms.text("full")[:300],
        org=forms.text("org")[:200],
        street=forms.text("street")[:300],
        city=forms.text("city")[:200],
        code=forms.text("code")[:50],
        region=forms.text("region")[:200],
        country=forms.text("country")[:200],
        birthday=forms.text("birthday"),
        note=forms.raw("note").strip()[:5000],
    )
    email_types, emails = forms.all_of("email_type"), forms.all_of("email")
    for i, address in enumerate(emails[:MAX_ROWS]):
        if address.strip():
            kind = email_types[i] if i < len(email_types) else "other"
            c.emails.append((kind if kind in dict(EMAIL_TYPES) else "other", address.strip()))
    phone_types, phones = forms.all_of("phone_type"), forms.all_of("phone")
    for i, number in enumerate(phones[:MAX_ROWS]):
        if number.strip():
            kind = phone_types[i] if i < len(phone_types) else "other"
            c.phones.append((kind if kind in dict(PHONE_TYPES) else "other", number.strip()))
    return c


def check(c: Card) -> None:
    if not c.name:
        c.errors["given"] = N_("Give a name (or an organisation).")
    for _, address in c.emails:
        if not re.fullmatch(r"[^@\s]+@[^@\s]+", address):
            c.errors["email"] = N_("{address} is not an email address.")
            c.errors["email_param"] = address
            break
    for _, number in c.phones:
        if not re.fullmatch(r"[0-9+().\-/ #*pwPW]{1,40}", number):
            c.errors["phone"] = N_("{number} is not a phone number.")
            c.errors["phone_param"] = number
            break
    if c.birthday:
        try:
            dt.date.fromisoformat(c.birthday)
        except ValueError:
            c.errors["birthday"] = N_("Give a date as YYYY-MM-DD.")


def build_vcard(c: Card, old_text: str = "") -> Any:
    import vobject  # type: ignore[import-untyped]

    if old_text:
        v = parse_card(old_text)
    else:
        v = vobject.vCard()
        v.add("version").value = "3.0"
        v.add("uid").value = new_uid()
    for name in ("fn", "n", "org", "email", "tel", "bday", "note", "rev"):
        while hasattr(v, name):
            v.remove(getattr(v, name))
    v.add("fn").value = c.name
    v.add("n").value = vobject.vcard.Name(family=c.family, given=c.given)
    if c.org:
        v.add("org").value = [c.org]
    for kind, address in c.emails:
        line = v.add("email")
        line.value = address
        line.params["TYPE"] = ["INTERNET", kind.upper()] if kind != "other" else ["INTERNET"]
    for kind, number in c.phones:
        line = v.add("tel")
        line.value = number
        if kind != "other":
            line.params["TYPE"] = [kind.upper()]
    adrs = list(getattr(v, "adr_list", []))
    if c.has_address:
        value = vobject.vcard.Address(street=c.street, city=c.city, code=c.code, region=c.region, country=c.country)
        if adrs:
            adrs[0].value = value
        else:
            v.add("adr").value = value
    elif adrs:
        v.remove(adrs[0])
    if c.birthday:
        v.add("bday").value = c.birthday
    if c.note:
        v.add("note").value = c.note
    v.add("rev").value = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return parse_card(v.serialize())


# -- pages ---------------------------------------------------------------------------------------
def _listed(entry: Entry) -> Listed | None:
    try:
        c = card_from_vcard(entry.text)
    except Exception:
        return None
    hay = " ".join(
        [c.name, c.org, c.note, c.city, *(e for _, e in c.emails), *(p for _, p in c.phones)]
        + ["".join(ch for ch in p if ch.isdigit()) for _, p in c.phones]
    ).lower()
    return Listed(
        entry.book,
        entry.href,
        c.name or "?",
        c.emails[0][1] if c.emails else "",
        c.phones[0][1] if c.phones else "",
        hay,
    )


def listing(entries: list[Entry]) -> list[Listed]:
    """The list rows of ``entries`` (what vobject cannot read is left out). vobject's parse is pure
    Python that never yields: run in the CPU pool, so a large address book keeps no other
    request waiting on the hub."""
    return [row for row in map(_listed, entries) if row is not None]


def contacts_page(web: Web) -> str:
    user, api = signed_in(web)
    q = (bottle.request.query.getunicode("q", default="") or "").strip()[:200]
    books = api.books(user.address, ADDRESSBOOK)
    found = [entry for book in books for entry in api.entries(user.address, book)]
    rows = pools.run_cpu(listing, found) if found else []
    if q:
        words = q.lower().split()
        rows = [r for r in rows if all(w in r.haystack for w in words)]
    rows.sort(key=lambda r: r.name.lower())
    notice = davfiles.imported_notice(web)
    return web.render(
        "contacts/list.html",
        rows=rows,
        q=q,
        books=books,
        writable=[b for b in books if b.writable],
        notice=notice,
        **labels(web),
    )


def _entry_or_404(web: Web, api: DavWeb, user: str, write: bool = False) -> Entry:
    q = bottle.request.query
    book = q.getunicode("book", default="") or forms.text("book")
    href = q.getunicode("href", default="") or forms.text("href")
    try:
        return api.entry(user, book, href, write)
    except NotFound:
        raise bottle.HTTPError(404, N_("Not found")) from None


def contact_view(web: Web) -> str:
    user, api = signed_in(web)
    entry = _entry_or_404(web, api, user.address)
    try:
        card = card_from_vcard(entry.text)
    except Exception:
        raise bottle.HTTPError(404, N_("Not found")) from None
    return web.render("contacts/view.html", card=card, entry=entry, types=dict(EMAIL_TYPES + PHONE_TYPES))


def _form_page(web: Web, card: Card, book: str, href: str, etag: str, books: list[Book], error: str = "") -> str:
    shown = {
        k: web.gettext(v, address=card.errors.get("email_param", ""), number=card.errors.get("phone_param", ""))
        for k, v in card.errors.items()
        if not k.endswith("_param")
    }
    return web.render(
        "contacts/edit.html",
        card=card,
        errors=shown,
        # the input holding the value an error names is the one marked invalid
        bad_email=card.errors.get("email_param", ""),
        bad_phone=card.errors.get("phone_param", ""),
        book=book,
        href=href,
        etag=etag,
        books=books,
        email_types=EMAIL_TYPES,
        phone_types=PHONE_TYPES,
        error=error,
        **labels(web),
    )


def contact_edit(web: Web) -> str:
    user, api = signed_in(web)
    books = [b for b in api.books(user.address, ADDRESSBOOK) if b.writable]
    if bottle.request.query.get("href"):
        entry = _entry_or_404(web, api, user.address, write=True)
        try:
            card = card_from_vcard(entry.text)
        except Exception:
            raise bottle.HTTPError(404, N_("Not found")) from None
        return _form_page(web, card, entry.book.path, entry.href, entry.etag, books)
    return _form_page(web, Card(), books[0].path if books else "", "", "", books)


def contact_save(web: Web) -> Any:
    user, api = signed_in(web)
    book, href, etag = forms.text("book"), forms.text("href"), forms.text("etag")
    card = read_form()
    check(card)
    books = [b for b in api.books(user.address, ADDRESSBOOK) if b.writable]
    if card.errors:
        return _form_page(web, card, book, href, etag, books)
    try:
        old = api.entry(user.address, book, href, write=True).text if href else ""
        saved = api.save(user.address, book, build_vcard(card, old), href=href, etag=etag)
    except NotFound:
        raise bottle.HTTPError(404, N_("Not found")) from None
    except Invalid as e:
        return _form_page(web, card, book, href, etag, books, error=web.error_text(e))
    query = urllib.parse.urlencode({"book": saved.book.path, "href": saved.href})
    raise bottle.redirect("/contacts/contact?" + query, 303)


def contact_delete(web: Web) -> Any:
    user, api = signed_in(web)
    return davfiles.delete_item(web, user, api, "book", "/contacts")


def export(web: Web) -> Any:
    user, api = signed_in(web)
    return davfiles.export(user, api, "book", ADDRESSBOOK, "text/vcard", ".vcf")


def import_file(web: Web) -> Any:
    user, api = signed_in(web)
    return davfiles.import_file(web, user, api, "book", "/contacts")
