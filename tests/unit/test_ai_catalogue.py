"""The model catalogue shipped with GK (gk/ai/catalogue.toml) and the wizard's AI step built on it."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.wsgiclient import Client, make_web

from gk import claim, settings
from gk.ai import catalogue
from gk.web import wizard

ADMIN, ADMIN_PW = "owner@test.example", "correct horse battery"


def test_the_shipped_catalogue_is_complete_and_well_formed():
    entries = catalogue.load()
    assert [e.id for e in entries] == [
        "qwen2.5-0.5b-instruct", "llama-3.2-1b-instruct", "gemma-3-1b-it", "qwen2.5-1.5b-instruct",
        "qwen3-1.7b", "llama-3.2-3b-instruct", "qwen2.5-3b-instruct",
    ]  # fmt: skip
    for e in entries:
        assert e.file.endswith(".gguf") and "Q4_K_M" in e.name and e.licence and e.ram_class in (2, 4, 8)
        assert e.tool_format in ("qwen", "llama3", "none") and e.source
        # pinned entries are complete; the others are refused by the downloader (test_ai_download)
        assert e.downloadable == bool(e.sha256 and (e.commit or e.revision) and e.size)
        if e.downloadable:
            assert e.url("https://huggingface.co") == f"https://huggingface.co/{e.repo}/resolve/{e.ref}/{e.file}"
            assert e.approx_mb == round(e.size / 2**20) and e.source
    # every entry has a published hash; one is pinned by hash only (no published commit was found)
    assert all(e.downloadable for e in entries)
    assert {e.id: e.pinned_by for e in entries if e.pinned_by != "commit"} == {"qwen2.5-3b-instruct": "hash"}


def test_an_entry_pinned_by_hash_follows_its_branch_and_says_so():
    entry = catalogue.find(catalogue.load(), "qwen2.5-3b-instruct")
    assert entry is not None and entry.commit == "" and entry.revision == "main"
    assert entry.url("https://hub.example/") == (
        "https://hub.example/bartowski/Qwen2.5-3B-Instruct-GGUF/resolve/main/Qwen2.5-3B-Instruct-Q4_K_M.gguf"
    )
    assert "'main' branch" in entry.mismatch_hint()
    pinned = catalogue.find(catalogue.load(), "qwen2.5-1.5b-instruct")
    assert pinned is not None and pinned.pinned_by == "commit" and pinned.mismatch_hint() == ""


@pytest.mark.parametrize(
    ("ram", "offered", "default"),
    [
        (480, [], None),
        (1850, ["qwen2.5-0.5b-instruct", "llama-3.2-1b-instruct", "gemma-3-1b-it"], "llama-3.2-1b-instruct"),
        (
            3800,
            ["qwen2.5-0.5b-instruct", "llama-3.2-1b-instruct", "gemma-3-1b-it", "qwen2.5-1.5b-instruct", "qwen3-1.7b"],
            "llama-3.2-1b-instruct",
        ),  # fmt: skip
        (7800, [e.id for e in catalogue.load()], "llama-3.2-1b-instruct"),
    ],
)
def test_what_fits_a_board(ram, offered, default):
    entries = catalogue.load()
    assert [e.id for e in catalogue.fitting(entries, ram)] == offered
    chosen = catalogue.default_for(entries, ram)
    assert (chosen.id if chosen else None) == default


def test_a_bad_catalogue_is_refused_with_the_field(tmp_path: Path):
    bad = tmp_path / "cat.toml"
    bad.write_text('[[model]]\nid = "x"\n')
    with pytest.raises(catalogue.CatalogueError, match="missing"):
        catalogue.load(bad)
    good = (Path(catalogue.__file__).with_name("catalogue.toml")).read_text()
    bad.write_text(good.replace('sha256 = "6eb9', 'sha256 = "xxxx', 1))
    with pytest.raises(catalogue.CatalogueError, match="sha256"):
        catalogue.load(bad)
    # a branch only where no commit is pinned, and a plain name (it goes into the URL)
    bad.write_text(good.replace('commit = "41ba', 'revision = "main"\ncommit = "41ba', 1))
    with pytest.raises(catalogue.CatalogueError, match="revision"):
        catalogue.load(bad)
    bad.write_text(good.replace('revision = "main"', 'revision = "../main"', 1))
    with pytest.raises(catalogue.CatalogueError, match="revision"):
        catalogue.load(bad)
    bad.write_text(good.replace("size = 397808192", "size = 0", 1))  # downloadable needs its size
    with pytest.raises(catalogue.CatalogueError, match="size"):
        catalogue.load(bad)


def test_the_wizard_offers_what_fits_and_defaults_to_the_smallest_good_one(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(wizard, "total_ram_mb", lambda: 1850)
    web = make_web(tmp_path)
    code = claim.ensure_setup_code(web.data_dir)
    c = Client(web)
    c.get("/wizard/claim")
    c.post("/wizard/claim", {"code": str(code)})
    c.get("/wizard/admin")
    c.post("/wizard/admin", {"address": ADMIN, "password": ADMIN_PW, "password2": ADMIN_PW})
    for step in ("host", "timezone", "tls", "users", "dns", "outgoing"):
        wizard.mark(web, step)
    page = c.get("/wizard/ai").text
    values = [v for v in ("none", *[e.id for e in catalogue.load()]) if f'value="{v}"' in page]
    assert values == ["none", "qwen2.5-0.5b-instruct", "llama-3.2-1b-instruct", "gemma-3-1b-it"]
    assert 'value="llama-3.2-1b-instruct" checked' in page
    assert c.post("/wizard/ai", {"model": "qwen3-1.7b"}).status == 400  # does not fit this board
    assert c.post("/wizard/ai", {"model": "gemma-3-1b-it"}).status == 303
    assert settings.of(web.data_dir).ai_model() == "gemma-3-1b-it"
