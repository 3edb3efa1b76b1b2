"""The layers hold: the rules never import what the team sees, handlers never import `db`."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The words the database stores: a leaf of StrEnums the domain's values are typed with.
VOCABULARY = "db.vocabulary"


def module_name(path: Path) -> str:
    """`bot/services/press.py` -> `bot.services.press`; a package's `__init__` is the package."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    """True when `name` is one of our modules or packages (not a name defined in one)."""
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(path: Path) -> set[str]:
    """Every module the file imports, at the top or inside a function, type-checking ones too."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.add(node.module)
            # `from bot.presentation import texts` imports the module, not only the package.
            names.update(
                f"{node.module}.{alias.name}"
                for alias in node.names
                if is_module(f"{node.module}.{alias.name}")
            )
    return names


def graph() -> dict[str, set[str]]:
    """Every module under bot/ and db/ with what it imports."""
    return {
        module_name(path): imports_of(path)
        for package in ("bot", "db")
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def within(name: str, package: str) -> bool:
    """True when `name` is `package` or a module inside it."""
    return name == package or name.startswith(f"{package}.")


def violations(modules: dict[str, set[str]] | None = None) -> set[tuple[str, str]]:
    """Every (importer, imported) pair that crosses a layer the wrong way."""
    found: set[tuple[str, str]] = set()
    for module, imported in (graph() if modules is None else modules).items():
        for target in imported:
            rules = within(module, "bot.services") or within(module, "db")
            if rules and (within(target, "bot.presentation") or within(target, "bot.telegram")):
                found.add((module, target))
            if within(module, "bot.handlers") and within(target, "db"):
                found.add((module, target))
            # Views render plain data: no ORM row reaches a text or a keyboard.
            if within(module, "bot.presentation") and within(target, "db.models"):
                found.add((module, target))
            leaf = module in ("bot.domain", VOCABULARY)
            ours = within(target, "bot") or within(target, "db")
            if leaf and ours and target != VOCABULARY:
                found.add((module, target))
    return found


def test_the_graph_sees_every_layer() -> None:
    """The walk finds the modules the rules below are about, so an empty result means something."""
    modules = graph()
    assert "bot.domain" in modules
    assert "bot.presentation.texts" in modules
    assert "bot.services.delivery" in modules
    assert "bot.handlers.queue" in modules
    assert "db.repositories.press" in modules
    assert "bot.domain" in modules["db.repositories.press"]
    assert "db" in modules["bot.services.delivery"] or any(
        within(name, "db") for name in modules["bot.services.delivery"]
    )


def test_no_layer_imports_the_wrong_way() -> None:
    """Rules import no presentation, handlers no `db`, views no rows, the domain only words."""
    assert violations() == set()


def test_a_wrong_import_is_caught(tmp_path: Path) -> None:
    """The walk sees imports inside functions and `from package import module` forms."""
    source = tmp_path / "sample.py"
    source.write_text(
        "def f():\n    from bot.presentation import texts\n    import db.models\n",
    )
    assert {"bot.presentation.texts", "db.models"} <= imports_of(source)


def test_each_rule_catches_its_crossing_and_spares_the_allowed() -> None:
    """A planted import per rule is caught; the imports the layers allow are not."""
    planted = {
        "bot.services.runway": {"bot.presentation.texts", "bot.telegram", "bot.telegram_retry"},
        "db.repositories.media": {"bot.presentation.captions", "bot.domain"},
        "bot.handlers.queue": {"db.errors", "bot.presentation.keyboards", "bot.domain"},
        "bot.presentation.texts": {"db.models", "db.vocabulary", "bot.services.team"},
        "bot.domain": {"bot.services.press", "db.vocabulary"},
        "db.vocabulary": {"db.models"},
    }
    assert violations(planted) == {
        ("bot.services.runway", "bot.presentation.texts"),
        ("bot.services.runway", "bot.telegram"),
        ("db.repositories.media", "bot.presentation.captions"),
        ("bot.handlers.queue", "db.errors"),
        ("bot.presentation.texts", "db.models"),
        ("bot.domain", "bot.services.press"),
        ("db.vocabulary", "db.models"),
    }
