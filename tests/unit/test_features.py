"""The feature list (gk.features) and the service registry (gk.context.Services)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import subprocess
import sys

import pytest

from gk.config import Config
from gk.context import Services, ServiceUnavailable
from gk.features import FEATURES, Auth, Csrf, Mount, commands

CORE_COMMANDS = {"serve", "user", "alias", "domain", "setup", "config"}


def test_feature_names_commands_and_mount_prefixes_are_unique():
    names = [f.name for f in FEATURES]
    assert len(names) == len(set(names)), names
    cmds = [c.name for c in commands()]
    assert len(cmds) == len(set(cmds)), cmds
    assert not CORE_COMMANDS & set(cmds)
    prefixes = ["/" + m.prefix.strip("/") + "/" for f in FEATURES for m in f.mounts]
    assert len(prefixes) == len(set(prefixes)), prefixes


def test_every_config_section_is_a_config_field():
    fields = {f.name for f in dataclasses.fields(Config)}
    sections = {f.name: f.config for f in FEATURES if f.config is not None}
    assert sections and {name: s for name, s in sections.items() if s not in fields} == {}


def test_features_with_mounts_start_before_the_web_that_mounts_them():
    order = [f.name for f in FEATURES]
    mounting = [f.name for f in FEATURES if f.mounts]
    assert mounting and all(f.start is not None for f in FEATURES if f.mounts)
    assert all(order.index(name) < order.index("web") for name in mounting)
    assert order[0] == "mailbox"  # started before every protocol on it, stopped after them


def test_every_command_loads_and_configures_a_parser():
    for command in commands():
        configure, handle = command.load()
        assert callable(handle), command
        configure(argparse.ArgumentParser(prog=f"gk {command.name}"))


def test_a_mount_without_csrf_must_authenticate_each_request():
    with pytest.raises(ValueError, match="authenticate each request"):
        Mount("/x/", lambda svc: lambda environ, start_response: [], Csrf.EXEMPT, Auth.SESSION)
    Mount("/x/", lambda svc: lambda environ, start_response: [], Csrf.CHECKED, Auth.SESSION)


def test_gk_parser_offers_the_core_and_every_feature_command_and_help_imports_no_feature_code():
    code = (
        "import json, sys, gk.cli; p = gk.cli.build_parser(['--help']); "
        "sub = next(a for a in p._actions if a.dest == 'command'); "
        "print(json.dumps([list(sub.choices), sorted(m for m in sys.modules if m.startswith('gk.') and "
        "m.rsplit('.', 1)[-1] in ('cli', 'dnsrecords', 'button_command'))]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    choices, imported = json.loads(out.stdout)
    assert choices == [*sorted(CORE_COMMANDS, key=choices.index), *[c.name for c in commands()]]
    assert set(choices[: len(CORE_COMMANDS)]) == CORE_COMMANDS
    assert imported == ["gk.cli"]


class _Svc:
    def __init__(self, name: str, stopped: list[str], fail: bool = False):
        self.name, self._stopped, self._fail = name, stopped, fail

    def stop(self, grace: float) -> None:
        self._stopped.append(self.name)
        if self._fail:
            raise RuntimeError("boom")


class _Other(_Svc):
    pass


def test_services_are_found_by_class_and_a_missing_one_is_a_clear_error():
    services = Services()
    assert services.maybe(_Svc) is None
    with pytest.raises(ServiceUnavailable, match="_Svc is not running"):
        services.require(_Svc)
    with pytest.raises(TypeError):
        services.maybe("queue")  # type: ignore[arg-type]
    svc = _Svc("a", [])
    services.register("a", svc)
    assert services.require(_Svc) is svc and services.maybe(_Other) is None


def test_stop_all_stops_every_service_last_first_even_after_one_fails(caplog):
    stopped: list[str] = []
    services = Services()
    services.register("first", _Svc("first", stopped))
    services.register("second", _Other("second", stopped, fail=True))
    late = _Svc("late", stopped)
    services.provide(object())  # findable only: not stopped by stop_all
    with caplog.at_level(logging.INFO):
        services.stop_all(1.0, logging.getLogger("test"))
    assert stopped == ["second", "first"]
    assert "error stopping second" in caplog.text and "stopped first" in caplog.text
    assert services.maybe(_Svc) is None and list(services.running()) == []
    services.register("late", late)
    assert services.remove(_Svc) is late and list(services.running()) == []


BLOCK_DNS = (
    "import sys, importlib.abc\n"
    "class Block(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'dns' or name.startswith('dns.'):\n"
    "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
    "sys.meta_path.insert(0, Block())\n"
    "import gk.cli\n"
    "sys.exit(gk.cli.main(sys.argv[1:]))\n"
)


def test_a_command_whose_package_is_missing_says_which_and_the_others_still_run(tmp_path):
    def gk(*args: str) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-c", BLOCK_DNS, *args, "--data-dir", str(tmp_path)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)

    missing = gk("dns", "records", "example.org")
    assert missing.returncode == 1 and "needs the Python package 'dns'" in missing.stderr, missing.stderr
    assert "Traceback" not in missing.stderr
    assert "dns" in gk("--help").stdout  # still listed
    assert gk("claim", "status").returncode == 0


def test_wizard_steps_come_from_the_features_that_started():
    """A feature's wizard step is one entry in its declaration: shown (before the summary) when
    the feature runs, absent when gk.toml turns the feature off."""
    import types

    from gk.features import wizard_steps_for
    from gk.web import wizardsteps

    for feature in FEATURES:
        for module, attr in feature.wizard:  # every declared step loads and is a WizardStep
            import importlib

            assert isinstance(getattr(importlib.import_module(module), attr), wizardsteps.WizardStep)

    def ctx_running(*names: str) -> types.SimpleNamespace:
        services = Services()
        for name in names:
            services.register(name, types.SimpleNamespace(name=name, stop=lambda grace: None))
        return types.SimpleNamespace(services=services)

    with_ai = [s.id for s in wizard_steps_for(ctx_running("mailbox", "ai", "web"))]  # type: ignore[arg-type]
    assert with_ai[-2:] == ["ai", "summary"] and with_ai == [s.id for s in wizardsteps.STEPS]
    without_ai = [s.id for s in wizard_steps_for(ctx_running("mailbox", "web"))]  # type: ignore[arg-type]
    assert "ai" not in without_ai and without_ai[-1] == "summary"
    with_chat = [s.id for s in wizard_steps_for(ctx_running("mailbox", "chat", "ai", "web"))]  # type: ignore[arg-type]
    assert with_chat[-3:] == ["chat", "ai", "summary"]  # the features' list order
