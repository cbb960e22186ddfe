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
        # RFC 4791 §4.1: no METHOD in a stored object (an iTIP message is not one)
        (
            cal(comp("VEVENT")).replace(b"VERSION:2.0", b"VERSION:2.0\r\nMETHOD:REQUEST"),
            EVENTS,
            "valid-calendar-object-resource",
        ),
        (
            cal(comp("VEVENT")).replace(b"VERSION:2.0", b"METHOD:PUBLISH\r\nVERSION:2.0"),
            EVENTS,
            "valid-calendar-object-resource",
        ),
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


HANDED = [
    cal(comp("VEVENT", extra="RRULE:FREQ=WEEKLY;COUNT=3\r\nEXDATE;VALUE=DATE:20260317\r\n")),
    # Radicale's quirks fixes: DTEND with a zero DURATION (Lightning), EXDATE dates (Evolution)
    cal(comp("VEVENT", extra="DTEND:20260310T100000Z\r\nDURATION:PT0S\r\n")),
    cal(comp("VTODO", extra="RRULE:FREQ=DAILY;UNTIL=20260320T090000Z\r\n")),
    CARD.encode(),
]


@pytest.mark.parametrize("body", HANDED)
def test_radicale_stores_the_checked_parse_as_it_stores_its_own(body: bytes) -> None:
    """``handing``: Radicale's PUT reads the checked body's components instead of parsing it again
    and skips the check already made on them; the item it builds (text, etag, UID, time range)
    is the one it builds from its own parse and check."""
    from radicale import item as radicale_item
    from radicale.app import put

    validate.install()
    tag = "VADDRESSBOOK" if body.startswith(b"BEGIN:VCARD") else "VCALENDAR"

    def stored(parsed: validate.Parsed | None) -> tuple[str, str, str, tuple[int, int]]:
        with validate.handing(parsed):
            objects = radicale_item.read_components(body.decode())
            if parsed is not None:
                assert objects is parsed.handed  # no second parse
            items, *_, error = put.prepare(objects, "/u/c/x", "", False, True, 10**6, 10000, tag, False)
            assert error is None
            (item,) = list(items)
            return item.serialize(), item.etag, item.uid, item.time_range

    parsed = validate.check_put(body, tag, frozenset(), 10000)
    assert parsed is not None
    assert stored(parsed) == stored(None)
    # handed once: a second read of the same text is Radicale's own parse
    with validate.handing(validate.check_put(body, tag, frozenset(), 10000)):
        first = radicale_item.read_components(body.decode())
        assert radicale_item.read_components(body.decode()) is not first


def test_other_text_and_other_checks_are_radicales_own() -> None:
    from radicale import item as radicale_item

    validate.install()
    parsed = validate.check_put(HANDED[0], "VCALENDAR", frozenset(), 10000)
    with validate.handing(parsed):
        other = radicale_item.read_components(cal(comp("VEVENT", "other")).decode())
        assert parsed is not None and parsed.handed is None and [c.uid.value for c in other[0].vevent_list] == ["other"]
        handed = radicale_item.read_components(HANDED[0].decode())
        with pytest.raises(ValueError):  # another tag: checked for real
            radicale_item.check_and_sanitize_items(handed, 10000, tag="VADDRESSBOOK")
        with pytest.raises(ValueError):  # a fresh parse of a bad body: checked for real
            bad = radicale_item.read_components(cal(comp("VEVENT", "a"), comp("VEVENT", "b")).decode())
            radicale_item.check_and_sanitize_items(bad, 10000, tag="VCALENDAR")
    assert validate.PARSED.get() is None
