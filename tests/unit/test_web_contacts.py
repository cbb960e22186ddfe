"""The web contacts' reading and writing of vCards (``gk.web.contacts``): an edit replaces the
properties the form shows and keeps the rest (photo, second address, a phone's X- properties)
and the card's VERSION, 3.0 or 4.0."""

from __future__ import annotations

from gk.web import contacts

V4 = (
    "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:erin-1\r\nFN:Erin Four\r\nN:Four;Erin;;;\r\n"
    "TEL;TYPE=cell:+1 555 0100\r\nEMAIL;TYPE=work:erin@work.example\r\n"
    "ADR;TYPE=home:;;1 Main St;Springfield;;12345;USA\r\nADR;TYPE=work:;;2 Office Rd;Shelbyville;;54321;USA\r\n"
    "BDAY:19850412\r\nPHOTO:https://example.org/erin.jpg\r\nX-ABLABEL:friend\r\nEND:VCARD\r\n"
)


def test_reads_a_vcard_4():
    card = contacts.card_from_vcard(V4)
    assert (card.given, card.family, card.name) == ("Erin", "Four", "Erin Four")
    assert card.phones == [("cell", "+1 555 0100")] and card.emails == [("work", "erin@work.example")]
    assert (card.street, card.city, card.code, card.country) == ("1 Main St", "Springfield", "12345", "USA")
    assert card.birthday == "1985-04-12"


def test_edit_keeps_what_the_form_does_not_show():
    card = contacts.card_from_vcard(V4)
    card.full = ""  # the form has no FN field: it is made of the names
    card.family = "Fünf"
    card.emails.append(("home", "erin@home.example"))
    card.city = "Capital City"
    contacts.check(card)
    assert not card.errors
    out = contacts.build_vcard(card, V4).serialize()
    assert "VERSION:4.0" in out and "UID:urn:uuid:erin-1" in out
    assert "FN:Erin Fünf" in out and "N:Fünf;Erin;;;" in out
    assert "erin@home.example" in out and "erin@work.example" in out
    assert "Capital City" in out and "Shelbyville" in out  # the second address is kept
    assert "PHOTO" in out and "X-ABLABEL:friend" in out
    assert out.count("BDAY") == 1


def test_new_card_is_vcard_3_and_refusals():
    card = contacts.Card(given="Ann", emails=[("home", "ann@example.org")], phones=[("cell", "+33 6 00 00 00 00")])
    contacts.check(card)
    out = contacts.build_vcard(card).serialize()
    assert "VERSION:3.0" in out and "FN:Ann" in out and "EMAIL;TYPE=INTERNET,HOME:ann@example.org" in out
    assert "TEL;TYPE=CELL:+33 6 00 00 00 00" in out and "UID:" in out
    bad = contacts.Card(emails=[("home", "nope")], phones=[("cell", "call me")], birthday="1990-13-01")
    contacts.check(bad)
    assert {"given", "email", "phone", "birthday"} <= set(bad.errors)
