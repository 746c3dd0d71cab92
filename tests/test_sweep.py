"""Budget sweeps: grid expansion, sharding, one teacher pass, resume, merge, results, plots and the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mudkd.cli.app import app
from mudkd.cli.sweep_chart import text_curve
from mudkd.core import sweep as core
from mudkd.core.events import StageResult
from mudkd.errors import RecipeError
from mudkd.recipe.overrides import apply_overrides
from mudkd.recipe.sweep import (
    Sweep,
    expand_grid,
    make_recipe_builder,
    parse_shard,
    read_sweep,
    shard,
)
from tests.helpers import FIXTURE_GLUE, REPO_ROOT, make_teacher_and_student

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------------------------
# Fixtures: a tiny teacher, its pruned student, a base recipe and a finished 4-point sweep


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny teacher (2 layers, hidden 32; fine-tuned shape, random weights) and a pruned 2-layer student."""
    root = make_teacher_and_student(tmp_path_factory.mktemp("sweep_models"), layers=2, seed=0, score_dtype="float64")
    return root / "teacher", root / "student"


def write_base(directory: Path, teacher: Path, student: Path, extra: str = "") -> Path:
    path = directory / "base.toml"
    path.write_text(f"""
[task]
name = "sst-2"
data_dir = "{FIXTURE_GLUE / "SST-2"}"
max_train_samples = 32
max_eval_samples = 16
max_seq_length = 16
[teacher]
model = "{teacher}"
[student]
model = "{student}"
[hsk]
token_scheme = "attention_no_sep"
hidden_scheme = "importance_mask_dynamic"
num_train_epochs = 1.0
train_batch_size = 16
[pred]
num_train_epochs = 1.0
train_batch_size = 16
eval_step = 2
[cache]
batch_size = 32
[training]
device = "cpu"
eval_batch_size = 16
{extra}
""")
    return path


def write_sweep(directory: Path, body: str, name: str = "sweep.toml") -> Path:
    path = directory / name
    path.write_text(body)
    return path


SWEEP_BODY = """
base = "base.toml"
output_dir = "{out}"
baselines = ["untrained", "no_hsk", "full_hsk"]
[grid]
config_3d = ["1l_4t_0.5h", "2l_8t_0.25h"]
"""


class Counter:
    """Wraps a function and records the calls (first positional argument)."""

    def __init__(self, function):
        self.function, self.calls = function, []

    def __call__(self, *args, **kwargs):
        self.calls.append(args[0] if args else None)
        return self.function(*args, **kwargs)


@pytest.fixture(scope="module")
def finished(models, tmp_path_factory):
    """A real 5-point sweep (untrained, no_hsk, full_hsk, two 3D budgets), run once with spies on the teacher.

    The base trains each stage for one epoch of 32 examples in batches of 16: 2 updates per stage, so the fair
    no_hsk baseline gets 2 + 2 = 4 prediction updates."""
    import torch

    import mudkd.core.stages.cache as cache_module
    import mudkd.core.stages.distill as distill_module

    teacher, student = models
    root = tmp_path_factory.mktemp("sweep_run")
    write_base(root, teacher, student)
    sweep_path = write_sweep(root, SWEEP_BODY.format(out=root / "out"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only add overhead
    with pytest.MonkeyPatch.context() as patch:
        cache_run = Counter(cache_module.run)
        patch.setattr(cache_module, "run", cache_run)
        loads = {"cache": Counter(cache_module.load_classifier), "distill": Counter(distill_module.load_classifier)}
        patch.setattr(cache_module, "load_classifier", loads["cache"])
        patch.setattr(distill_module, "load_classifier", loads["distill"])
        sweep = read_sweep(sweep_path)
        result = core.run(sweep, make_recipe_builder(sweep))
    torch.set_num_threads(threads)
    teacher_loads = [c for c in [*loads["cache"].calls, *loads["distill"].calls] if str(c) == str(teacher)]
    return {
        "sweep": sweep_path,
        "out": root / "out",
        "result": result,
        "cache_runs": cache_run.calls,
        "teacher_loads": teacher_loads,
        "loads": loads,
        "root": root,
        "teacher": teacher,
    }


# ---------------------------------------------------------------------------------------------------------------
# Sweep recipes: grid expansion, validation, sharding (pure Python)


def make_sweep(**data) -> Sweep:
    return Sweep.model_validate({"base": "base.toml", **data})


def test_grid_is_a_cartesian_product_with_stable_ids():
    sweep = make_sweep(grid={"keep_tokens": [4, 8], "token_scheme": ["left_first", "attention_no_sep"], "seed": [1, 2]})
    points = expand_grid(sweep)
    assert len(points) == 8 and len({p.id for p in points}) == 8
    first = points[0]
    assert first.id == "k4-left-s1" and first.kind == "hsk"
    assert first.settings == {"keep_tokens": 4, "token_scheme": "left_first", "seed": 1}
    assert first.overrides == {"hsk.keep_tokens": 4, "hsk.token_scheme": "left_first", "training.seed": 1}
    assert "hsk.keep_tokens=4" in first.sets and first.series == "length · left_first"
    assert [p.id for p in expand_grid(sweep)] == [p.id for p in points]  # stable


def test_config_3d_blocks_and_baselines():
    sweep = make_sweep(
        baselines=["full_hsk", "no_hsk"],
        grid=[
            {"config_3d": ["1l_10t_0.1h", "2l_20t_0.5h"]},
            {"name": "width", "keep_hidden": [0.1, 1.0], "hidden_scheme": "uniform_mask"},
            {"config_3d": ["1l_10t_0.1h"]},
        ],  # a duplicate point is kept once
    )
    points = expand_grid(sweep)
    assert [p.id for p in points] == ["no_hsk", "full_hsk", "1l_10t_0.1h", "2l_20t_0.5h", "h0.1-uniform", "h1-uniform"]
    assert [p.kind for p in points[:2]] == ["no_hsk", "full_hsk"] and points[2].series == "3D"
    assert points[2].overrides["hsk.config_3d"] == "1l_10t_0.1h" and points[2].overrides["hsk.student_layers"] is None
    assert points[1].overrides["hsk.keep_tokens"] is None and points[1].overrides["hsk.keep_hidden"] == 1.0
    assert points[4].series == "width · uniform_mask"


def test_seeds_replicate_every_point_and_baseline_seed_major():
    sweep = make_sweep(baselines=["untrained", "no_hsk", "full_hsk"], seeds=[42, 43], grid={"keep_tokens": [4, 8]})
    points = expand_grid(sweep)
    assert [p.id for p in points] == [
        "untrained",
        *("no_hsk-s42", "full_hsk-s42", "k4-s42", "k8-s42"),
        *("no_hsk-s43", "full_hsk-s43", "k4-s43", "k8-s43"),
    ]
    assert sweep.size() == 1 + 4 * 2 == len(points)
    by_id = {p.id: p for p in points}
    assert (by_id["k8-s43"].group, by_id["k8-s43"].seed, by_id["k8-s43"].settings) == (
        "k8",
        43,
        {"keep_tokens": 8, "seed": 43},
    )
    assert by_id["k8-s43"].overrides == {"hsk.keep_tokens": 8, "training.seed": 43}
    assert by_id["full_hsk-s42"].overrides["training.seed"] == 42 and by_id["full_hsk-s42"].group == "full_hsk"
    assert by_id["no_hsk-s43"].overrides == {"training.seed": 43} and by_id["no_hsk-s43"].kind == "no_hsk"
    assert by_id["untrained"].overrides == {} and by_id["untrained"].seed is None
    # the older way, a seed axis in a grid block, gives the same ids and groups
    old = expand_grid(make_sweep(grid={"keep_tokens": [4], "seed": [42, 43]}))
    assert [(p.id, p.group, p.seed) for p in old] == [("k4-s42", "k4", 42), ("k4-s43", "k4", 43)]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('base = "b.toml"\n[grid]\nkeep_token = [4]\n', ["grid.keep_token: unknown key (did you mean 'keep_tokens'?)"]),
        ('base = "b.toml"\nbaseline = ["no_hsk"]\n[grid]\nkeep_tokens = [4]\n', ["baseline: unknown key"]),
        ('base = "b.toml"\n[grid]\nconfig_3d = ["1l_10t_0.1h"]\nkeep_tokens = [4]\n', ["use one or the other"]),
        (
            'base = "b.toml"\n[grid]\nkeep_hidden = [0.1, 2.0]\ntoken_scheme = ["left"]\n',
            ["grid.keep_hidden: values must be in (0, 1]", "grid.token_scheme.0"],
        ),
        ('base = "b.toml"\nbaselines = ["half_hsk"]\n', ["baselines.0"]),
        ("[grid]\nkeep_tokens = [4]\n", ["base: Field required"]),
        ('base = "missing.toml"\n[grid]\nkeep_tokens = [4]\n', ["base recipe not found"]),
        ('base = "b.toml"\nseeds = []\n[grid]\nkeep_tokens = [4]\n', ["seeds: give at least one seed"]),
        ('base = "b.toml"\nseeds = [1, 2, 1]\n[grid]\nkeep_tokens = [4]\n', ["seeds: duplicate values [1, 2, 1]"]),
        ('base = "b.toml"\nseeds = [-1]\n[grid]\nkeep_tokens = [4]\n', ["seeds.0: must be greater than or equal"]),
        ('base = "b.toml"\nseeds = 42\n[grid]\nkeep_tokens = [4]\n', ["seeds: Input should be a valid list"]),
        (
            'base = "b.toml"\nseeds = [1, 2]\n[grid]\nkeep_tokens = [4]\nseed = [3]\n',
            ["grid block 1 lists its own seed axis"],
        ),
    ],
)
def test_bad_sweep_files_report_every_problem(tmp_path, body, expected):
    (tmp_path / "b.toml").write_text("")
    path = write_sweep(tmp_path, body)
    with pytest.raises(RecipeError) as caught:
        read_sweep(path)
    text = "\n".join(caught.value.problems)
    assert all(str(path) in problem for problem in caught.value.problems)
    for part in expected:
        assert part in text, text


