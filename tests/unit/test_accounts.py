import gevent
import pytest

from gk.accounts import AccountError, AccountStore, Authenticator, LoginThrottle, PasswordHasher
from gk.config import AuthConfig

FAST = PasswordHasher(time_cost=1, memory_kib=8192, parallelism=1)


@pytest.fixture
def store(tmp_path):
    return AccountStore(tmp_path / "accounts.sqlite3", FAST)


def test_local_domains_are_explicit_and_never_a_public_provider(store):
    store.add_user("alice@example.org", "alpha kettle 71", admin=True)  # the first domain needs no confirmation
    assert store.local_domains() == {"example.org"}
    with pytest.raises(AccountError, match="not a mail domain of this box yet") as exc:
        store.add_user("mom@family.example", "bravo kettle 72", new_domain=False)
    assert exc.value.domain == "family.example"  # type: ignore[attr-defined]
    assert store.get_user("mom@family.example") is None and not store.is_local_domain("family.example")
    store.add_user("mom@family.example", "bravo kettle 72", new_domain=True)
    assert store.local_domains() == {"example.org", "family.example"}
    for address in ("mom@gmail.com", "dad@mail.yahoo.fr", "kid@Outlook.COM"):
        with pytest.raises(AccountError, match="public mail provider"):
            store.add_user(address, "charlie kettle 73", new_domain=True)
    with pytest.raises(AccountError, match="public mail provider"):
        store.add_alias("family@gmail.com", "alice@example.org")
    with pytest.raises(AccountError, match="public mail provider"):
        store.add_domain("googlemail.com")
    assert "gmail.com" not in store.local_domains()
    # mail to gmail.com stays outbound: no user, no role address, no local domain
    assert store.resolve_recipient("postmaster@gmail.com") is None
    # a domain stays local with no user left, until removed; one in use cannot be removed
    store.delete_user("mom@family.example")
    assert store.is_local_domain("family.example")
    assert store.list_domains() == [("example.org", 1), ("family.example", 0)]
    with pytest.raises(AccountError, match="still has 1"):
        store.delete_domain("example.org")
    store.delete_domain("family.example")
    assert store.local_domains() == {"example.org"}
    with pytest.raises(AccountError, match="not a domain of this box"):
        store.delete_domain("family.example")


def test_domains_in_use_before_the_upgrade_stay_local(tmp_path):
    import sqlite3

    from gk.accounts.store import MIGRATIONS

    path = tmp_path / "accounts.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0] + MIGRATIONS[1])
    db.execute("PRAGMA user_version = 2")
    db.execute(
        "INSERT INTO users(address, password_hash, created, password_changed) VALUES ('a@one.example', 'x', 1, 1)"
    )
    db.execute("INSERT INTO aliases(source, target) VALUES ('info@two.example', 'a@one.example')")
    db.commit()
    db.close()
    store = AccountStore(path, FAST)
    assert store.local_domains() == {"one.example", "two.example"}


def test_hash_is_argon2id_with_configured_cost():
    h = PasswordHasher().hash("correct horse")
    assert h.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert PasswordHasher().verify(h, "correct horse")
    assert not PasswordHasher().verify(h, "wrong horse")


def test_users_domains_aliases_plus_addressing(store):
    store.add_user("Alice@Example.ORG", "alpha kettle 71", admin=True)
    store.add_user("bob@example.org", "bravo kettle 72")
    with pytest.raises(AccountError, match="already exists"):
        store.add_user("alice@example.org", "charlie kettle 73")
    with pytest.raises(AccountError, match="at least 8"):
        store.add_user("carol@example.org", "short")
    with pytest.raises(AccountError, match="not a usable mail address"):
        store.add_user("no-at-sign", "alpha kettle 71")
    assert store.local_domains() == {"example.org"}
    assert store.resolve_recipient("ALICE+news@example.org").address == "alice@example.org"
    store.add_alias("postmaster@example.org", "alice@example.org")
    assert store.resolve_recipient("postmaster@example.org").address == "alice@example.org"
    assert store.resolve_recipient("nobody@example.org") is None
    store.delete_user("alice@example.org")
    assert store.resolve_recipient("postmaster@example.org") is None
    assert [u.address for u in store.list_users()] == ["bob@example.org"]


