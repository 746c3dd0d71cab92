"""The shape of the code base, checked rather than described: layers, no cycles, no private imports, short modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO_ROOT

PACKAGE = REPO_ROOT / "mudkd"
MAX_MODULE_LINES = 700


def test_the_layering_contracts_hold():
    """cli → core → recipe → knowledge → errors, pure-Python recipes and vocabulary, terminal I/O only in the CLI
    (the contracts live in pyproject.toml under [tool.importlinter])."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports_command; lint_imports_command()",
            "--no-cache",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_no_import_cycles():
    import grimp

    graph = grimp.build_graph("mudkd", cache_dir=None)
    cycles = set()
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            if graph.find_shortest_chain(importer=imported, imported=importer):
                cycles.add(tuple(sorted((importer, imported))))
    assert not cycles, sorted(cycles)


def test_no_private_name_is_imported_from_another_module():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mudkd"):
                offenders += [
                    f"{path.relative_to(REPO_ROOT)}: {node.module}.{a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
    assert not offenders, offenders


def test_modules_stay_short_enough_to_read():
    long = {
        str(path.relative_to(REPO_ROOT)): lines
        for path in PACKAGE.rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not long, long


def test_the_contracts_name_every_subpackage():
    """A new top-level subpackage must be placed in the layers, or the contract silently ignores it."""
    import tomllib

    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c["layers"] for c in config["contracts"] if c["type"] == "layers")
    subpackages = {f"mudkd.{p.name}" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert subpackages <= set(layers), subpackages - set(layers)
    assert Path(PACKAGE / "errors.py").is_file() and "mudkd.errors" in layers