def test_set_routes_sweep_keys_and_recipe_keys(tmp_path):
    (tmp_path / "b.toml").write_text("[hsk]\nkeep_tokens = 8\n")
    path = write_sweep(tmp_path, 'base = "b.toml"\n[grid]\nkeep_tokens = [4]\n')
    sets = ["grid.keep_tokens=[2, 3]", 'output_dir="elsewhere"', "hsk.max_steps=7"]
    sweep = read_sweep(path, sets=sets)
    assert sweep.output_dir == "elsewhere" and sweep.grid[0].keep_tokens == [2, 3]
    assert Path(sweep.base) == tmp_path / "b.toml"
    recipe = make_recipe_builder(sweep, sets)({"hsk.keep_tokens": 2})
    assert recipe.hsk.max_steps == 7 and recipe.hsk.keep_tokens == 2


def test_a_point_varying_one_dimension_keeps_the_base_config_3d_for_the_others():
    from mudkd.recipe import Recipe

    base = Recipe.model_validate({"hsk": {"config_3d": "2l_10t_0.1h", "student_layers": [1, 2]}})
    point = apply_overrides(base, {"hsk.keep_tokens": 4, "hsk.student_layers": None})
    assert (point.hsk.config_3d, point.hsk.keep_layers, point.hsk.keep_tokens, point.hsk.keep_hidden) == (
        None,
        2,
        4,
        0.1,
    )
    full = apply_overrides(base, expand_grid(make_sweep(baselines=["full_hsk"]))[0].overrides)
    assert (full.hsk.config_3d, full.hsk.keep_layers, full.hsk.keep_tokens, full.hsk.keep_hidden) == (
        None,
        None,
        None,
        1.0,
    )


@pytest.mark.parametrize("count", [1, 2, 3, 7, 9])
def test_shards_are_disjoint_and_complete(count):
    points = expand_grid(make_sweep(baselines=["no_hsk"], grid={"keep_tokens": [1, 2, 3], "seed": [1, 2]}))
    shards = [shard(points, index, count) for index in range(1, count + 1)]
    ids = [p.id for part in shards for p in part]
    assert sorted(ids) == sorted(p.id for p in points) and len(ids) == len(set(ids))
    assert shards == [shard(points, index, count) for index in range(1, count + 1)]  # deterministic
    assert max(map(len, shards)) - min(map(len, shards)) <= 1  # round-robin balance


@pytest.mark.parametrize("text", ["0/2", "3/2", "1-2", "a/b", "1/0"])
def test_bad_shard_specs(text):
    with pytest.raises(RecipeError):
        parse_shard(text)


