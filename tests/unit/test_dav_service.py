"""The DAV component's plain methods and its rights table, without a server: default
collections made on demand (``ensure_user``), and who may do what on which path."""

from __future__ import annotations

import subprocess
import sys
import types

from radicale import config as radicale_config

from gk.config import DAVConfig
from gk.dav.rights import Rights
from gk.dav.service import DEFAULT_COLLECTIONS, DAVService


def test_the_component_module_imports_no_radicale():
    """``gk serve`` imports gk.dav.service at start; Radicale (~18 MB) waits for the first request."""
    code = (
        "import sys, gk.dav.service; "
        "print(sorted(m for m in sys.modules if m.startswith(('radicale', 'vobject', 'gk.dav.storage'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_ensure_user_creates_the_defaults_once(tmp_path):
    ctx = types.SimpleNamespace(
        config=types.SimpleNamespace(dav=DAVConfig()), data_dir=tmp_path, auth=None, services={}
    )
    svc = DAVService(ctx)
    svc.ensure_user("carol@test.example")
    svc.ensure_user("carol@test.example")
    st = svc.storage
    with st.acquire_lock("r"):
        found = list(st.discover("/carol@test.example/", "1"))
    assert [c.path for c in found] == ["carol@test.example"] + [
        f"carol@test.example/{n}" for n in sorted(DEFAULT_COLLECTIONS)
    ]
    tags = {c.path.rsplit("/", 1)[1]: c.get_meta("tag") for c in found[1:]}
    assert tags == {"calendar": "VCALENDAR", "contacts": "VADDRESSBOOK", "tasks": "VCALENDAR"}
    assert found[3].get_meta("C:supported-calendar-component-set") == "VTODO"
    svc.stop(1.0)


def test_rights_owner_only_with_a_share_hook():
    conf = radicale_config.load()
    rights = Rights(conf)
    a = "alice@test.example"
    assert rights.authorization("", set(), "/") == ""
    assert rights.authorization(a, set(), "/") == "R"
    assert rights.authorization(a, set(), f"/{a}/") == "RW"
    assert rights.authorization(a, set(), f"/{a}/calendar/") == "rw"
    assert rights.authorization(a, set(), f"/{a}/calendar/deeper/") == ""
    assert rights.authorization(a, set(), "/bob@test.example/") == ""
    assert rights.authorization(a, set(), "/bob@test.example/calendar/") == ""

    def family(user: str, owner: str, collection: str) -> str:
        return "rw" if (owner, collection) == ("bob@test.example", "family") else "rX"

    shared = Rights(conf, shares=family)
    # rw for its items; "d" forbids deleting the owner's collection itself (Radicale's DELETE)
    assert shared.authorization(a, set(), "/bob@test.example/family/") == "rwd"
    assert shared.authorization(a, set(), "/bob@test.example/calendar/") == "r"  # only r/w pass
    assert shared.authorization(a, set(), "/bob@test.example/") == ""  # never another's principal
