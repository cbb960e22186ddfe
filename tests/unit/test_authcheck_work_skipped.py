"""Work the inbound checks skip when its answer is already known, without changing any outcome:
the box's domains are not looked up for a message whose DMARC passed for its one From domain
(the outcome is that pass either way), checks that are off load nothing (pyspf, dnspython), and unsigned
mail does not load dkimpy."""

from __future__ import annotations

import subprocess
import sys

from gk.mail.authcheck.dmarc import OWN_DOMAIN_POLICY, DMARCResult, own_domain


class Recorder:
    def __init__(self, local: set[str]):
        self.local, self.asked = local, []  # type: ignore[var-annotated]

    def __call__(self, domain: str) -> bool:
        self.asked.append(domain)
        return domain in self.local


def test_an_aligned_pass_is_not_looked_up_among_the_boxs_domains() -> None:
    is_local = Recorder({"box.example"})
    passed = DMARCResult("pass", "none", "sender.example")
    assert own_domain(passed, ["sender.example"], is_local) == passed
    ours = DMARCResult("pass", "reject", "box.example")  # SPF or DKIM aligned with the box's domain
    assert own_domain(ours, ["box.example"], is_local) == ours
    assert is_local.asked == []


def test_anything_but_an_aligned_pass_is_still_looked_up() -> None:
    is_local = Recorder({"box.example"})
    for result in (DMARCResult("none", "", "box.example"), DMARCResult("fail", "none", "box.example")):
        out = own_domain(result, ["box.example"], is_local)
        assert (out.result, out.policy, out.from_domain) == ("fail", OWN_DOMAIN_POLICY, "box.example")
    # a pass for one of two From domains, one of them the box's: refused too
    two = own_domain(DMARCResult("pass", "none", "sender.example"), ["sender.example", "box.example"], is_local)
    assert (two.result, two.from_domain) == ("fail", "box.example")
    assert own_domain(DMARCResult("none", "", "other.example"), ["other.example"], is_local).result == "none"
    assert is_local.asked == ["box.example", "box.example", "sender.example", "box.example", "other.example"]


CHECK = """
import sys
from gk.config import DNSConfig
from gk.mail.authcheck import InboundChecker
from gk.mail.dnsresolver import make_resolver

spf, dkim, dmarc = (flag == "1" for flag in sys.argv[1:4])
checker = InboundChecker(
    make_resolver(DNSConfig(nameservers=["127.0.0.1"], port=9, timeout=0.2)),
    "gk.test.example",
    check_spf=spf,
    check_dkim=dkim,
    check_dmarc=dmarc,
)
message = b"From: Ann <ann@sender.example>\\r\\nSubject: hi\\r\\n\\r\\nbody\\r\\n"
outcome = checker.check(message, len(message), "192.0.2.1", "mx.sender.example", "ann@sender.example")
print(outcome.header.decode().replace("\\r\\n", " "))
print(sorted(m for m in ("spf", "dkim", "dns.resolver") if m in sys.modules))
"""


def _run(spf: bool, dkim: bool, dmarc: bool) -> list[str]:
    flags = [str(int(f)) for f in (spf, dkim, dmarc)]
    out = subprocess.run([sys.executable, "-c", CHECK, *flags], capture_output=True, text=True, timeout=120, check=True)
    return out.stdout.splitlines()


def test_with_every_check_off_nothing_is_loaded() -> None:
    header, loaded = _run(False, False, False)
    assert header.strip() == "Authentication-Results: gk.test.example; none"
    assert loaded == "[]"


def test_unsigned_mail_does_not_load_dkimpy() -> None:
    header, loaded = _run(False, True, False)
    assert "dkim=none" in header
    assert "'dkim'" not in loaded and "'spf'" not in loaded


FIRST = """
import sys, threading
import gevent.monkey

gevent.monkey.patch_all()
from gk import pools
from gk.config import DNSConfig
from gk.mail.authcheck import InboundChecker
from gk.mail.dnsresolver import make_resolver

main = threading.get_ident()
seen = []
real = pools.run_cpu


def run_cpu(fn, *args):
    def recorded(*args):
        before = {m for m in ("spf", "dns.resolver", "publicsuffixlist") if m in sys.modules}
        fn(*args)
        after = {m for m in ("spf", "dns.resolver", "publicsuffixlist") if m in sys.modules}
        seen.append((threading.get_ident() != main, sorted(after - before)))

    return real(recorded, *args)


pools.run_cpu = run_cpu
checker = InboundChecker(
    make_resolver(DNSConfig(nameservers=["127.0.0.1"], port=9, timeout=0.2)), "gk.test.example", check_dkim=False
)
message = b"From: Ann <ann@sender.example>\\r\\nSubject: hi\\r\\n\\r\\nbody\\r\\n"
for _ in range(2):
    checker.check(message, len(message), "192.0.2.1", "mx.sender.example", "ann@sender.example")
print(seen)
"""


def test_the_first_check_loads_pyspf_dnspython_and_the_suffix_list_in_the_cpu_pool() -> None:
    out = subprocess.run([sys.executable, "-c", FIRST], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[(True, ['dns.resolver', 'publicsuffixlist', 'spf'])]"