def test_shipped_sweep_recipes_validate():
    sweep = read_sweep(REPO_ROOT / "recipes" / "sweep_sst2_minilm.toml")
    builder = make_recipe_builder(sweep)
    points = expand_grid(sweep)
    assert sweep.seeds == [42, 43, 44] and sweep.fair_baseline and sweep.baselines[0] == "untrained"
    assert len(points) == 1 + 3 * 20 and {"untrained", "no_hsk-s42", "full_hsk-s44", "1l_10t_0.1h-s43"} <= {
        p.id for p in points
    }
    assert builder({}).task.name == "sst-2" and Path(sweep.base).name == "sweep_base_sst2.toml"
    for point in points:
        builder(point.overrides)
    # the shipped schedule: 2,000 examples in batches of 32 = 63 updates per stage, so no_hsk trains 126; an HSK
    # point's prediction stage evaluates at 20, 40, 60 and its last update 63 (4 times), so no_hsk evaluates every
    # 32: at 32, 64, 96 and 126 (every 20 it would pick the best of 7)
    assert core.fair_baseline_overrides(builder({}), 2000) == {
        "pred.max_steps": 126,
        "pred.eval_step": 32,
        "pred.warmup_proportion": 0.1,
    }
    assert core.equal_evaluations(25, 125, 250) == {"pred.eval_step": 50}  # CoLA: 5 evaluations each
    assert core.equal_evaluations(20, 60, 120) == {"pred.eval_step": 40}  # 3 each: 40, 80, 120
    assert core.equal_evaluations(4, 4, 5) == {"pred.eval_step": 5}  # 1 each (the last update)
    assert core.equal_evaluations(2, 4, 4) == {} and core.equal_evaluations(0, 4, 8) == {}


def stage_recipe(**stages):
    from mudkd.recipe import Recipe

    return Recipe.model_validate(stages)


@pytest.mark.parametrize(
    ("stages", "examples", "expected"),
    [
        # ceil(100 / 16) = 7 batches an epoch: HSK 2 epochs = 14, prediction 1 epoch = 7
        (
            {
                "hsk": {"num_train_epochs": 2, "train_batch_size": 16},
                "pred": {"num_train_epochs": 1, "train_batch_size": 16},
            },
            100,
            {"pred.max_steps": 21},
        ),
        # max_steps wins over epochs, and needs no example count
        ({"hsk": {"max_steps": 30}, "pred": {"max_steps": 12}}, None, {"pred.max_steps": 42}),
        # 7 batches, 2 per update: 4 updates an epoch; HSK 1.5 epochs = ceil(6.0) = 6, prediction 1 epoch = 4
        (
            {
                "hsk": {"num_train_epochs": 1.5, "train_batch_size": 16},
                "pred": {"num_train_epochs": 1, "train_batch_size": 16},
                "training": {"gradient_accumulation_steps": 2},
            },
            100,
            {"pred.max_steps": 10},
        ),
        # different batch sizes: 1 epoch of 10 batches of 10 (HSK) + 1 epoch of 4 batches of 32 (prediction)
        (
            {
                "hsk": {"num_train_epochs": 1, "train_batch_size": 10},
                "pred": {"num_train_epochs": 1, "train_batch_size": 32},
            },
            100,
            {"pred.max_steps": 14},
        ),
    ],
)
def test_fair_baseline_overrides_count_the_updates_of_both_stages(stages, examples, expected):
    overrides = core.fair_baseline_overrides(stage_recipe(**stages), examples)
    assert overrides == {**expected, "pred.warmup_proportion": 0.1}


def test_fair_baseline_without_a_readable_training_set(monkeypatch):
    import importlib

    plan_module = importlib.import_module("mudkd.core.sweep.plan")  # the package's `plan` is the function
    monkeypatch.setattr(plan_module, "_count_examples", lambda recipe: None)
    same = stage_recipe(hsk={"num_train_epochs": 3}, pred={"num_train_epochs": 2})
    assert core.fair_baseline_overrides(same) == {"pred.num_train_epochs": 5.0, "pred.warmup_proportion": 0.1}
    mixed = stage_recipe(hsk={"num_train_epochs": 3, "train_batch_size": 8}, pred={"num_train_epochs": 2})
    with pytest.raises(RecipeError, match="cannot count the updates"):
        core.fair_baseline_overrides(mixed)


# ---------------------------------------------------------------------------------------------------------------
# Store planning (reads model configs only)


def plan_for(tmp_path, models, grid: str, extra: str = ""):
    teacher, student = models
    write_base(tmp_path, teacher, student, extra)
    sweep = read_sweep(write_sweep(tmp_path, f'base = "base.toml"\noutput_dir = "{tmp_path / "out"}"\n{grid}'))
    return core.plan(sweep, make_recipe_builder(sweep))


def test_one_store_serves_every_point_of_one_ranking(tmp_path, models):
    from mudkd.knowledge import can_serve

    plan = plan_for(tmp_path, models, "[grid]\nkeep_hidden = [0.1, 0.25]\nkeep_layers = [1, 3]\n")
    assert [s.name for s in plan.stores] == ["store"] and plan.stores[0].path == tmp_path / "out" / "store"
    stored = plan.stores[0].budget
    # same k for every point: the magnitude store of the largest ρ serves the smaller ones (ρ = 0.5 would
    # cost as much as the full width, values + int16 positions, and get a full-width store instead)
    assert stored.magnitude_mask and stored.keep_hidden == 0.25 and stored.keep_layers == 3
    assert all(can_serve(stored, p.budget)[0] for p in plan.points)
    assert not (tmp_path / "out").exists()  # planning writes nothing


def test_points_with_different_rankings_get_one_store_each(tmp_path, models):
    from mudkd.knowledge import can_serve

    plan = plan_for(tmp_path, models, '[grid]\nkeep_tokens = [4, 8]\ntoken_scheme = ["left_first", "attention"]\n')
    assert sorted(s.name for s in plan.stores) == ["store-att", "store-natural"]
    assert any("2 stores" in note for note in plan.notes)
    by_name = {s.name: s for s in plan.stores}
    for point in plan.points:
        assert can_serve(by_name[point.store].budget, point.budget)[0], point.id


def test_magnitude_points_with_fewer_tokens_are_served_for_certain(tmp_path, models):
    plan = plan_for(tmp_path, models, '[grid]\nconfig_3d = ["1l_8t_0.1h", "1l_12t_0.05h", "1l_4t_0.2h"]\n')
    stored = plan.stores[0].budget
    for point in plan.points:  # at least n' stored values always lie within the point's first k' tokens
        spare = stored.keep_tokens * stored.teacher_hidden if not stored.magnitude_mask else stored.magnitude_count
        spare -= (stored.keep_tokens - point.budget.keep_tokens) * stored.teacher_hidden
        assert spare >= point.budget.magnitude_count


def test_a_budget_that_does_not_fit_names_the_point(tmp_path, models):
    with pytest.raises(RecipeError) as caught:
        plan_for(tmp_path, models, "[grid]\nkeep_tokens = [8, 40]\nkeep_layers = [1, 9]\n")
    text = "\n".join(caught.value.problems)
    assert "point K1-k40" in text and "keep_tokens" in text and "point K9-k8" in text


# ---------------------------------------------------------------------------------------------------------------
# A real sweep (tiny models): one teacher pass, results, plots, resume


