"""``gk.dav.validate``: which PUT bodies a calendar or an address book refuses, and with which
RFC 4791 §5.3.2.1 / RFC 6352 §6.3.2.1 precondition (the server's answer is tested over HTTPS in
``tests/integration/test_dav_caldav.py``)."""

from __future__ import annotations

import pytest

from gk.dav import validate

HEAD = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n"
EVENTS = frozenset({"VEVENT"})


def comp(kind: str, uid: str = "u1", extra: str = "") -> str:
    uid_line = f"UID:{uid}\r\n" if uid else ""
    return f"BEGIN:{kind}\r\n{uid_line}DTSTAMP:20260101T000000Z\r\nDTSTART:20260310T090000Z\r\n{extra}END:{kind}\r\n"


def cal(*parts: str) -> bytes:
    return (HEAD + "".join(parts) + "END:VCALENDAR\r\n").encode()


CARD = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c1\r\nFN:Carol\r\nN:;Carol;;;\r\nEND:VCARD\r\n"


@pytest.mark.parametrize(
    ("body", "components", "precondition"),
    [
        (cal(), EVENTS, "valid-calendar-object-resource"),
        (cal(comp("VEVENT", "a"), comp("VEVENT", "b")), EVENTS, "valid-calendar-object-resource"),
        (cal(comp("VEVENT"), comp("VTODO")), frozenset(), "valid-calendar-object-resource"),
        (cal(comp("VEVENT", "")), EVENTS, "valid-calendar-object-resource"),
        (cal(comp("VTODO")), EVENTS, "supported-calendar-component"),
        (cal(comp("VEVENT")), frozenset({"VTODO"}), "supported-calendar-component"),
        (b"BEGIN:VCALENDAR\r\nnot a line\r\n", EVENTS, "valid-calendar-data"),
        (CARD.encode(), EVENTS, "valid-calendar-data"),
        (cal(comp("VEVENT")) * 2, EVENTS, "valid-calendar-data"),
        (cal(comp("VEVENT", extra="RRULE:FREQ=SOMETIMES\r\n")), EVENTS, "valid-calendar-data"),
    ],
)
def test_calendar_refusals(body: bytes, components: frozenset[str], precondition: str) -> None:
    with pytest.raises(validate.Refused) as refused:
        validate.check_put(body, "VCALENDAR", components, 10000)
    assert (refused.value.ns, refused.value.name) == (validate.CALDAV_NS, precondition)


def test_calendar_objects_that_pass() -> None:
    master = comp("VEVENT", extra="RRULE:FREQ=WEEKLY;COUNT=3\r\n")
    moved = comp("VEVENT", extra="RECURRENCE-ID:20260317T090000Z\r\n")
    tz = "BEGIN:VTIMEZONE\r\nTZID:X\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\nTZOFFSETFROM:+0000\r\nTZOFFSETTO:+0000\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    for body, components in (
        (cal(master, moved), EVENTS),  # one UID, its override: one object resource
        (cal(tz, comp("VEVENT")), EVENTS),
        (cal(comp("VTODO")), frozenset()),  # no supported set: any component
        (cal(comp("VJOURNAL")), frozenset({"VEVENT", "VJOURNAL"})),
    ):
        validate.check_put(body, "VCALENDAR", components, 10000)
    validate.check_put(b"\xff\xfe not utf-8", "VCALENDAR", EVENTS, 10000)  # left to Radicale's decoding


@pytest.mark.parametrize(
    "body",
    [
        b"",
        (CARD + CARD.replace("c1", "c2")).encode(),
        CARD.replace("UID:c1\r\n", "").encode(),
        cal(comp("VEVENT")),
        b"BEGIN:VCARD\r\nnot a line\r\n",
    ],
)
def test_address_book_refusals(body: bytes) -> None:
    with pytest.raises(validate.Refused) as refused:
        validate.check_put(body, "VADDRESSBOOK", frozenset(), 10000)
    assert (refused.value.ns, refused.value.name) == (validate.CARDDAV_NS, "valid-address-data")


def test_a_single_card_passes_and_other_collections_are_not_checked() -> None:
    validate.check_put(CARD.encode(), "VADDRESSBOOK", frozenset(), 10000)
    validate.check_put(b"anything", "", frozenset(), 10000)
