"""`mudkd wizard --defaults`, `mudkd recipe show` and `mudkd recipe validate` as a user meets them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mudkd.cli.app import app
from mudkd.recipe import build_recipe
from tests.helpers import FIXTURE_GLUE

runner = CliRunner()


# ---------------------------------------------------------------------------------------------------------------
# wizard without a terminal


def test_wizard_refuses_without_a_terminal_and_names_the_alternative(tmp_path):
    target = tmp_path / "recipe.toml"
    result = runner.invoke(app, ["wizard", "-o", str(target)], input="\n\n\n")
    assert result.exit_code == 2
    assert "Error: the wizard needs a terminal" in result.stderr
    assert "Hint: use --defaults with --set KEY=VALUE" in result.stderr
    assert result.stdout == "" and not target.exists()


def test_defaults_with_3d_config_writes_a_recipe_that_validates(tmp_path):
    target = tmp_path / "recipe.toml"
    data = ["--set", f"task.data_dir={FIXTURE_GLUE / 'SST-2'}"]  # recipe validate checks the data it names
    result = runner.invoke(
        app, ["wizard", "--defaults", "--set", "hsk.config_3d=1l_10t_0.1h", *data, "-o", str(target)]
    )
    assert result.exit_code == 0, result.output
    assert f"Next: mudkd pipeline {target}" in result.stdout
    recipe = build_recipe(target)
    # the standard mapping t_top<teacher depth>: the pruned student's top layer learns the teacher's last
    assert recipe.hsk.config_3d == "1l_10t_0.1h" and recipe.hsk.layer_scheme is None
    text = target.read_text()
    assert text.startswith("# mudkd recipe written by 'mudkd wizard'.")
    assert "# K, k and rho at once, e.g. '1l_10t_0.1h'.\nconfig_3d = \"1l_10t_0.1h\"" in text
    validated = runner.invoke(app, ["recipe", "validate", str(target)])
    assert validated.exit_code == 0 and f"{target}: ok" in validated.stdout


def test_defaults_with_answers_and_recipe_overrides(tmp_path):
    target = tmp_path / "tiny.toml"
    sets = [
        "student_kind=pretrained",
        "student.model=models/tiny-4l-312d",
        "task.name=rte",
        f"task.data_dir={FIXTURE_GLUE / 'RTE'}",
        "batch_size=16",
        "pred.temperature=2.0",
        "training.seed=7",
        "use_store=true",
    ]
    result = runner.invoke(app, ["wizard", "--defaults", "-o", str(target), *[f"--set={s}" for s in sets]])
    assert result.exit_code == 0, result.output
    recipe = build_recipe(target)
    # the answers are relative to the working directory; the file says them relative to its own folder
    assert recipe.student.model == "models/tiny-4l-312d"  # not local here: may be a hub name, kept as typed
    assert recipe.task.data_dir == str(FIXTURE_GLUE / "RTE")
    assert recipe.hsk.train_batch_size == 16 and recipe.pred.temperature == 2.0 and recipe.training.seed == 7
    assert recipe.hsk.hsk_store == str(Path("runs/rte-tinybert/store").absolute())
    assert "student 4 layers (from the name)" in result.stdout


def test_existing_file_is_refused_without_overwrite(tmp_path):
    target = tmp_path / "recipe.toml"
    target.write_text("# mine\n")
    result = runner.invoke(app, ["wizard", "--defaults", "-o", str(target)])
    assert result.exit_code == 2 and "already exists" in result.stderr and "--overwrite" in result.stderr
    assert target.read_text() == "# mine\n"
    result = runner.invoke(app, ["wizard", "--defaults", "--overwrite", "-o", str(target)])
    assert result.exit_code == 2 and "was not written by 'mudkd wizard'" in result.stderr  # never replace a user's file
    assert target.read_text() == "# mine\n"
    target.unlink()
    assert runner.invoke(app, ["wizard", "--defaults", "-o", str(target)]).exit_code == 0
    result = runner.invoke(
        app, ["wizard", "--defaults", "--overwrite", "-o", str(target), "--set", "task.max_seq_length=64"]
    )
    assert result.exit_code == 0 and build_recipe(target).task.max_seq_length == 64  # the wizard's own file is replaced


@pytest.mark.parametrize(
    ("sets", "messages"),
    [
        (["hsk.keep_tokenz=10"], ["hsk.keep_tokenz: unknown key (did you mean 'keep_tokens'?)"]),
        (["pred.temprature=2"], ["pred.temprature: unknown key (did you mean 'temperature'?)"]),
        (["hsk.keep_tokens=500", "budget_mode=4d"], ["budget_mode: must be", "hsk.keep_tokens: must be between 1"]),
        (["batch_size=0", "training.seed=x"], ["batch_size: must be between 1 and 65536", "training.seed"]),
        (["hsk.config_3d=1l_10t"], ["hsk.config_3d: config_3d: cannot parse"]),
    ],
)
def test_defaults_with_bad_sets_exit_2_listing_every_problem(tmp_path, sets, messages):
    target = tmp_path / "recipe.toml"
    result = runner.invoke(app, ["wizard", "--defaults", "-o", str(target), *[f"--set={s}" for s in sets]])
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == len(messages)
    for line, message in zip(errors, messages, strict=True):
        assert message in line
    assert not target.exists()


def test_budget_that_does_not_fit_a_local_teacher_is_an_error(tmp_path):
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "config.json").write_text(json.dumps({"num_hidden_layers": 4, "hidden_size": 256}))
    args = [
        "wizard",
        "--defaults",
        "-o",
        str(tmp_path / "r.toml"),
        "--set",
        f"teacher.pretrained={teacher}",
        "--set",
        "prune.num_layers=2",
        "--set",
        "layer_scheme=t_top10",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "t_top10 maps beyond the teacher's 4 layers" in result.stderr
    assert not (tmp_path / "r.toml").exists()
    result = runner.invoke(app, [*args[:-2], "--set", "layer_scheme=standard"])
    assert result.exit_code == 0, result.output
    assert "teacher layer 4" in result.stdout  # read from config.json: 4 layers


# ---------------------------------------------------------------------------------------------------------------
# recipe show


def test_recipe_show_json_is_the_resolved_recipe(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('[task]\nname = "cola"\ndata_dir = "glue/CoLA"\n[hsk]\nkeep_tokens = 10\n')
    result = runner.invoke(app, ["recipe", "show", str(path), "--set", "hsk.keep_hidden=0.1", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document == build_recipe(path, sets=["hsk.keep_hidden=0.1"]).model_dump(mode="json")
    assert document["hsk"]["keep_tokens"] == 10 and document["hsk"]["keep_hidden"] == 0.1
    assert document["task"]["max_train_samples"] is None


def test_recipe_show_table_has_value_default_and_description():
    result = runner.invoke(app, ["recipe", "show", "--set", "hsk.keep_tokens=10"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    line = next(line for line in result.stdout.splitlines() if "hsk.keep_tokens" in line)
    assert "10" in line and "unset" in line and "Tokens per example that get HSK" in line
    for header in ("key", "value", "default", "description"):
        assert header in result.stdout


def test_recipe_show_reports_a_bad_override():
    result = runner.invoke(app, ["recipe", "show", "--set", "hsk.keep_hidden=2"])
    assert result.exit_code == 2 and "hsk.keep_hidden" in result.stderr and result.stdout == ""


# ---------------------------------------------------------------------------------------------------------------
# recipe validate


def test_recipe_validate_lists_every_problem_of_every_file(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('[hsk]\nconfig_3d = "1l_10t_0.1h"\n')
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[task]\nmax_seq_lenght = 64\n[hsk]\nkeep_hidden = 1.5\nconfig_3d = "1l_ten_0.1h"\nlayer_scheme = "top10"\n'
    )
    broken = tmp_path / "broken.toml"
    broken.write_text("[hsk\n")
    result = runner.invoke(app, ["recipe", "validate", str(good), str(bad), str(broken), str(tmp_path / "none.toml")])
    assert result.exit_code == 2
    assert f"{good}: ok" in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert any(f"{bad}: task.max_seq_lenght: unknown key (did you mean 'max_seq_length'?)" in e for e in errors)
    assert any(f"{bad}: hsk.keep_hidden" in e for e in errors)
    assert any(f"{broken}: malformed TOML" in e for e in errors)
    assert any("none.toml: recipe file not found" in e for e in errors)
    assert "Hint: 3 of 4 recipe(s) invalid" in result.stderr


def test_recipe_validate_checks_budget_strings(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('[hsk]\nconfig_3d = "1l_ten_0.1h"\nlayer_scheme = "top10"\n')
    result = runner.invoke(app, ["recipe", "validate", str(path), "--json"])
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    [entry] = document["recipes"]
    assert entry["valid"] is False and len(entry["problems"]) == 2
    assert "hsk.config_3d: cannot parse" in entry["problems"][0] and "hsk.layer_scheme" in entry["problems"][1]


SHIPPED = Path(__file__).resolve().parents[1] / "mudkd" / "recipes"


def write_sweep(directory: Path, body: str) -> Path:
    """A sweep file next to a copy of the shipped sweep base recipe (max_seq_length 64), on the SST-2 fixture."""
    base = SHIPPED.joinpath("sweep_base_sst2.toml").read_text()
    base = base.replace('data_dir = "../../shared/data/glue/SST-2"', f'data_dir = "{FIXTURE_GLUE / "SST-2"}"')
    assert str(FIXTURE_GLUE) in base
    (directory / "base.toml").write_text(base)
    path = directory / "sweep.toml"
    path.write_text(f'base = "base.toml"\n{body}')
    return path


def test_recipe_validate_checks_the_shipped_sweep_as_a_sweep(tmp_path):
    shipped = SHIPPED.joinpath("sweep_sst2_minilm.toml").read_text()
    path = write_sweep(tmp_path, shipped.replace('base = "sweep_base_sst2.toml"', ""))
    result = runner.invoke(app, ["recipe", "validate", str(path), "--json"])
    assert result.exit_code == 0, result.output
    [entry] = json.loads(result.stdout)["recipes"]
    # untrained once + 3 seeds x (no_hsk, full_hsk + 6 3D budgets + 2x2 length + 2x2 width + 2x2 depth) = 1 + 3 x 20
    assert entry["kind"] == "sweep" and entry["valid"] is True and entry["problems"] == [] and entry["runs"] == 61
    text = runner.invoke(app, ["recipe", "validate", str(path)])
    assert text.exit_code == 0 and f"{path}: ok (sweep, 61 runs)" in text.stdout
    (tmp_path / "base.toml").write_text(
        (tmp_path / "base.toml").read_text().replace(str(FIXTURE_GLUE / "SST-2"), str(tmp_path / "none"))
    )
    missing = runner.invoke(app, ["recipe", "validate", str(path)])
    assert missing.exit_code == 2 and f"Error: {path}: base: task.data_dir: " in missing.stderr


@pytest.mark.parametrize(
    ("seeds", "expected"),
    [
        ("[1, 1]", "(top level): seeds: duplicate values [1, 1]"),
        ("[1, -3]", "seeds.1: must be greater than or equal to 0 (got -3)"),
    ],
    ids=["duplicate", "negative"],
)
def test_recipe_validate_reports_a_bad_seed_list_of_a_sweep(tmp_path, seeds, expected):
    path = write_sweep(tmp_path, f'baselines = ["no_hsk"]\nseeds = {seeds}\n[[grid]]\nkeep_tokens = [4]\n')
    result = runner.invoke(app, ["recipe", "validate", str(path)])
    assert result.exit_code == 2 and result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert errors == [f"Error: {path}: {expected}"]
    assert "unknown key" not in result.stderr  # read as a sweep, not as a recipe


def test_recipe_validate_checks_every_sweep_point_against_the_base_once_per_point(tmp_path):
    path = write_sweep(tmp_path, "seeds = [1, 2]\n[[grid]]\nkeep_tokens = [4, 65, 99]\n")
    result = runner.invoke(app, ["recipe", "validate", str(path), "--json"])
    assert result.exit_code == 2
    [entry] = json.loads(result.stdout)["recipes"]
    # the base keeps 64 positions: k = 65 and 99 do not fit, each said once (not once per seed)
    assert entry["kind"] == "sweep" and entry["runs"] == 6
    assert entry["problems"] == [
        f"{path}: point k65: hsk.keep_tokens: must be <= task.max_seq_length = 64 (got 65)",
        f"{path}: point k99: hsk.keep_tokens: must be <= task.max_seq_length = 64 (got 99)",
    ]


def test_recipe_validate_names_the_problems_of_a_sweeps_base(tmp_path):
    path = write_sweep(tmp_path, "[[grid]]\nkeep_tokens = [4]\n")
    (tmp_path / "base.toml").write_text("[hsk]\nkeep_tokenz = 4\n")
    result = runner.invoke(app, ["recipe", "validate", str(path)])
    assert result.exit_code == 2
    assert f"Error: {path}: base: {tmp_path / 'base.toml'}: hsk.keep_tokenz: unknown key" in result.stderr


def test_recipe_validate_checks_a_search_table(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('[hsk]\nconfig_3d = "1l_10t_0.1h"\n[search]\ntolerance = 1.0\nseeds = 2\n')
    bad = tmp_path / "bad.toml"
    bad.write_text('[search]\ntolerance = -1\nladder = ["1l_4t"]\nsteps = 3\n')
    result = runner.invoke(app, ["recipe", "validate", str(good), str(bad), "--json"])
    assert result.exit_code == 2
    entries = {e["path"]: e for e in json.loads(result.stdout)["recipes"]}
    assert entries[str(good)] == {"path": str(good), "kind": "search", "valid": True, "problems": []}
    problems = entries[str(bad)]["problems"]
    assert len(problems) == 3 and all(p.startswith(f"{bad}: search.") for p in problems)
    assert "search.tolerance: must be greater than or equal to 0" in problems[0] and "ladder" in problems[1]
    assert "search.steps: unknown key" in problems[2]


def test_recipe_group_shows_help_without_arguments():
    result = runner.invoke(app, ["recipe"])
    assert "show" in result.output and "validate" in result.output


@pytest.mark.parametrize("width", [80, 160])
def test_recipe_show_is_readable_at_80_and_160_columns(width):
    result = runner.invoke(app, ["recipe", "show", "--set", "hsk.keep_tokens=10"], env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    assert max(len(line) for line in lines) <= width
    if width == 80:  # one block per key: no table borders, every key on a line of its own, the change marked
        assert not any("┃" in line or "│" in line for line in lines)
        assert "hsk.keep_tokens = 10 (default unset)" in lines and "task.name = sst-2" in lines
        assert len(lines) < 300
    else:
        assert any("│" in line for line in lines)