def test_the_teacher_runs_once_per_sweep(finished):
    assert len(finished["cache_runs"]) == 1
    # the store build, plus the full-HSK baseline that distils online; no other point loads the teacher
    assert len(finished["teacher_loads"]) == 2
    assert len(finished["loads"]["cache"].calls) == 1
    store = finished["out"] / "store"
    assert (store / "manifest.json").is_file()
    records = {r["id"]: r for r in finished["result"].records}
    assert records["1l_4t_0.5h"]["teacher_free"] and records["no_hsk"]["teacher_free"]
    assert not records["full_hsk"]["teacher_free"] and records["1l_4t_0.5h"]["store"] == str(store)


def test_results_csv_json_and_point_records(finished):
    out, result = finished["out"], finished["result"]
    ids = ["untrained", "no_hsk", "full_hsk", "1l_4t_0.5h", "2l_8t_0.25h"]
    assert [r["id"] for r in result.records] == ids and result.ran == ids and result.skipped == []
    document = json.loads((out / "results.json").read_text())
    assert [r["id"] for r in document] == ids
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [row["id"] for row in rows] == ids and "dev_accuracy" in rows[0]
    assert [row["updates"] for row in rows] == ["0", "4", "4", "4", "4"]
    for record in document:
        assert record == json.loads((out / "points" / record["id"] / "result.json").read_text())
        assert record["metric"] == "accuracy" and 0.0 <= record["dev_metric"] <= 1.0
        assert record["dev_metrics"]["accuracy"] == record["dev_metric"]
        if record["kind"] != "untrained":
            assert record["pred_seconds"] > 0
            assert (out / "points" / record["id"] / "pred" / "model.safetensors").is_file()
    by_id = {r["id"]: r for r in document}
    assert by_id["no_hsk"]["hsk_fraction"] == 0 and by_id["no_hsk"]["hsk_seconds"] is None
    assert by_id["full_hsk"]["hsk_fraction"] == 1.0 and by_id["full_hsk"]["elements_per_example"] == 3 * 16 * 32
    assert by_id["1l_4t_0.5h"]["hsk_fraction"] == pytest.approx(1 / 3 * 4 / 16 * 0.5)
    assert by_id["1l_4t_0.5h"]["elements_per_example"] == 64 and by_id["1l_4t_0.5h"]["hsk_seconds"] > 0
    assert (out / "points" / "1l_4t_0.5h" / "hsk" / "knowledge_budget.json").is_file()


