"""The translation catalog (gk.locale, issue 10 part 6): every user-visible string extracted
from the sources has a French translation, the committed .mo is the compiled .po, and each
translation keeps its msgid's {placeholders}. Extraction is Babel's own, in-process, with the
repository's babel.cfg: what `make i18n` extracts is what is checked."""

from __future__ import annotations

import gettext
import string
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
GK = ROOT / "appliance" / "gk"
LOCALE = GK / "locale"
LANGS = ["fr"]
# Paths exempt from the coverage check (none: the webmail joined the catalog when its rework landed).
NOT_YET: tuple[str, ...] = ()


def extracted() -> dict[str, set[str]]:
    """msgid -> the files (relative to appliance/gk) it is extracted from."""
    with open(ROOT / "babel.cfg") as f:
        method_map, options_map = parse_mapping_cfg(f, str(ROOT / "babel.cfg"))
    keywords = {**DEFAULT_KEYWORDS, "N_": None}
    out: dict[str, set[str]] = {}
    for filename, _lineno, message, _comments, _context in extract_from_dir(
        str(GK), method_map, options_map, keywords=keywords
    ):
        for msgid in message if isinstance(message, tuple) else (message,):
            if msgid:
                out.setdefault(msgid, set()).add(filename.replace("\\", "/"))
    return out


def po(lang: str):  # type: ignore[no-untyped-def]
    with open(LOCALE / lang / "LC_MESSAGES" / "gk.po", "rb") as f:
        return read_po(f, locale=lang)


@pytest.mark.parametrize("lang", LANGS)
def test_every_extracted_string_is_translated(lang: str) -> None:
    found = extracted()
    assert len(found) > 200, "extraction found too little: babel.cfg or keywords broken?"
    catalog = po(lang)
    missing = []
    for msgid, files in sorted(found.items()):
        if all(f.startswith(NOT_YET) for f in files):
            continue
        message = catalog.get(msgid)
        if message is None or not message.string or message.fuzzy:
            missing.append(f"{msgid!r} ({', '.join(sorted(files))})")
    assert not missing, (
        f"{len(missing)} string(s) without a {lang} translation (run `make i18n`, then translate):\n"
        + "\n".join(missing)
    )


@pytest.mark.parametrize("lang", LANGS)
def test_committed_mo_is_the_compiled_po(lang: str, tmp_path: Path) -> None:
    compiled = tmp_path / "gk.mo"
    with open(compiled, "wb") as f:
        write_mo(f, po(lang))
    with open(compiled, "rb") as fresh, open(LOCALE / lang / "LC_MESSAGES" / "gk.mo", "rb") as committed:
        want = gettext.GNUTranslations(fresh)._catalog  # type: ignore[attr-defined]
        have = gettext.GNUTranslations(committed)._catalog  # type: ignore[attr-defined]
    stale = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k) and k)
    assert not stale, f"gk.mo differs from gk.po (run `make i18n`): {stale[:10]}"


def fields(text: str) -> list[str]:
    return sorted(name for _, name, _, _ in string.Formatter().parse(text) if name is not None)


@pytest.mark.parametrize("lang", LANGS)
def test_translations_keep_the_placeholders(lang: str) -> None:
    wrong = []
    for message in po(lang):
        if not message.id or not message.string:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strs = message.string if isinstance(message.string, tuple) else (message.string,)
        for s in strs:
            try:
                if fields(s) != fields(ids[0]):
                    wrong.append(f"{ids[0]!r} -> {s!r}")
                s.format(**{name: 1 for name in fields(s)})  # the format specs ({m:02d}) work too
            except ValueError as exc:  # an unbalanced brace would crash str.format at run time
                wrong.append(f"{s!r}: {exc}")
    assert not wrong, "\n".join(wrong)


def test_server_reads_the_mo_with_the_standard_library_only() -> None:
    code = (
        "import sys\n"
        "from gk.web import i18n\n"
        "fr = i18n.translator('fr')\n"
        "assert fr('Claim this server') == 'Prendre possession de ce serveur', fr('Claim this server')\n"
        "assert fr('The host name is {host}', host='a.b') == \"Le nom d'hôte est a.b\"\n"
        "assert i18n.translator('en')('Claim this server') == 'Claim this server'\n"
        "assert fr('') == '' and fr('not in the catalog') == 'not in the catalog'\n"
        "assert i18n.known('fr', 'Dashboard') and not i18n.known('fr', 'not in the catalog')\n"
        "assert 'babel' not in sys.modules, 'the server must not import Babel'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_no_python_dict_catalogue_left() -> None:
    from gk.web import i18n

    assert not hasattr(i18n, "FR") and not hasattr(i18n, "CATALOGUES")
