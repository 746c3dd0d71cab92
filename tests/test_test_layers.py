"""The test layers themselves: the README's test command is CI's, the fast default deselects slow tests, and a
``shared_data`` test without ``../shared`` is a visible skip locally and a failure under CI."""

from __future__ import annotations

import re
import sys

import pytest

import tests.helpers as helpers
from tests.helpers import REPO_ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def test_ci_runs_exactly_the_readme_test_command():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    [command] = re.findall(r"^bash scripts/setup\.sh && python -m pytest.*$", readme, flags=re.M)
    assert command == 'bash scripts/setup.sh && python -m pytest -m "slow or not slow"'
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert ci[-1] == command and 'export CI="${CI:-true}"' in ci


def test_plain_pytest_is_the_fast_layer():
    options = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"]
    assert "-m 'not slow'" in options["ini_options"]["addopts"]
    assert any(marker.startswith("shared_data:") for marker in options["ini_options"]["markers"])


def test_fixture_glue_is_in_the_repository():
    for task in ("SST-2", "CoLA", "RTE"):
        for split in ("train", "dev"):
            assert (helpers.FIXTURE_GLUE / task / f"{split}.tsv").is_file()
    assert helpers.FIXTURE_GLUE.is_relative_to(REPO_ROOT)


@pytest.mark.parametrize(("ci", "outcome"), [("", pytest.skip.Exception), ("true", pytest.fail.Exception)])
def test_missing_shared_data_skips_visibly_or_fails_under_ci(tmp_path, monkeypatch, ci, outcome):
    monkeypatch.setattr(helpers, "SHARED_GLUE", tmp_path / "no-shared" / "data" / "glue")
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="needs the real GLUE data at .*no-shared"):
        helpers.require_shared_glue()


def test_present_shared_data_is_returned(tmp_path, monkeypatch):
    monkeypatch.setattr(helpers, "SHARED_GLUE", tmp_path)
    monkeypatch.setenv("CI", "true")
    assert helpers.require_shared_glue() == tmp_path