def test_throttle_delays_then_locks_the_pair_only_and_success_clears_the_pair():
    now = [1000.0]
    cfg = AuthConfig(delay_after_failures=2, max_delay=8, lockout_failures_account=4, lockout_seconds=60)
    t = LoginThrottle(cfg, clock=lambda: now[0])
    assert t.failure("1.2.3.4", "a@x.org") == (0.0, False)
    assert t.failure("1.2.3.4", "a@x.org") == (1.0, False)
    assert t.failure("1.2.3.4", "a@x.org") == (2.0, False)
    delay, locked = t.failure("1.2.3.4", "a@x.org")
    assert locked
    assert t.locked("1.2.3.4", "A@X.org") == 60  # this client, this account
    assert t.locked("5.6.7.8", "a@x.org") == 0  # anyone else: not locked out by the attacker
    assert t.locked("1.2.3.4", "b@x.org") == 0
    now[0] += 61
    assert t.locked("1.2.3.4", "a@x.org") == 0
    assert t.failure("1.2.3.4", "a@x.org") == (0.0, False)
    for _ in range(3):
        t.failure("1.2.3.4", "a@x.org")
    assert t.locked("1.2.3.4", "a@x.org") == 120  # the second lock of the pair lasts twice as long
    t.failure("9.9.9.9", "b@x.org")
    t.success("9.9.9.9", "b@x.org")
    assert t.failure("9.9.9.9", "b@x.org") == (0.0, False)


def test_throttle_reserves_before_the_check_so_a_burst_gets_no_more_checks():
    """Issue 9 §1.3 (a): 59 simultaneous guesses got 54 checks with a limit of 10."""
    now = [1000.0]
    t = LoginThrottle(AuthConfig(delay_after_failures=3, max_delay=8, lockout_failures_account=10), lambda: now[0])
    burst = [t.admit("1.2.3.4", "a@x.org") for _ in range(59)]
    admitted = [a for a in burst if not a.refused]
    assert len(admitted) == 10
    assert [a.wait for a in admitted] == [0, 0, 0, 1, 3, 7, 15, 23, 31, 39]  # each after the previous delay
    for a in admitted:
        t.done(a, ok=False)
    assert t.admit("1.2.3.4", "a@x.org").refused == 900  # now locked, the right password included


def test_throttle_success_clears_only_its_own_pair():
    """Issue 9 §1.3 (b): a success on one account reset the IP's failures on every account."""
    now = [1000.0]
    cfg = AuthConfig(delay_after_failures=100, lockout_failures_ip=20, lockout_failures_account=10)
    t = LoginThrottle(cfg, lambda: now[0])
    failures = 0
    for _ in range(10):
        ok = t.admit("6.6.6.6", "mallory@x.org", known=True)
        t.done(ok, ok=True)
        for victim in ("a@x.org", "b@x.org", "c@x.org"):
            a = t.admit("6.6.6.6", victim)
            if a.refused:
                continue
            t.done(a, ok=False)
            failures += 1
    assert failures == 20
    assert t.admit("6.6.6.6", "d@x.org").refused > 0  # locked for accounts it is not known to
    assert not t.admit("6.6.6.6", "mallory@x.org", known=True).refused  # its own account still works


def test_throttle_unknown_clients_of_an_attacked_account_queue_and_known_ones_do_not():
    """Issue 9 §1.3 (c): guesses from many clients slow unknown clients down; known ones never wait."""
    now = [1000.0]
    cfg = AuthConfig(delay_after_failures=3, max_delay=8, lockout_failures_account=10)
    t = LoginThrottle(cfg, lambda: now[0])
    for i in range(10):
        t.done(t.admit(f"10.0.0.{i}", "a@x.org"), ok=False)
    waits = [t.admit(f"10.0.1.{i}", "a@x.org") for i in range(6)]
    assert [a.wait for a in waits[:4]] == [0, 1, 3, 7]  # one at a time, growing spacing
    assert all(a.refused for a in waits[4:])  # beyond max_delay: try again later
    owner = t.admit("192.0.2.7", "a@x.org", known=True)
    assert owner.wait == 0 and not owner.refused


def test_client_key_groups_ipv6_by_64_and_unmaps_ipv4():
    from gk.accounts.throttle import client_key

    assert client_key("2001:db8::1") == "2001:db8::1"  # not global (documentation prefix): kept whole
    assert client_key("2a01:4f8:1:2::1") == client_key("2a01:4f8:1:2:aaaa::9") == "2a01:4f8:1:2::/64"
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_key("fe80::1%eth0") == "fe80::1"
    assert client_key("not an ip") == "not an ip"


def test_parallel_hashes_from_memory():
    from gk.accounts.passwords import parallel_hashes

    assert parallel_hashes(19456, ram_mb=430, cores=4) == 2  # a 512 MB board (MemTotal after the GPU's share)
    assert parallel_hashes(19456, ram_mb=950, cores=4) == 4
    assert parallel_hashes(65536, ram_mb=7800, cores=2) == 2
    assert parallel_hashes(19456, ram_mb=200, cores=4) == 2


