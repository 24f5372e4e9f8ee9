"""Translation catalogs: one Babel domain per area of the UI, so teams never edit one file at once.

python scripts/i18n.py compile          compile every webui/translations/<lang>/LC_MESSAGES/*.po
python scripts/i18n.py extract DOMAIN PATH...
                                        extract messages from PATHs into DOMAIN's .pot and
                                        update (or create) its ja and en catalogs
python scripts/i18n.py check            exit 1 when a message used in the code has no Japanese
                                        translation in any domain (or a ja entry is fuzzy)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "webui" / "translations"
LANGS = ("ja", "en")
PYBABEL = str(Path(sys.executable).parent / "pybabel")
METHODS = [("**.py", "python"), ("**.html", "jinja2")]
KEYWORDS = {
    "_": None,
    "gettext": None,
    "ngettext": (1, 2),
    "_l": None,
    "lazy_gettext": None,
    "N_": None,
}


def domains() -> list[str]:
    """Every domain with a Japanese catalog, "messages" first (Flask-Babel merges them in order)."""
    names = sorted(p.stem for p in (TRANSLATIONS / "ja" / "LC_MESSAGES").glob("*.po"))
    return sorted(names, key=lambda n: n != "messages")


def compile_all() -> None:
    for domain in domains():
        for lang in LANGS:
            po = TRANSLATIONS / lang / "LC_MESSAGES" / f"{domain}.po"
            if po.exists():
                subprocess.run(
                    [PYBABEL, "-q", "compile", "-D", domain, "-d", str(TRANSLATIONS), "-l", lang],
                    check=True,
                )


def extract(domain: str, paths: list[str]) -> None:
    pot = TRANSLATIONS / f"{domain}.pot"
    subprocess.run(
        [
            PYBABEL,
            "-q",
            "extract",
            "-F",
            str(ROOT / "babel.cfg"),
            "-k",
            "_l",
            "--no-location",
            "--sort-output",
            "--omit-header",
            "-o",
            str(pot),
            *paths,
        ],
        check=True,
    )
    for lang in LANGS:
        po = TRANSLATIONS / lang / "LC_MESSAGES" / f"{domain}.po"
        verb = "update" if po.exists() else "init"
        cmd = [
            PYBABEL,
            "-q",
            verb,
            "-D",
            domain,
            "-i",
            str(pot),
            "-d",
            str(TRANSLATIONS),
            "-l",
            lang,
        ]
        if verb == "update":
            cmd += ["--no-fuzzy-matching"]
        subprocess.run(cmd, check=True)
        # `init` marks the whole catalog fuzzy, and fuzzy catalogs are silently not compiled.
        with open(po, "rb") as f:
            catalog = read_po(f, locale=lang)
        catalog.fuzzy = False
        with open(po, "wb") as f:
            write_po(f, catalog, no_location=True, sort_output=True)


def used_messages() -> set[str]:
    found: set[str] = set()
    for folder in ("backend", "webui"):
        for _file, _line, message, _comments, _ctx in extract_from_dir(
            ROOT / folder, METHODS, keywords=KEYWORDS
        ):
            found.add(message[0] if isinstance(message, tuple) else message)
    return found


def translated_ja() -> tuple[set[str], list[str]]:
    done: set[str] = set()
    problems: list[str] = []
    seen: dict[str, tuple[str, object]] = {}  # msgid -> (catalog, translation)
    for po in sorted((TRANSLATIONS / "ja" / "LC_MESSAGES").glob("*.po")):
        with open(po, "rb") as f:
            catalog = read_po(f, locale="ja")
        if catalog.fuzzy:
            problems.append(f"{po.name}: the catalog is marked fuzzy and would not be compiled")
        for m in catalog:
            if not m.id:
                continue
            key = m.id[0] if isinstance(m.id, tuple) else m.id
            strings = m.string if isinstance(m.string, tuple) else (m.string,)
            if m.fuzzy:
                problems.append(f"{po.name}: fuzzy: {key!r}")
            elif all(strings):
                done.add(key)
                # Catalogs are merged at runtime: one msgid must read the same everywhere.
                first = seen.setdefault(key, (po.name, m.string))
                if first[1] != m.string:
                    problems.append(
                        f"{po.name}: {key!r} is {m.string!r} here but {first[1]!r} in {first[0]}"
                    )
    return done, problems


def check() -> list[str]:
    done, problems = translated_ja()
    missing = sorted(used_messages() - done)
    return problems + [f"no Japanese translation: {m!r}" for m in missing]


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "check"
    if cmd == "compile":
        compile_all()
        return 0
    if cmd == "extract" and len(argv) >= 3:
        extract(argv[1], argv[2:])
        return 0
    if cmd == "check":
        problems = check()
        for p in problems:
            print(p)
        print("translations: complete" if not problems else f"{len(problems)} problem(s)")
        return 1 if problems else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
