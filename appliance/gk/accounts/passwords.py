"""argon2id password hashing sized for a 512 MB board, and how many hashes may run at once.

Parameters (``[auth]`` in gk.toml): m = 19 MiB, t = 2, p = 1 — the OWASP-recommended
minimum for argon2id. Why: each running verification holds ``m`` of RAM. Hashes run in the
CPU pool of ``gk.pools`` (one thread per core, from ``gk tune``); with gevent's shared 10-thread
pool, as before, ten logins that missed the credential cache at once held 10 × 19 MiB (measured:
RSS 46 → 235 MB). ``parallel_hashes`` bounds them by memory as well as by cores: a tenth of RAM
(at least 40 MiB) divided by ``m``, at most one per core — 2 on a 512 MB board (38 MiB), 4 on a
4-core 1 GB board (its CPU pool's size), 1 on a 1-core one; the authenticator queues the rest
cooperatively, so argon2 never takes more than its share of the CPU pool.
64 MiB per hash (RFC 9106's second choice) would make two parallel logins cost a quarter of a
512 MB board's budget. t = 2 keeps one verification at about 25 ms on this x86 machine and
~150 ms on a Cortex-A53, so a phone's reconnect stays snappy. A stored hash carries its own
parameters, so raising them later re-hashes on next login.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gk import pools
from gk.config import AuthConfig
from gk.locale import N_

if TYPE_CHECKING:
    import argon2


@dataclass(frozen=True)
class PasswordHasher:
    time_cost: int = 2
    memory_kib: int = 19456
    parallelism: int = 1

    @classmethod
    def from_config(cls, auth: AuthConfig) -> PasswordHasher:
        return cls(auth.argon2_time_cost, auth.argon2_memory_kib, auth.argon2_parallelism)

    def _impl(self) -> argon2.PasswordHasher:
        # argon2-cffi and its cffi bindings (~1.5 MB of RSS) load at the first hash or login,
        # not at start: an idle box has no password to check (issue 11, idle RSS <= 45 MB)
        import argon2

        return argon2.PasswordHasher(
            time_cost=self.time_cost,
            memory_cost=self.memory_kib,
            parallelism=self.parallelism,
            type=argon2.Type.ID,
        )

    def hash(self, password: str) -> str:
        return self._impl().hash(password)

    def verify(self, stored: str, password: str) -> bool:
        from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

        try:
            return self._impl().verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        from argon2.exceptions import InvalidHashError

        try:
            return self._impl().check_needs_rehash(stored)
        except InvalidHashError:
            return True


def parallel_hashes(memory_kib: int, ram_mb: int, cores: int) -> int:
    """How many argon2id hashes of ``memory_kib`` may run at once on a board with ``ram_mb`` and ``cores``."""
    budget_kib = max(40, ram_mb // 10) * 1024
    return max(1, min(cores, budget_kib // max(1, memory_kib)))


MIN_PASSWORD_LENGTH = 8
# zxcvbn's score (0-4) a new password must reach: 0-1 are guessed in under a million tries (a
# common password, a word with a digit, a keyboard walk, the account's own name); 2 takes ~10^8
MIN_SCORE = 2
# the rule as the forms show it: the same one password_problem enforces
PASSWORD_RULE = N_("at least {n} characters, and not a common or easily guessed password")
TOO_GUESSABLE = N_(
    "this password is too easy to guess (a common password, a word with a few digits, a keyboard pattern"
    " or your own name): choose a longer one, for example three or four unrelated words"
)


def password_problem(password: str, context: tuple[str, ...] = ()) -> str | None:
    """Why a new password is unacceptable (in English), or None."""
    problem = password_problem_template(password, context)
    return problem[0].format(**problem[1]) if problem else None


def password_problem_template(password: str, context: tuple[str, ...] = ()) -> tuple[str, dict[str, object]] | None:
    """Why a new password is unacceptable, as a catalog template (``gk.locale``) and its values.
    ``context``: words the password must not lean on (the address's local part and domain)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return N_("password must have at least {n} characters"), {"n": MIN_PASSWORD_LENGTH}
    if len(password) > 1024:
        return N_("password must have at most {n} characters"), {"n": 1024}
    if "\x00" in password or "\n" in password or "\r" in password:
        return N_("password must not contain NUL or line breaks"), {}
    # pure Python, ~50 ms a check (bench/password_check.py): in the CPU pool, not on the hub
    if pools.run_cpu(guess_score, password, context) < MIN_SCORE:
        return TOO_GUESSABLE, {}
    return None


def guess_score(password: str, context: tuple[str, ...] = ()) -> int:
    """zxcvbn's estimate (0 = guessed at once … 4 = very hard): its dictionaries of common passwords
    (the 30,000 most used), English words, names and TV words, plus keyboard walks, dates, repeats and
    ``context``. Imported on first use (bench/password_check.py measures the import's RSS and time);
    only the first 100 characters are scored, as zxcvbn's matching grows faster than linearly and a
    password that long is not guessable anyway."""
    from zxcvbn import zxcvbn

    words = [w for part in context for w in part.replace("@", " ").replace(".", " ").split() if w]
    return int(zxcvbn(password[:100], user_inputs=words)["score"])