def test_authenticator_bounds_parallel_argon2_runs(store):
    """Issue 9 §1.3 (d): ten cache-missing logins at once ran ten 19 MiB hashes at once."""
    import threading

    running, peak, lock = [0], [0], threading.Lock()
    real = store.hasher

    class Slow:
        memory_kib = real.memory_kib

        def verify(self, stored, password):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            try:
                return real.verify(stored, password)
            finally:
                with lock:
                    running[0] -= 1

        def __getattr__(self, name):
            return getattr(real, name)

    for i in range(10):
        store.add_user(f"u{i}@example.org", f"lamp orbit {i} gravel")
    store.hasher = Slow()
    auth = Authenticator(store, LoginThrottle(AuthConfig()), cache_seconds=0, parallel=2)
    ticks = []

    def ticker():
        while True:
            ticks.append(len([j for j in jobs if not j.ready()]))
            gevent.sleep(0.001)

    jobs = [
        gevent.spawn(auth.login, f"u{i}@example.org", f"lamp orbit {i} gravel", "127.0.0.1", "imap") for i in range(10)
    ]
    g = gevent.spawn(ticker)
    gevent.joinall(jobs, timeout=120)
    g.kill()
    assert all(j.value.ok for j in jobs)
    assert peak[0] <= 2
    assert any(waiting > 2 for waiting in ticks), "the hub was blocked while logins queued for a hash slot"


def test_authenticator_joins_an_identical_check_in_flight(store):
    store.add_user("alice@example.org", "alpha kettle 71")
    auth = Authenticator(store, LoginThrottle(AuthConfig(delay_after_failures=1)), cache_seconds=0)
    jobs = [gevent.spawn(auth.login, "alice@example.org", "alpha kettle 71", "127.0.0.1", "imap") for _ in range(5)]
    gevent.joinall(jobs, timeout=120)
    assert all(j.value.ok for j in jobs)  # five connections of one mail client: no delay, no lockout


def test_a_locked_out_client_cannot_join_the_owners_check_in_flight(store):
    store.hasher = PasswordHasher()  # real cost: the owner's check is in flight for a while
    store.add_user("alice@example.org", "alpha kettle 71")
    cfg = AuthConfig(delay_after_failures=100, lockout_failures_account=2)
    auth = Authenticator(store, LoginThrottle(cfg), cache_seconds=0)
    for _ in range(2):
        auth.login("alice@example.org", "guess", "203.0.113.9", "imap")
    owner = gevent.spawn(auth.login, "alice@example.org", "alpha kettle 71", "192.0.2.1", "imap")
    gevent.sleep(0)  # the owner's argon2 check now runs in the threadpool
    assert auth._running
    attacker = auth.login("alice@example.org", "alpha kettle 71", "203.0.113.9", "imap")
    assert not attacker.ok and attacker.locked
    assert owner.get(timeout=60).ok


def test_known_clients_are_persisted_and_bounded(store):
    from gk.accounts.known_ips import KnownIPs

    store.add_user("alice@example.org", "alpha kettle 71")
    now = [1_000_000.0]
    known = KnownIPs(store, clock=lambda: now[0])
    for i in range(KnownIPs.KEEP + 2):
        now[0] += 4000
        known.remember("alice@example.org", f"10.0.0.{i}")
    again = KnownIPs(store, clock=lambda: now[0])  # a restart
    assert again.contains("alice@example.org", f"10.0.0.{KnownIPs.KEEP + 1}")
    assert not again.contains("alice@example.org", "10.0.0.0")  # only the most recent
    assert len(store.known_clients("alice@example.org", 0)) == KnownIPs.KEEP
    now[0] += 31 * 86400
    assert not KnownIPs(store, clock=lambda: now[0]).contains("alice@example.org", f"10.0.0.{KnownIPs.KEEP + 1}")


def test_a_known_browser_is_let_in_from_a_locked_address(store):
    """The web login's device token makes the owner's browser a known client wherever it is."""
    store.add_user("alice@example.org", "alpha kettle 71")
    cfg = AuthConfig(delay_after_failures=100, lockout_failures_ip=4, lockout_failures_account=2)
    auth = Authenticator(store, LoginThrottle(cfg))
    first = auth.login("alice@example.org", "alpha kettle 71", "192.0.2.1", "web", device="")
    assert first.ok and len(first.device) >= 24
    assert not auth.login("alice@example.org", "alpha kettle 71", "192.0.2.1", "imap").device  # not a browser: no token
    # someone on a shared network guesses alice's password (locking that address out of her
    # account), then sprays others (locking the address out of every account it does not know)
    for victim in ("alice@example.org", "alice@example.org", "a@x.org", "b@x.org"):
        assert not auth.login(victim, "guess", "198.51.100.9", "smtp").ok
    assert auth.login("alice@example.org", "alpha kettle 71", "198.51.100.9", "web", device="").locked
    forged = auth.login("alice@example.org", "alpha kettle 71", "198.51.100.9", "web", device="made-up-token")
    assert forged.locked  # a token is known only after a login with it
    again = auth.login("alice@example.org", "alpha kettle 71", "198.51.100.9", "web", device=first.device)
    assert again.ok and again.device == first.device


