"""API tokens: shown once, stored as SHA-256, checked per scope, revocable."""

from __future__ import annotations

import hashlib

from gk.ai.tokens import TokenStore


def test_add_verify_list_delete(tmp_path):
    store = TokenStore.for_data_dir(tmp_path)
    tid, token = store.add("alice@example.org", label="laptop")
    other_id, other = store.add("bob@example.org", scope="ai,mcp")
    assert token.startswith("gk-") and len(token) >= 46 and token != other
    assert store.verify(token) == "alice@example.org"
    assert store.verify(other, scope="mcp") == "bob@example.org"
    assert store.verify(token, scope="mcp") is None
    for wrong in ("", "gk-", token[:-1], token + "x", "Bearer " + token, "gk-" + "a" * 500):
        assert store.verify(wrong) is None
    assert [(t.id, t.address, t.label) for t in store.list("alice@example.org")] == [
        (tid, "alice@example.org", "laptop")
    ]
    assert len(store.list()) == 2
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("ai.sqlite3*"))
    assert token.encode() not in raw and hashlib.sha256(token.encode()).digest() in raw
    store = TokenStore.for_data_dir(tmp_path)  # committed: survives a reopen
    assert store.delete(tid, "bob@example.org") is False
    assert store.delete(tid) is True and store.verify(token) is None
    assert store.verify(other, scope="ai") == "bob@example.org"
    store.close()