def final_step(stage_dir: Path) -> int:
    """The last update a trained stage logged (the Trainer's own count)."""
    lines = [json.loads(line) for line in (stage_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return max(int(line["step"]) for line in lines if "step" in line)


def test_the_fair_no_hsk_baseline_trains_as_long_as_an_hsk_point(finished):
    """32 examples in batches of 16 = 2 updates per epoch: an HSK point trains 2 (HSK) + 2 (prediction) updates,
    the no-HSK baseline 4 prediction updates with a 10 % warm-up; the Trainer's own step counts agree."""
    out = finished["out"]
    by_id = {r["id"]: r for r in finished["result"].records}
    assert (by_id["no_hsk"]["hsk_updates"], by_id["no_hsk"]["pred_updates"], by_id["no_hsk"]["updates"]) == (0, 4, 4)
    assert (by_id["1l_4t_0.5h"]["hsk_updates"], by_id["1l_4t_0.5h"]["pred_updates"]) == (2, 2)
    assert by_id["no_hsk"]["pred_warmup"] == 0.1 and by_id["1l_4t_0.5h"]["pred_warmup"] == 0.0
    assert final_step(out / "points" / "no_hsk" / "pred") == 4
    assert final_step(out / "points" / "1l_4t_0.5h" / "hsk") == 2
    assert final_step(out / "points" / "1l_4t_0.5h" / "pred") == 2


def test_the_untrained_row_evaluates_the_student_as_it_is(finished):
    """The untrained record is the student's own dev accuracy (no training, no model written); the evaluation
    agrees with the Trainer's evaluation of a trained student."""
    from mudkd.core.stages import distill

    out = finished["out"]
    untrained = finished["result"].records[0]
    assert untrained["kind"] == "untrained" and untrained["series"] == "pruned, untrained"
    sweep = read_sweep(finished["sweep"])
    builder = make_recipe_builder(sweep)
    assert untrained["model_dir"] == builder({}).student.model and untrained["updates"] == 0
    assert untrained["seed"] is None and sorted(p.name for p in (out / "points" / "untrained").iterdir()) == [
        "result.json"
    ]
    no_hsk = next(r for r in finished["result"].records if r["id"] == "no_hsk")
    recipe = builder({"student.model": no_hsk["model_dir"]})
    again = distill.evaluate_student(recipe)
    assert again.metrics["accuracy"] == pytest.approx(no_hsk["dev_metric"], abs=1e-9)
    assert again.details["selection"] == "accuracy"


def test_plot_is_a_png_and_the_text_curve_has_every_series(finished):
    plots = finished["result"].plots
    assert plots == [str(finished["out"] / "marginal_utility.png")]
    data = Path(plots[0]).read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 2000
    lines = text_curve(finished["result"].records)
    assert lines[0].startswith("dev accuracy") and any(line.strip().startswith("a = 3D") for line in lines)
    assert any("full hsk" in line for line in lines) and any("no hsk" in line for line in lines)


def test_rerun_skips_finished_points_and_retrains_only_a_missing_one(finished, monkeypatch):
    import mudkd.core.stages.cache as cache_module
    import mudkd.core.stages.distill as distill_module

    out = finished["out"]
    (out / "points" / "2l_8t_0.25h" / "result.json").unlink()
    run_hsk, run_pred = Counter(distill_module.run_hsk), Counter(distill_module.run_pred)
    cache_run = Counter(cache_module.run)
    monkeypatch.setattr(distill_module, "run_hsk", run_hsk)
    monkeypatch.setattr(distill_module, "run_pred", run_pred)
    monkeypatch.setattr(cache_module, "run", cache_run)
    sweep = read_sweep(finished["sweep"])
    result = core.run(sweep, make_recipe_builder(sweep))
    assert [recipe.hsk.output_dir for recipe in run_hsk.calls] == [str(out / "points" / "2l_8t_0.25h" / "hsk")]
    assert len(run_pred.calls) == 1 and cache_run.calls == []  # the store is reused
    assert result.ran == ["2l_8t_0.25h"]
    assert sorted(result.skipped) == ["1l_4t_0.5h", "full_hsk", "no_hsk", "untrained"]
    assert len(result.records) == 5 and (out / "points" / "2l_8t_0.25h" / "result.json").is_file()


# ---------------------------------------------------------------------------------------------------------------
# Orchestration with fake stages (fast): shards, merge, restart of interrupted points


@pytest.fixture
def fake_stages(monkeypatch):
    """Replace the training stages by instant fakes whose dev accuracy depends on the point's budget."""
    import mudkd.core.stages.distill as distill_module

    calls = []

    def fake_hsk(recipe, events=None, resume=False):
        calls.append(("hsk", recipe.hsk.output_dir))
        Path(recipe.hsk.output_dir).mkdir(parents=True)
        return StageResult(recipe.hsk.output_dir, {}, {})

    def fake_pred(recipe, events=None, resume=False):
        calls.append(("pred", recipe.pred.output_dir))
        Path(recipe.pred.output_dir).mkdir(parents=True)
        score = 0.5 + 0.01 * (recipe.hsk.keep_tokens or 0) + 0.001 * recipe.training.seed
        selected = {"selected_step": recipe.pred.eval_step, "selected_on": f"split {recipe.training.selection_split}"}
        return StageResult(
            recipe.pred.output_dir, {"accuracy": score, "f1": score / 2}, {"selection": "accuracy", **selected}
        )

    def fake_evaluate(recipe, events=None):
        calls.append(("eval", recipe.student.model))
        return StageResult(recipe.student.model, {"accuracy": 0.25, "f1": 0.125}, {"selection": "accuracy"})

    monkeypatch.setattr(distill_module, "run_hsk", fake_hsk)
    monkeypatch.setattr(distill_module, "run_pred", fake_pred)
    monkeypatch.setattr(distill_module, "evaluate_student", fake_evaluate)
    return calls


def online_sweep(tmp_path, models, out: Path) -> Path:
    teacher, student = models
    write_base(tmp_path, teacher, student)
    return write_sweep(
        tmp_path,
        f"""
base = "base.toml"
output_dir = "{out}"
teacher_free = false
baselines = ["no_hsk"]
[grid]
keep_tokens = [2, 4, 8]
seed = [1, 2]
""",
        name=f"{out.name}.toml",
    )


def comparable(records):
    return sorted((r["id"], r["kind"], r["dev_metric"], r["hsk_fraction"], r["recipe_hash"]) for r in records)


def test_merging_two_shards_equals_the_unsharded_sweep(tmp_path, models, fake_stages):
    whole = online_sweep(tmp_path, models, tmp_path / "whole")
    sweep = read_sweep(whole)
    expected = core.run(sweep, make_recipe_builder(sweep)).records
    parts = []
    for index in (1, 2):
        part = read_sweep(whole, sets=[f'output_dir="{tmp_path / f"part{index}"}"'])
        result = core.run(part, make_recipe_builder(part), shard=(index, 2))
        assert result.shard == f"{index}/2" and result.pending  # the other shard's points
        parts.append(result)
    assert not {r["id"] for r in parts[0].records} & {r["id"] for r in parts[1].records}
    merged = core.merge([tmp_path / "part1", tmp_path / "part2"], into=tmp_path / "merged")
    assert comparable(merged.records) == comparable(expected) and len(expected) == 7
    assert [r["id"] for r in merged.records] == [r["id"] for r in expected]  # grid order
    assert json.loads((tmp_path / "merged" / "results.json").read_text()) == merged.records
    assert Path(merged.plots[0]).read_bytes().startswith(PNG_MAGIC) and merged.pending == []
    # a grid block's seed axis (the older way) is averaged per point too: k2-s1 and k2-s2 are one point
    summary = {row["point"]: row for row in merged.summary}
    assert list(summary) == ["no_hsk", "k2", "k4", "k8"] and summary["k8"]["runs"] == ["k8-s1", "k8-s2"]
    assert summary["k8"]["mean"] == pytest.approx(0.5815) and summary["no_hsk"]["n"] == 1


def test_an_interrupted_point_restarts_and_a_changed_recipe_retrains(tmp_path, models, fake_stages):
    path = online_sweep(tmp_path, models, tmp_path / "out")
    sweep = read_sweep(path)
    core.run(sweep, make_recipe_builder(sweep))
    point = tmp_path / "out" / "points" / "k4-s1"
    (point / "result.json").unlink()  # as after kill -9 in the middle of the point
    from mudkd.core.outputs import StagingDir

    with StagingDir(point / "hsk", command="distill hsk") as staging:  # a real (marked) staging dir, then the kill
        (staging.path / "junk").write_text("half a checkpoint")
    fake_stages.clear()
    result = core.run(sweep, make_recipe_builder(sweep))
    assert result.ran == ["k4-s1"] and not (point / "hsk.partial").exists() and (point / "result.json").is_file()
    assert fake_stages == [("hsk", str(point / "hsk")), ("pred", str(point / "pred"))]
    changed = core.run(sweep, make_recipe_builder(sweep, ["pred.learning_rate=1e-3"]))
    assert len(changed.ran) == 7  # every point's recipe changed: none of the old results is reused


def test_a_foreign_non_empty_output_dir_is_refused(tmp_path, models, fake_stages):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "precious.txt").write_text("keep me")
    sweep = read_sweep(online_sweep(tmp_path, models, tmp_path / "out"))
    with pytest.raises(RecipeError, match="holds no sweep"):
        core.run(sweep, make_recipe_builder(sweep))
    assert fake_stages == []


def test_runs_an_edited_sweep_no_longer_plans_are_left_out_of_run_and_merge(tmp_path, models, fake_stages):
    path = online_sweep(tmp_path, models, tmp_path / "a")
    sweep = read_sweep(path)
    core.run(sweep, make_recipe_builder(sweep))
    smaller = read_sweep(path, sets=["grid.keep_tokens=[2]"])
    result = core.run(smaller, make_recipe_builder(smaller))
    assert [r["id"] for r in result.records] == ["no_hsk", "k2-s1", "k2-s2"] and result.ran == []
    assert sorted(result.stale) == ["k4-s1", "k4-s2", "k8-s1", "k8-s2"]
    merged = core.merge([tmp_path / "a"], into=tmp_path / "m")
    assert [r["id"] for r in merged.records] == ["no_hsk", "k2-s1", "k2-s2"]
    assert [row["point"] for row in merged.summary] == ["no_hsk", "k2"]


def test_merge_refuses_a_point_finished_with_different_recipes(tmp_path, models, fake_stages):
    path = online_sweep(tmp_path, models, tmp_path / "a")
    sweep = read_sweep(path)
    core.run(sweep, make_recipe_builder(sweep))
    other = read_sweep(path, sets=[f'output_dir="{tmp_path / "b"}"'])
    core.run(other, make_recipe_builder(other, ["pred.learning_rate=1e-3"]), shard=(1, 7))
    with pytest.raises(RecipeError, match="different recipes"):
        core.merge([tmp_path / "a", tmp_path / "b"], into=tmp_path / "m")


def seeded_sweep(tmp_path, models, out: Path, seeds: str = "[1, 2, 3]") -> Path:
    teacher, student = models
    write_base(tmp_path, teacher, student)
    return write_sweep(
        tmp_path,
        f"""
base = "base.toml"
output_dir = "{out}"
teacher_free = false
baselines = ["untrained", "no_hsk", "full_hsk"]
seeds = {seeds}
[grid]
keep_tokens = [2, 4]
""",
        name=f"{out.name}.toml",
    )


def test_every_point_and_baseline_runs_once_per_seed_and_resume_is_per_run(tmp_path, models, fake_stages):
    path = seeded_sweep(tmp_path, models, tmp_path / "out")
    sweep = read_sweep(path)
    result = core.run(sweep, make_recipe_builder(sweep))
    runs = ["untrained"] + [f"{point}-s{seed}" for seed in (1, 2, 3) for point in ("no_hsk", "full_hsk", "k2", "k4")]
    assert result.ran == runs and [r["id"] for r in result.records] == runs
    student = make_recipe_builder(sweep)({}).student.model
    assert [call for call in fake_stages if call[0] == "eval"] == [("eval", student)]  # once, not per seed
    pred_calls = [call for call in fake_stages if call[0] == "pred"]
    assert len(pred_calls) == 12 and len([call for call in fake_stages if call[0] == "hsk"]) == 9  # not no_hsk
    by_id = {r["id"]: r for r in result.records}
    assert [by_id[f"k4-s{seed}"]["seed"] for seed in (1, 2, 3)] == [1, 2, 3] and by_id["k4-s2"]["point"] == "k4"
    assert by_id["no_hsk-s3"]["updates"] == by_id["k4-s3"]["updates"] == 4 and by_id["untrained"]["updates"] == 0
    # an interrupted run of one (point, seed) is redone alone; the other seeds of the point are kept
    (tmp_path / "out" / "points" / "k4-s2" / "result.json").unlink()
    (tmp_path / "out" / "points" / "no_hsk-s3" / "result.json").unlink()
    fake_stages.clear()
    again = core.run(sweep, make_recipe_builder(sweep))
    assert again.ran == ["k4-s2", "no_hsk-s3"] and len(again.skipped) == 11
    assert fake_stages == [
        ("hsk", str(tmp_path / "out" / "points" / "k4-s2" / "hsk")),
        ("pred", str(tmp_path / "out" / "points" / "k4-s2" / "pred")),
        ("pred", str(tmp_path / "out" / "points" / "no_hsk-s3" / "pred")),
    ]
    # a sweep with one more seed runs only the new seed's runs
    more = read_sweep(path, sets=["seeds=[1, 2, 3, 4]"])
    fake_stages.clear()
    assert core.run(more, make_recipe_builder(more)).ran == ["no_hsk-s4", "full_hsk-s4", "k2-s4", "k4-s4"]
    # fewer seeds: the other seeds' runs stay on disk but are left out of the results and the averages
    fewer = runner.invoke(app, ["sweep", str(path), "--set", "seeds=[1]", "--json"])
    assert fewer.exit_code == 0, fewer.output
    document = json.loads(fewer.stdout)
    assert document["ran"] == [] and len(document["points"]) == 5
    assert sorted(document["stale"]) == sorted(
        f"{p}-s{s}" for s in (2, 3, 4) for p in ("no_hsk", "full_hsk", "k2", "k4")
    )
    assert {row["point"]: row["n"] for row in document["summary"]} == {
        "untrained": 1,
        "no_hsk": 1,
        "full_hsk": 1,
        "k2": 1,
        "k4": 1,
    }
    text = runner.invoke(app, ["sweep", str(path), "--set", "seeds=[1]"])
    assert "12 finished runs" in text.stderr and (tmp_path / "out" / "points" / "k4-s3" / "result.json").is_file()


def test_summary_mean_and_std_over_seeds(tmp_path, models, fake_stages):
    """The fake prediction stage scores 0.5 + 0.01 k + 0.001 seed: k4 at seeds 1, 2, 3 scores 0.541, 0.542,
    0.543 (mean 0.542, sample std 0.001); no_hsk (k unset) 0.501, 0.502, 0.503; untrained one 0.25 (no std)."""
    path = seeded_sweep(tmp_path, models, tmp_path / "out")
    sweep = read_sweep(path)
    result = core.run(sweep, make_recipe_builder(sweep))
    summary = {row["point"]: row for row in result.summary}
    assert list(summary) == ["untrained", "no_hsk", "full_hsk", "k2", "k4"]
    k4 = summary["k4"]
    assert (k4["n"], k4["seeds"], k4["runs"]) == (3, [1, 2, 3], ["k4-s1", "k4-s2", "k4-s3"])
    assert k4["mean"] == pytest.approx(0.542) and k4["std"] == pytest.approx(0.001)
    assert (k4["min"], k4["max"]) == (pytest.approx(0.541), pytest.approx(0.543))
    assert summary["no_hsk"]["mean"] == pytest.approx(0.502) and summary["no_hsk"]["std"] == pytest.approx(0.001)
    untrained = summary["untrained"]
    assert (untrained["n"], untrained["mean"], untrained["std"], untrained["seeds"]) == (1, 0.25, None, [])
    rows = list(csv.DictReader((tmp_path / "out" / "summary.csv").open()))
    assert [row["point"] for row in rows] == list(summary)
    assert rows[4]["n"] == "3" and float(rows[4]["mean"]) == pytest.approx(0.542) and rows[4]["seeds"] == "1 2 3"
    assert float(rows[4]["std"]) == pytest.approx(0.001) and rows[0]["std"] == "" and rows[4]["updates"] == "4"
    results = list(csv.DictReader((tmp_path / "out" / "results.csv").open()))
    assert len(results) == 13 and [r["point"] for r in results[-4:]] == ["no_hsk", "full_hsk", "k2", "k4"]
    # per-seed rows a reader can pair: seed, point, metric, the checkpoint selected and on which set (a sweep
    # selects on 20 % of train unless its base recipe says otherwise)
    k4_runs = [r for r in results if r["point"] == "k4"]
    assert [(r["seed"], r["dev_metric"][:5]) for r in k4_runs] == [("1", "0.541"), ("2", "0.542"), ("3", "0.543")]
    assert {r["selected_on"] for r in k4_runs} == {"split 0.2"} and k4_runs[0]["selected_step"] != ""
    # differences to the baselines, paired over seeds 1-3: k4 - no_hsk = 0.040 at every seed (an exact interval);
    # the untrained student (one deterministic value) against no_hsk: -0.252, Welch with se 0.001 / sqrt(3), 2 df
    assert float(rows[4]["vs_no_hsk"]) == pytest.approx(0.04) and rows[4]["vs_no_hsk_test"] in {"paired", "exact"}
    assert float(rows[4]["vs_no_hsk_low"]) == pytest.approx(0.04, abs=1e-9)
    assert float(rows[0]["vs_no_hsk"]) == pytest.approx(-0.252) and rows[0]["vs_no_hsk_test"] == "welch"
    half = 4.302653 * 0.001 / 3**0.5  # t(0.975, 2) · se
    assert float(rows[0]["vs_no_hsk_high"]) == pytest.approx(-0.252 + half, abs=1e-6)
    assert rows[1]["vs_no_hsk"] == "" and rows[2]["vs_full_hsk"] == ""  # a baseline against itself
    # the CLI's table and --json show the same statistics
    text = runner.invoke(app, ["sweep", str(path)])
    assert text.exit_code == 0, text.output
    assert "0.5420 ± 0.0010" in text.stdout and "Sweep results (5 points, 13 runs" in text.stdout
    document = json.loads(runner.invoke(app, ["sweep", str(path), "--json"]).stdout)
    assert document["summary"][4]["std"] == pytest.approx(0.001) and document["summary_csv"].endswith("summary.csv")


def test_plot_draws_means_with_error_bars_baseline_bands_and_the_untrained_level(tmp_path):
    from matplotlib import pyplot as plt
    from matplotlib.container import ErrorbarContainer
    from matplotlib.patches import Rectangle

    def run(point, kind, seed, value, fraction=0.0, series=""):
        return {
            "id": f"{point}-s{seed}",
            "point": point,
            "kind": kind,
            "seed": seed,
            "series": series,
            "hsk_fraction": fraction,
            "dev_metric": value,
            "metric": "accuracy",
        }

    records = [
        {"id": "untrained", "kind": "untrained", "dev_metric": 0.5, "hsk_fraction": 0.0, "metric": "accuracy"},
        *(run("no_hsk", "no_hsk", seed, value) for seed, value in ((1, 0.70), (2, 0.74))),
        *(run("full_hsk", "full_hsk", seed, value, 1.0) for seed, value in ((1, 0.80), (2, 0.80))),
        *(run("k1", "hsk", seed, value, 0.01, "length") for seed, value in ((1, 0.75), (2, 0.77), (3, 0.79))),
        *(run("k2", "hsk", seed, value, 0.02, "length") for seed, value in ((1, 0.78), (2, 0.78))),
    ]
    figure = core.plot_figure(records)
    axes = figure.axes[0]
    bars = [c for c in axes.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 1
    line, _, (vertical,) = bars[0]
    assert list(line.get_xdata()) == [0.01, 0.02] and list(line.get_ydata()) == pytest.approx([0.77, 0.78])
    segments = vertical.get_segments()  # k1: mean 0.77 ± sample std 0.02; k2: 0.78 ± 0
    assert [tuple(seg[:, 1]) for seg in segments] == [pytest.approx((0.75, 0.79)), pytest.approx((0.78, 0.78))]
    bands = [p for p in axes.patches if isinstance(p, Rectangle)]
    std = 0.02 * 2**0.5  # no_hsk 0.70, 0.74: mean 0.72, sample std sqrt(2 * 0.02^2 / 1)
    assert [(band.get_y(), band.get_y() + band.get_height()) for band in bands] == [
        (pytest.approx(0.72 - std), pytest.approx(0.72 + std))
    ]  # full_hsk has std 0: its line, no band
    labels = [text.get_text() for text in axes.get_legend().get_texts()]
    assert "pruned, untrained (0.5)" in labels and "length (mean ± std)" in labels
    assert f"no HSK (prediction only) (0.72 ± {std:.2g}, n=2)" in labels
    # 0.5 lies far below the trained runs (0.70-0.80): a panel of its own under a broken y axis
    assert len(figure.axes) == 2 and figure.axes[1].get_ylim()[0] < 0.5 < figure.axes[1].get_ylim()[1]
    assert axes.get_ylim()[0] > 0.6
    untrained = [ln for ax in figure.axes for ln in ax.get_lines() if list(ln.get_ydata()) == [0.5, 0.5]]
    assert len(untrained) == 1 and untrained[0].get_linestyle() == "--"
    plt.close(figure)
    close = core.plot_figure([{**records[0], "dev_metric": 0.69}, *records[1:]])
    assert len(close.axes) == 1 and any(list(ln.get_ydata()) == [0.69, 0.69] for ln in close.axes[0].get_lines())
    plt.close(close)
    lines = text_curve(records)
    assert any("pruned, untrained: 0.5" in line for line in lines) and "means over seeds" in lines[0]


def test_cli_bad_seeds_exit_2(tmp_path):
    (tmp_path / "base.toml").write_text("")
    path = write_sweep(tmp_path, 'base = "base.toml"\nseeds = [3, 3]\n[grid]\nkeep_tokens = [4]\n')
    result = runner.invoke(app, ["sweep", str(path), "--dry-run"])
    assert result.exit_code == 2 and "seeds: duplicate values [3, 3]" in result.stderr
    empty = runner.invoke(app, ["sweep", str(path), "--dry-run", "--set", "seeds=[]"])
    assert empty.exit_code == 2 and "seeds: give at least one seed" in empty.stderr and "Traceback" not in empty.output


def test_text_curve_and_plot_from_records(tmp_path):
    records = [
        {"id": "no_hsk", "kind": "no_hsk", "dev_metric": 0.70, "hsk_fraction": 0.0, "metric": "accuracy"},
        {"id": "full_hsk", "kind": "full_hsk", "dev_metric": 0.85, "hsk_fraction": 1.0, "metric": "accuracy"},
        *(
            {
                "id": f"k{k}",
                "kind": "hsk",
                "series": "length · left_first",
                "hsk_fraction": k / 1000,
                "dev_metric": 0.8 + k / 1000,
                "metric": "accuracy",
            }
            for k in (1, 10, 100)
        ),
        {
            "id": "w",
            "kind": "hsk",
            "series": "width · mag",
            "hsk_fraction": 0.01,
            "dev_metric": 0.9,
            "metric": "accuracy",
        },
    ]
    lines = text_curve(records, width=40, height=8)
    assert len(lines) == 1 + 8 + 2 + 4 and all(len(line) <= 60 for line in lines)
    chart = "\n".join(lines[1:9])
    assert chart.count("a") == 3 and chart.count("b") == 1 and "─" * 10 in chart and "┄" * 10 in chart
    assert "0.1%" in lines[10] and "10%" in lines[10]
    plots = core.write_plots(records, tmp_path)
    assert Path(plots[0]).read_bytes().startswith(PNG_MAGIC)
    assert text_curve([]) == [] and core.write_plots([], tmp_path / "none") == []


# ---------------------------------------------------------------------------------------------------------------
# CLI


def test_cli_dry_run_json_prints_the_grid_and_writes_nothing(finished, tmp_path):
    out = tmp_path / "fresh"
    result = runner.invoke(app, ["sweep", str(finished["sweep"]), "--dry-run", "--json", "-o", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["dry_run"] is True and document["output_dir"] == str(out)
    ids = ["untrained", "no_hsk", "full_hsk", "1l_4t_0.5h", "2l_8t_0.25h"]
    assert [p["id"] for p in document["points"]] == ids
    point = document["points"][3]
    assert point["hsk_fraction"] == pytest.approx(1 / 3 * 4 / 16 * 0.5)
    assert point["budget"].startswith("K=1") and point["store"] == "store"
    assert [p["updates"] for p in document["points"]] == [0, 4, 4, 4, 4]  # the fair baseline: 2 + 2 updates
    assert document["points"][1]["pred_warmup"] == 0.1 and "pred.max_steps=4" in document["points"][1]["overrides"]
    assert any(note.startswith("no_hsk: prediction distillation only for 4 updates") for note in document["notes"])
    assert len(document["stores"]) == 1 and document["stores"][0]["points"] == ["1l_4t_0.5h", "2l_8t_0.25h"]
    assert not out.exists()
    shard_two = runner.invoke(app, ["sweep", str(finished["sweep"]), "--dry-run", "--json", "--shard", "2/2"])
    assert [p["id"] for p in json.loads(shard_two.stdout)["points"]] == ["no_hsk", "1l_4t_0.5h"]


def test_cli_dry_run_table(finished):
    result = runner.invoke(app, ["sweep", str(finished["sweep"]), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "1l_4t_0.5h" in result.stdout and "K=2 k=8 ρ=0.25" in result.stdout and "yes" in result.stdout
    assert "4 (2+2)" in result.stdout and "4 pred" in result.stdout and "0 (eval)" in result.stdout


def test_cli_rerun_of_a_finished_sweep_renders_results(finished, monkeypatch):
    import mudkd.core.stages.distill as distill_module

    def refuse(*args, **kwargs):
        raise AssertionError("a finished point was retrained")

    monkeypatch.setattr(distill_module, "run_hsk", refuse)
    monkeypatch.setattr(distill_module, "run_pred", refuse)
    result = runner.invoke(app, ["sweep", str(finished["sweep"]), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["output_dir"] == str(finished["out"]) and len(document["points"]) == 5
    assert [row["n"] for row in document["summary"]] == [1] * 5 and document["summary"][0]["point"] == "untrained"
    assert document["plots"] == [str(finished["out"] / "marginal_utility.png")] and document["ran"] == []
    text = runner.invoke(app, ["sweep", str(finished["sweep"])])
    assert text.exit_code == 0, text.output
    assert "Sweep results (5 points, 5 runs" in text.stdout and "dev accuracy vs HSK fraction" in text.stdout
    assert "marginal_utility.png" in text.stdout and "5 already done" in text.stderr
    assert "pruned, untrained" in text.stdout and "summary.csv" in text.stdout


def test_cli_bad_sweep_file_exits_2(tmp_path):
    (tmp_path / "base.toml").write_text("")
    path = write_sweep(tmp_path, 'base = "base.toml"\n[grid]\nkeep_tokens = [4]\nkeep_layer = [1]\n')
    result = runner.invoke(app, ["sweep", str(path), "--dry-run"])
    assert result.exit_code == 2
    assert "Error:" in result.stderr and "grid.keep_layer: unknown key (did you mean 'keep_layers'?)" in result.stderr
    assert "Traceback" not in result.output
    missing = runner.invoke(app, ["sweep", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 2 and "not found" in missing.stderr


def test_cli_reports_points_a_given_store_cannot_serve(finished, tmp_path):
    store = finished["out"] / "store"  # K = 1..2 (top layers), k = 8 tokens
    base = (finished["root"] / "base.toml").read_text().replace("[hsk]\n", f'[hsk]\nhsk_store = "{store}"\n', 1)
    (tmp_path / "base.toml").write_text(base)
    path = write_sweep(
        tmp_path,
        f'base = "base.toml"\noutput_dir = "{tmp_path / "out"}"\n[grid]\nconfig_3d = ["1l_4t_0.5h", "1l_12t_0.5h"]\n',
    )
    result = runner.invoke(app, ["sweep", str(path)])
    assert result.exit_code == 2, result.output
    assert "point 1l_12t_0.5h" in result.stderr and "store kept only 8" in result.stderr
    assert "point 1l_4t_0.5h" not in result.stderr and "Hint:" in result.stderr
    assert not (tmp_path / "out").exists()


def test_cli_sweep_merge(tmp_path, models, fake_stages):
    path = online_sweep(tmp_path, models, tmp_path / "whole")
    for index in (1, 2):
        result = runner.invoke(
            app, ["sweep", str(path), "--shard", f"{index}/2", "-o", str(tmp_path / f"s{index}"), "--json"]
        )
        assert result.exit_code == 0, result.output
    merged = runner.invoke(
        app, ["sweep-merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "-o", str(tmp_path / "m"), "--json"]
    )
    assert merged.exit_code == 0, merged.output
    document = json.loads(merged.stdout)
    assert len(document["points"]) == 7 and document["pending"] == []
    assert (tmp_path / "m" / "results.csv").is_file()
    assert (tmp_path / "m" / "points" / "k2-s1" / "result.json").is_file()
    bad = runner.invoke(app, ["sweep-merge", str(tmp_path / "nothing"), "-o", str(tmp_path / "m2")])
    assert bad.exit_code == 2 and "not a sweep output directory" in bad.stderr


def test_sweeps_select_on_a_split_of_train_unless_the_base_recipe_says_otherwise(tmp_path, models):
    """Unset in the base recipe: every point selects on 20 % of train; an explicit 0 keeps selecting on dev, with
    the recipe hash of a sweep from before the option existed."""
    from mudkd.core.sweep.plan import _recipe_hash  # the hash is what resume keys runs on

    sweep = read_sweep(seeded_sweep(tmp_path, models, tmp_path / "out"))
    planned = core.plan(sweep, make_recipe_builder(sweep))
    assert {p.recipe.training.selection_split for p in planned.points} == {0.2}
    assert any(note.startswith("checkpoint selection: on 20% of the training examples") for note in planned.notes)
    off = core.plan(sweep, make_recipe_builder(sweep, ["training.selection_split=0"]))
    assert {p.recipe.training.selection_split for p in off.points} == {0.0}
    assert any("on dev, the set reported" in note for note in off.notes)
    recipe = off.points[1].recipe

    def with_split(value):
        return recipe.model_copy(update={"training": recipe.training.model_copy(update={"selection_split": value})})

    assert _recipe_hash(with_split(0.0)) == _recipe_hash(with_split(None)) != _recipe_hash(with_split(0.2))