def test_authenticator_cache_app_passwords_and_events(store):
    store.add_user("alice@example.org", "alpha kettle 71")
    auth = Authenticator(store, LoginThrottle(AuthConfig(delay_after_failures=100)), cache_seconds=60)
    assert auth.login("alice@example.org", "alpha kettle 71", "127.0.0.1", "imap").ok
    assert auth._cache  # verified credential cached (as an HMAC, not the password)
    assert all(b"alpha kettle 71" not in v[0] for v in auth._cache.values())
    assert auth.login("alice@example.org", "alpha kettle 71", "127.0.0.1", "imap").ok
    store.set_password("alice@example.org", "delta kettle 79")
    assert not auth._cache  # dropped on password change
    assert not auth.login("alice@example.org", "alpha kettle 71", "127.0.0.1", "imap").ok
    store.add_app_password("alice@example.org", "phone", "app-secret-123")
    assert auth.login("alice@example.org", "app-secret-123", "127.0.0.1", "imap").ok
    assert not auth.login("ghost@example.org", "whatever1", "10.0.0.9", "smtp").ok
    events = store.recent_events()
    assert {(e["kind"], e["account"], e["ip"]) for e in events} >= {
        ("login_failed", "alice@example.org", "127.0.0.1"),
        ("login_failed", "ghost@example.org", "10.0.0.9"),
    }


def test_authenticator_locks_out(store):
    store.add_user("alice@example.org", "alpha kettle 71")
    cfg = AuthConfig(delay_after_failures=100, lockout_failures_account=3)
    auth = Authenticator(store, LoginThrottle(cfg))
    for _ in range(3):
        assert not auth.login("alice@example.org", "bad-password", "127.0.0.1", "smtp").ok
    result = auth.login("alice@example.org", "alpha kettle 71", "127.0.0.1", "smtp")
    assert not result.ok and result.locked


def test_verification_runs_off_the_hub(store):
    """While argon2 runs in the threadpool another greenlet keeps running."""
    store.hasher = PasswordHasher()  # real cost
    store.add_user("alice@example.org", "alpha kettle 71")
    auth = Authenticator(store, LoginThrottle(AuthConfig()), cache_seconds=0)
    ticks = []

    def ticker():
        for _ in range(200):
            ticks.append(1)
            gevent.sleep(0.001)

    g = gevent.spawn(ticker)
    assert auth.login("alice@example.org", "alpha kettle 71", "127.0.0.1", "imap").ok
    assert ticks, "the hub was blocked during argon2 verification"
    g.kill()


def test_throttle_flood_of_fresh_clients_keeps_earned_locks_and_bounded_tables():
    """The old tables were cleared whole at 50,000 keys: flooding fresh addresses wiped every lock."""
    now = [1000.0]
    t = LoginThrottle(AuthConfig(delay_after_failures=100, lockout_failures_account=3), lambda: now[0])
    t.MAX_TRACKED = 100
    for _ in range(3):
        t.done(t.admit("6.6.6.6", "a@x.org"), ok=False)
    assert t.admit("6.6.6.6", "a@x.org").refused
    for i in range(1000):
        t.done(t.admit(f"10.0.{i // 250}.{i % 250}", f"u{i}@x.org"), ok=False)
    assert max(len(t._pairs), len(t._clients), len(t._accounts)) <= 100
    assert t.admit("6.6.6.6", "a@x.org").refused  # still locked


def test_authenticator_records_refusals_once_a_minute_and_survives_a_full_disk(store, monkeypatch):
    import sqlite3

    store.add_user("alice@example.org", "alpha kettle 71")
    auth = Authenticator(store, LoginThrottle(AuthConfig(delay_after_failures=100, lockout_failures_account=2)))
    for _ in range(2):
        auth.login("alice@example.org", "bad-password", "10.1.1.1", "smtp")
    for _ in range(20):
        assert auth.login("alice@example.org", "alpha kettle 71", "10.1.1.1", "smtp").locked
    assert [e["kind"] for e in store.recent_events()].count("login_locked") == 1

    def full(*a, **kw):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store, "record_event", full)
    monkeypatch.setattr(store, "remember_client", full)
    result = auth.login("alice@example.org", "another-bad", "10.2.2.2", "imap")
    assert not result.ok and not result.locked
    assert auth.login("alice@example.org", "alpha kettle 71", "10.2.2.2", "imap").ok
