"""The layers point one way: a lower layer never imports a higher one (docs/architecture.md).

Bottom to top: ``schemas`` (contracts and the error hierarchy) < ``newswatch`` (settings,
logging, database, Kafka clients, run loop) < ``producers`` and ``consumers`` (the stages,
independent of each other) < the command line (the package ``newswatch.cli``), which
nothing below it imports. Every import counts, lazy ones inside functions and
``TYPE_CHECKING`` ones too: each is a dependency a reader must follow.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("schemas", "newswatch", "producers", "consumers")
# A layer may import its own layer and the ones below it, never one above.
LAYER_RANK = {"schemas": 0, "newswatch": 1, "producers": 2, "consumers": 2, "cli": 3}


CLI_PACKAGE = "newswatch.cli"


def is_cli(module: str) -> bool:
    """The command-line layer: the package ``newswatch.cli`` and its modules."""
    return module == CLI_PACKAGE or module.startswith(CLI_PACKAGE + ".")


def layer_of(module: str) -> str:
    return "cli" if is_cli(module) else module.split(".", 1)[0]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, module: str | None = None) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every project import in ``path`` (the source of
    ``module``, by default the one at that path), relative ones resolved."""
    module = module or module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import mod` imports pkg.mod when mod is a module of pkg.
            names = [f"{base}.{alias.name}" if _is_module(f"{base}.{alias.name}") else base
                     for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".", 1)[0] in PACKAGES:
                yield node.lineno, name


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def project_files() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def why_forbidden(source: str, target: str) -> str | None:
    """Why module ``source`` may not import module ``target``; None when it may."""
    source_layer, target_layer = layer_of(source), layer_of(target)
    if LAYER_RANK[target_layer] > LAYER_RANK[source_layer]:
        return f"{source_layer} is below {target_layer}"
    if LAYER_RANK[target_layer] == LAYER_RANK[source_layer] == 2 and (
            target_layer != source_layer):
        return "producers and consumers are independent"
    return None


def violations() -> list[str]:
    found = []
    for path in project_files():
        source = module_name(path)
        for line, target in imports_of(path):
            reason = why_forbidden(source, target)
            if reason is not None:
                found.append(f"{path.relative_to(ROOT)}:{line}: {source} imports {target} "
                             f"({reason})")
    return found


def test_no_lower_layer_imports_a_higher_one() -> None:
    problems = violations()
    assert not problems, "imports against the layers:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize(("module", "imported", "allowed"), [
    ("schemas.feeds_file", "newswatch.errors", False),
    ("newswatch.settings", "consumers.alert.rules", False),
    ("consumers.enrich.daemon", "newswatch.cli.enrich", False),
    ("producers.fetch", "consumers.store.write", False),
    ("newswatch.cli", "consumers.enrich.kernel", True),
    ("newswatch.cli.run", "newswatch.cli.web", True),
    ("newswatch.cli.alert", "consumers.alert.outbox", True),
    ("newswatch.cli.producer", "producers.daemon", True),
    ("consumers.enrich.daemon", "newswatch.kafka_probe", True),
    ("newswatch.errors", "schemas.errors", True),
])
def test_the_rule_itself(module: str, imported: str, allowed: bool) -> None:
    """The check would catch the imports the layering forbids (and allow the others)."""
    assert (why_forbidden(module, imported) is None) is allowed


def test_the_scan_sees_lazy_relative_and_from_imports() -> None:
    """Imports inside functions count (a lazy upward import is still an upward import),
    relative imports are resolved, and ``from pkg import module`` names the module."""
    lazy = {name for _, name in imports_of(ROOT / "newswatch" / "cli" / "__init__.py")}
    assert "consumers.enrich.kernel" in lazy  # imported inside printed_config()
    from_module = {name for _, name in imports_of(ROOT / "schemas" / "topics_file.py")}
    assert "schemas.yaml_load" in from_module  # `from schemas import yaml_load`


LOWER_MODULES = ["schemas.tables", "newswatch.settings", "newswatch.daemon", "producers.daemon",
                 "consumers.store.write", "consumers.web.api"]


@pytest.mark.parametrize("source", LOWER_MODULES)
@pytest.mark.parametrize("statement", [
    "import newswatch.cli",
    "from newswatch import cli",
    "from newswatch.cli import main",
    "from newswatch.cli.run import run_all",
    "from newswatch.cli import web",
    "def lazy():\n    from newswatch.cli.store import register",
])
def test_an_import_of_the_cli_from_below_fails(tmp_path: Path, source: str,
                                               statement: str) -> None:
    """Whatever form it takes, an import of the CLI package in a module below it is found
    and named as a violation of the layers."""
    path = ROOT.joinpath(*source.split(".")).with_suffix(".py")
    copy = tmp_path / path.name
    copy.write_text(path.read_text(encoding="utf-8") + "\n" + statement + "\n",
                    encoding="utf-8")
    imported = [name for _, name in imports_of(copy, module=source)]
    cli_imports = [name for name in imported if is_cli(name)]
    assert cli_imports, imported
    assert all(why_forbidden(source, name) is not None for name in cli_imports)


def test_the_command_line_lives_in_one_package() -> None:
    """No command-line module outside ``newswatch/cli/``: a module named ``cli`` or
    ``*_cli`` elsewhere is the old "layer by module name" creeping back."""
    strays = [str(path.relative_to(ROOT)) for path in project_files()
              if (path.stem == "cli" or path.stem.endswith("_cli"))
              and not is_cli(module_name(path))]
    assert not strays, strays
