"""The built wheel ships the recipes and ``py.typed``: a non-editable install gets the quickstart.

Builds a wheel with the installed setuptools, offline (``pip wheel --no-deps --no-build-isolation``), from a copy of
the sources, so the checkout gets no ``build/`` or ``*.egg-info``. A few seconds; it runs in the full suite.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory):
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    shutil.copytree(REPO_ROOT / "mudkd", source / "mudkd", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
    command += ["--disable-pip-version-check", "--quiet", "-w", str(out), str(source)]
    built = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    [wheel] = out.glob("mudkd-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_the_wheel_ships_every_recipe_and_py_typed(wheel_names):
    recipes = {f"mudkd/recipes/{path.name}" for path in (REPO_ROOT / "mudkd" / "recipes").glob("*.toml")}
    assert "mudkd/recipes/quickstart.toml" in recipes and "mudkd/recipes/sweep_sst2_minilm.toml" in recipes
    assert recipes <= wheel_names, sorted(recipes - wheel_names)
    assert "mudkd/py.typed" in wheel_names


def test_the_wheel_holds_the_package_and_not_the_tests(wheel_names):
    assert {"mudkd/__init__.py", "mudkd/cli/app.py", "mudkd/recipe/load.py", "mudkd/core/modeling_pruned_bert.py"} <= (
        wheel_names
    )
    assert not any(name.startswith(("tests/", "recipes/", "benchmarks/")) for name in wheel_names)
