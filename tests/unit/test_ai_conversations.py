"""Per-user conversations in ai.sqlite3: titles, search, rename, delete, export, isolation."""

from __future__ import annotations

from gk.ai.conversations import ConversationStore
from gk.ai.tokens import TokenStore

A, B = "alice@example.org", "bob@example.org"


def test_conversations_belong_to_their_owner(tmp_path):
    store = ConversationStore.for_data_dir(tmp_path)
    c = store.create(A, model="tiny.gguf")
    store.add_message(A, c, "system", "Tu es l'assistant de la maison.")
    store.add_message(A, c, "user", "Quels  mails\nde la banque cette semaine ?")
    store.add_message(A, c, "assistant", "Deux : un relevé et une alerte.")
    other = store.create(B, title="courses")
    store.add_message(B, other, "user", "liste de courses: 100% bio")
    assert store.get(A, c).title == "Quels mails de la banque cette semaine ?"  # from the first user message
    assert store.messages_for_model(A, c)[1] == {
        "role": "user",
        "content": "Quels  mails\nde la banque cette semaine ?",
    }
    assert store.get(B, c) is None and store.messages(B, c) == [] and store.export(B, c) is None
    assert not store.rename(B, c, "mine now") and not store.delete(B, c)
    assert [x.id for x in store.search(A, "relevé")] == [c] and store.search(B, "relevé") == []
    assert [x.id for x in store.search(B, "100%")] == [other] and store.search(B, "0%b") == []
    assert store.rename(A, c, "  Banque  ") and store.get(A, c).title == "Banque"
    exported = store.export(A, c)
    assert exported["title"] == "Banque" and [m["role"] for m in exported["messages"]] == [
        "system",
        "user",
        "assistant",
    ]
    store.close()
    # committed (synchronous=FULL) and shared with the token table in the same file
    store = ConversationStore.for_data_dir(tmp_path)
    tokens = TokenStore.for_data_dir(tmp_path)
    tokens.add(A)
    assert [x.id for x in store.list(A)] == [c]
    assert store.delete(A, c) and store.list(A) == [] and store.messages(A, c) == []
    assert len(store.list(B)) == 1
    store.close()
    tokens.close()
