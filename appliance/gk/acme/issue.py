"""``gk acme renew``: obtain a certificate for the host name by ACME HTTP-01 (RFC 8555 §8.3).

Runs as its own short-lived process (see the package docstring); ``gk serve`` must be answering
``/.well-known/acme-challenge/`` on port 80 of that host name for the CA to validate. Progress
goes to stdout, one line per step; any failure exits 1 with the CA's own problem text.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from gk.acme import cert_paths, challenge_dir
from gk.config import Config
from gk.store.files import write_durable


class IssueError(Exception):
    pass


def _ec_key_pem() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _account_key(data_dir: Path):  # type: ignore[no-untyped-def]
    import josepy
    from cryptography.hazmat.primitives import serialization

    path = data_dir / "acme" / "account-key.pem"
    if not path.exists():
        write_durable(path, _ec_key_pem(), 0o600)
    return josepy.JWKEC(key=serialization.load_pem_private_key(path.read_bytes(), password=None))


def issue(config: Config, data_dir: Path, hostname: str, say=print) -> Path:  # type: ignore[no-untyped-def]
    """Order, validate and store a certificate for ``hostname``; returns the certificate path."""
    import datetime

    from acme import challenges, client, crypto_util, errors, messages

    cfg = config.acme
    account_key = _account_key(data_dir)
    net = client.ClientNetwork(account_key, alg=_alg(), user_agent="GK", verify_ssl=cfg.ca_file or True)  # type: ignore[arg-type]  # a CA file path too (requests)
    try:
        directory = client.ClientV2.get_directory(cfg.directory_url, net)
    except Exception as exc:
        raise IssueError(f"the ACME directory {cfg.directory_url} did not answer: {exc}") from exc
    acme = client.ClientV2(directory, net)
    say(f"acme: CA {cfg.directory_url}")
    contact = (f"mailto:{cfg.email}",) if cfg.email else ()
    account_file = data_dir / "acme" / "account.json"
    try:
        regr = acme.new_account(
            messages.NewRegistration.from_data(terms_of_service_agreed=True, email=cfg.email or None)
        )
    except errors.ConflictError as exc:  # this key has an account already: use it
        regr = acme.query_registration(messages.RegistrationResource(uri=exc.location, body=messages.Registration()))
    net.account = regr
    write_durable(account_file, json.dumps({"uri": regr.uri, "contact": list(contact)}).encode(), 0o600)
    say(f"acme: account {regr.uri}")

    cert_path, key_path = cert_paths(data_dir)
    new_key = _ec_key_pem()
    order = acme.new_order(crypto_util.make_csr(new_key, [hostname]))
    tokens = challenge_dir(data_dir)
    tokens.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        for authz in order.authorizations:
            http01 = [c for c in authz.body.challenges if isinstance(c.chall, challenges.HTTP01)]
            if not http01:
                raise IssueError(f"the CA offers no http-01 challenge for {authz.body.identifier.value}")
            chall = http01[0]
            response, validation = chall.response_and_validation(account_key)
            token = chall.chall.encode("token")
            (tokens / token).write_text(validation)
            written.append(tokens / token)
            acme.answer_challenge(chall, response)
            say(f"acme: http-01 challenge for {authz.body.identifier.value} answered")
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=cfg.timeout)
        try:
            order = acme.poll_and_finalize(order, deadline=deadline)
        except errors.ValidationError as exc:
            problems = "; ".join(
                f"{a.body.identifier.value}: {c.error.detail if c.error else c.status}"
                for a in exc.failed_authzrs
                for c in a.body.challenges
                if c.error
            )
            raise IssueError(f"the CA could not validate: {problems}") from exc
        except errors.TimeoutError as exc:
            raise IssueError(f"the CA did not finish within {cfg.timeout:.0f} s") from exc
    finally:
        for path in written:
            path.unlink(missing_ok=True)
    # key first: a certificate without its key is unusable, a key without its certificate is remade
    write_durable(key_path, new_key, 0o600)
    write_durable(cert_path, order.fullchain_pem.encode(), 0o644)
    say(f"acme: certificate for {hostname} saved in {cert_path}")
    return cert_path


def _alg():  # type: ignore[no-untyped-def]
    import josepy

    return josepy.ES256


def main(config: Config, data_dir: Path, hostname: str) -> int:
    try:
        issue(config, data_dir, hostname)
    except IssueError as exc:
        print(f"acme: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # the CA's problem documents and network errors: say them plainly
        print(f"acme: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0
