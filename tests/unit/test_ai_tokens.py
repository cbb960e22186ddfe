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


def test_scopes_parse_aliases_and_reject_unknown_names():
    import pytest

    from gk.ai.tokens import ScopeError, format_scopes, parse_scopes

    assert parse_scopes("mail:read") == {"mail:read"}
    # write carries read; aliases expand; order and spaces do not matter
    assert parse_scopes("mail:write") == {"mail:read", "mail:write"}
    assert parse_scopes("chat, calendar:read") == {"chat:read", "chat:write", "calendar:read"}
    assert parse_scopes("contacts:read") == {"calendar:read"}
    assert parse_scopes("read") == {"mail:read", "chat:read", "calendar:read"}
    assert parse_scopes("ai") == {"ai"}
    # bare mcp: the MCP tools, read-only (what --scope mcp always meant); with a feature, only it
    assert parse_scopes("mcp") == {"mcp", "mail:read", "chat:read", "calendar:read"}
    assert parse_scopes("mcp,chat:read") == {"mcp", "chat:read"}
    assert format_scopes(parse_scopes("all")) == (
        "ai,mcp,mail:read,mail:write,chat:read,chat:write,calendar:read,calendar:write"
    )
    for bad in ("", " , ", "mail:admin", "root", "mail:read,sudo"):
        with pytest.raises(ScopeError):
            parse_scopes(bad)


def test_scopes_are_stored_and_checked_per_feature(tmp_path):
    from gk.ai.tokens import has_scope

    store = TokenStore.for_data_dir(tmp_path)
    _, reader = store.add("alice@example.org", scope="mail:read")
    _, writer = store.add("alice@example.org", scope="mcp,mail:write")
    assert store.verify(reader, "mail:read") == "alice@example.org"
    assert store.verify(reader, "mail:write") is None and store.verify(reader, "ai") is None
    info = store.lookup(writer)
    assert info is not None and info.scopes == {"mcp", "mail:read", "mail:write"}
    assert has_scope(info.scopes, "mail:read") and not has_scope(info.scopes, "chat:read")
    assert [t.scope for t in store.list()] == ["mail:read", "mcp,mail:read,mail:write"]
    store.close()


def test_tokens_made_before_feature_scopes_keep_their_meaning(tmp_path):
    """A database at the schema before scopes per feature: an ``mcp`` token reached the
    read-only mail tools, an ``ai`` token the /v1 API only; so they stay."""
    import sqlite3

    from gk.ai.tokens import MIGRATIONS, _digest

    db = sqlite3.connect(tmp_path / "ai.sqlite3")
    for sql in MIGRATIONS[:2]:
        db.executescript(sql)
    for scope, token in (("ai", "gk-old-ai"), ("mcp", "gk-old-mcp"), ("ai,mcp", "gk-old-both")):
        db.execute(
            "INSERT INTO api_tokens(address, token_sha256, scope, created) VALUES (?,?,?,0)",
            ("alice@example.org", _digest(token), scope),
        )
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()
    store = TokenStore.for_data_dir(tmp_path)
    scopes = {t: store.lookup(t).scopes for t in ("gk-old-ai", "gk-old-mcp", "gk-old-both")}  # type: ignore[union-attr]
    assert scopes == {
        "gk-old-ai": {"ai"},
        "gk-old-mcp": {"mcp", "mail:read"},
        "gk-old-both": {"ai", "mcp", "mail:read"},
    }
    store.close()


def test_last_used_is_stamped_at_most_every_few_minutes(tmp_path, monkeypatch):
    import gk.ai.tokens as tokens

    store = TokenStore.for_data_dir(tmp_path)
    _, token = store.add("alice@example.org", scope="mcp")
    assert store.list()[0].last_used == 0  # never used yet
    now = [1_000_000.0]
    monkeypatch.setattr(tokens.time, "time", lambda: now[0])
    assert store.verify(token, scope="mcp") == "alice@example.org"
    assert store.list()[0].last_used == 1_000_000.0
    now[0] += tokens.TOUCH_SECONDS - 1  # within the window: no write
    store.lookup(token)
    assert store.list()[0].last_used == 1_000_000.0
    now[0] += 2
    store.lookup(token)
    assert store.list()[0].last_used == now[0]
    store.close()
