import gevent
import pytest

from gk.accounts import AccountError, AccountStore, Authenticator, LoginThrottle, PasswordHasher
from gk.config import AuthConfig

FAST = PasswordHasher(time_cost=1, memory_kib=8192, parallelism=1)


@pytest.fixture
def store(tmp_path):
    return AccountStore(tmp_path / "accounts.sqlite3", FAST)


def test_hash_is_argon2id_with_configured_cost():
    h = PasswordHasher().hash("correct horse")
    assert h.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert PasswordHasher().verify(h, "correct horse")
    assert not PasswordHasher().verify(h, "wrong horse")


def test_users_domains_aliases_plus_addressing(store):
    store.add_user("Alice@Example.ORG", "password1", admin=True)
    store.add_user("bob@example.org", "password2")
    with pytest.raises(AccountError, match="already exists"):
        store.add_user("alice@example.org", "password3")
    with pytest.raises(AccountError, match="at least 8"):
        store.add_user("carol@example.org", "short")
    with pytest.raises(AccountError, match="not a usable mail address"):
        store.add_user("no-at-sign", "password1")
    assert store.local_domains() == {"example.org"}
    assert store.resolve_recipient("ALICE+news@example.org").address == "alice@example.org"
    store.add_alias("postmaster@example.org", "alice@example.org")
    assert store.resolve_recipient("postmaster@example.org").address == "alice@example.org"
    assert store.resolve_recipient("nobody@example.org") is None
    store.delete_user("alice@example.org")
    assert store.resolve_recipient("postmaster@example.org") is None
    assert [u.address for u in store.list_users()] == ["bob@example.org"]


def test_throttle_delays_then_locks_and_success_clears():
    now = [1000.0]
    cfg = AuthConfig(delay_after_failures=2, max_delay=8, lockout_failures_account=4, lockout_seconds=60)
    t = LoginThrottle(cfg, clock=lambda: now[0])
    assert t.failure("1.2.3.4", "a@x.org") == (0.0, False)
    assert t.failure("1.2.3.4", "a@x.org") == (1.0, False)
    assert t.failure("1.2.3.4", "a@x.org") == (2.0, False)
    delay, locked = t.failure("1.2.3.4", "a@x.org")
    assert locked
    assert t.locked("5.6.7.8", "A@X.org") > 0  # the account is locked from any IP
    now[0] += 61
    assert t.locked("5.6.7.8", "a@x.org") == 0
    t.failure("9.9.9.9", "b@x.org")
    t.success("9.9.9.9", "b@x.org")
    assert t.failure("9.9.9.9", "b@x.org") == (0.0, False)


def test_authenticator_cache_app_passwords_and_events(store):
    store.add_user("alice@example.org", "password1")
    auth = Authenticator(store, LoginThrottle(AuthConfig(delay_after_failures=100)), cache_seconds=60)
    assert auth.login("alice@example.org", "password1", "127.0.0.1", "imap").ok
    assert auth._cache  # verified credential cached (as an HMAC, not the password)
    assert all(b"password1" not in v[0] for v in auth._cache.values())
    assert auth.login("alice@example.org", "password1", "127.0.0.1", "imap").ok
    store.set_password("alice@example.org", "password9")
    assert not auth._cache  # dropped on password change
    assert not auth.login("alice@example.org", "password1", "127.0.0.1", "imap").ok
    store.add_app_password("alice@example.org", "phone", "app-secret-123")
    assert auth.login("alice@example.org", "app-secret-123", "127.0.0.1", "imap").ok
    assert not auth.login("ghost@example.org", "whatever1", "10.0.0.9", "smtp").ok
    events = store.recent_events()
    assert {(e["kind"], e["account"], e["ip"]) for e in events} >= {
        ("login_failed", "alice@example.org", "127.0.0.1"),
        ("login_failed", "ghost@example.org", "10.0.0.9"),
    }


def test_authenticator_locks_out(store):
    store.add_user("alice@example.org", "password1")
    cfg = AuthConfig(delay_after_failures=100, lockout_failures_account=3)
    auth = Authenticator(store, LoginThrottle(cfg))
    for _ in range(3):
        assert not auth.login("alice@example.org", "bad-password", "127.0.0.1", "smtp").ok
    result = auth.login("alice@example.org", "password1", "127.0.0.1", "smtp")
    assert not result.ok and result.locked


def test_verification_runs_off_the_hub(store):
    """While argon2 runs in the threadpool another greenlet keeps running."""
    store.hasher = PasswordHasher()  # real cost
    store.add_user("alice@example.org", "password1")
    auth = Authenticator(store, LoginThrottle(AuthConfig()), cache_seconds=0)
    ticks = []

    def ticker():
        for _ in range(200):
            ticks.append(1)
            gevent.sleep(0.001)

    g = gevent.spawn(ticker)
    assert auth.login("alice@example.org", "password1", "127.0.0.1", "imap").ok
    assert ticks, "the hub was blocked during argon2 verification"
    g.kill()
