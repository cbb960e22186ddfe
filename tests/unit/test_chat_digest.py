"""The chat digest's rules on a real chat store (gk.chat.digest): who a message is for
(mentions as words, the other side of a DM, never the sender), read markers and the opt-out
keep a message out, each (account, message) is taken once however often a round runs, a first
start never mails old history, and the mail itself (headers, EN/FR, quoting limits)."""

from __future__ import annotations

import email
import email.policy

import pytest

from gk.accounts import User
from gk.chat import digest
from gk.chat.core import ChatService
from gk.chat.store import ChatStore, dm_target, now_ms

PEOPLE = {"alice", "bob", "carol", "al"}


@pytest.fixture
def chat(tmp_path):
    svc = ChatService(ChatStore(tmp_path / "chat.sqlite3"), ["general"], lambda name: name in PEOPLE)
    for who in sorted(PEOPLE):
        svc.connected(who)
    yield svc
    svc.stop()


def test_mentions_are_whole_names():
    members = {"alice", "al", "bob"}
    assert digest.mentioned("alice: lunch?", members) == {"alice"}
    assert digest.mentioned("@Alice, and al.", members) == {"alice", "al"}
    assert digest.mentioned("alicia and albert, bobby", members) == set()
    assert digest.mentioned("mail bob@example.org", members) == {"bob"}


def test_first_start_skips_old_history_and_rounds_take_each_message_once(chat):
    chat.post("bob", "alice", "old news")  # before the digest ever ran: never mailed
    digest.ensure_tables(chat.store)
    m1 = chat.post("bob", "#general", "alice: are you coming?")
    chat.post("bob", "#general", "no names here")
    m3 = chat.post("carol", "alice", "ping")
    chat.post("alice", "alice", "a note to myself")
    chat.post("bob", "#general", "carol and bob: hi")  # bob is the sender: only carol
    rnd = digest.collect(chat, now_ms() + 1, lambda a: False)
    assert {a: [m.text for m in ms] for a, ms in rnd.pending.items()} == {
        "alice": ["alice: are you coming?", "ping"],
        "carol": ["carol and bob: hi"],
    }
    fresh = digest.commit(chat.store, rnd)
    assert [m.msgid for m in fresh["alice"]] == [m1.msgid, m3.msgid]
    # the mark moved: the next round finds nothing; replaying the same round records nothing new
    assert digest.collect(chat, now_ms() + 1, lambda a: False).pending == {}
    assert digest.commit(chat.store, rnd) == {}


def test_read_markers_cutoff_and_opt_out(chat):
    digest.ensure_tables(chat.store)
    m1 = chat.post("bob", "alice", "first")
    chat.mark_read("alice", "bob", m1.time)  # alice read the DM up to it
    chat.post("bob", "#general", "carol, look")
    digest.set_wanted(chat.store, "carol", False)
    assert not digest.wanted(chat.store, "carol") and digest.wanted(chat.store, "alice")
    rnd = digest.collect(chat, now_ms() + 1, lambda a: not digest.wanted(chat.store, a))
    assert rnd.pending == {} and digest.commit(chat.store, rnd) == {}
    # a message younger than the cutoff waits for a later round
    late = chat.post("bob", "alice", "second")
    rnd = digest.collect(chat, late.time - 1, lambda a: False)
    assert rnd.pending == {} and digest.commit(chat.store, rnd) == {}
    rnd = digest.collect(chat, late.time, lambda a: False)
    assert [m.text for m in rnd.pending["alice"]] == ["second"]
    assert chat.store.read_marker("alice", dm_target("alice", "bob")) == m1.time


def render(chat, lang: str, n: int = 2) -> email.message.EmailMessage:  # type: ignore[no-untyped-def]
    msgs = [chat.post("bob", "alice", f"message {i} " + "x" * (600 if i == 0 else 3)) for i in range(n)]
    user = User(1, "alice@example.org", False, "Alice", lang, 0.0)
    raw = digest.render(user, msgs, host="box.example", base_url="https://box.example", when=str, lang=lang)
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def test_the_mail_in_english_and_french(chat):
    en = render(chat, "en")
    assert str(en["Subject"]) == "[Chat] 2 unread messages" and en["To"] == "alice@example.org"
    assert en["Auto-Submitted"] == "auto-generated" and "chat@box.example" in en["From"]
    body = en.get_content()
    assert body.startswith("Hello Alice,") and "bob, in a direct message," in body
    assert "message 0 " + "x" * 390 + "…" in body and "x" * 391 not in body  # long messages are cut
    assert "https://box.example/chat" in body and "https://box.example/account" in body
    fr = render(chat, "fr", 1)
    assert str(fr["Subject"]) == "[Chat] 1 message non lu" and fr["Content-Language"] == "fr"
    assert "Bonjour Alice," in fr.get_content() and "en message direct" in fr.get_content()
