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
from mudkd.recipe.sweep import (
    Sweep,
    apply_overrides,
    expand_grid,
    make_recipe_builder,
    parse_shard,
    read_sweep,
    shard,
)
from tests.helpers import FIXTURE_GLUE, REPO_ROOT, make_tiny_bert

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------------------------
# Fixtures: a tiny teacher, its pruned student, a base recipe and a finished 4-point sweep


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny teacher (2 layers, hidden 32; fine-tuned shape, random weights) and a pruned 2-layer student."""
    import torch
    from transformers import AutoTokenizer

    from mudkd.core.pruning import TaylorScores, prune_bert, save_pruned

    root = tmp_path_factory.mktemp("sweep_models")
    teacher = make_tiny_bert(root / "teacher")
    generator = torch.Generator().manual_seed(0)
    scores = TaylorScores(
        head_scores=[torch.rand(4, generator=generator, dtype=torch.float64) for _ in range(2)],
        ffn_scores=[torch.rand(64, generator=generator, dtype=torch.float64) for _ in range(2)],
        num_batches=1,
        num_examples=4,
        head_size=8,
        hidden_size=32,
    )
    student = prune_bert(teacher, scores, keep_heads=2, num_layers=2, ffn_hidden_dim=32, emb_hidden_dim=16)
    save_pruned(student, AutoTokenizer.from_pretrained(root / "teacher"), root / "student")
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
max_steps = 2
train_batch_size = 16
[pred]
max_steps = 2
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
baselines = ["no_hsk", "full_hsk"]
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
    """A real 4-point sweep (no_hsk, full_hsk, two 3D budgets), run once with spies on the teacher."""
    import torch

    import mudkd.core.cache as cache_module
    import mudkd.core.distill as distill_module

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
    assert 6 <= len(points) <= 30 and {"no_hsk", "full_hsk", "1l_10t_0.1h"} <= {p.id for p in points}
    assert builder({}).task.name == "sst-2" and Path(sweep.base).name == "sweep_base_sst2.toml"
    for point in points:
        builder(point.overrides)


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
    ids = ["no_hsk", "full_hsk", "1l_4t_0.5h", "2l_8t_0.25h"]
    assert [r["id"] for r in result.records] == ids and result.ran == ids and result.skipped == []
    document = json.loads((out / "results.json").read_text())
    assert [r["id"] for r in document] == ids
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [row["id"] for row in rows] == ids and "dev_accuracy" in rows[0]
    for record in document:
        assert record == json.loads((out / "points" / record["id"] / "result.json").read_text())
        assert record["metric"] == "accuracy" and 0.0 <= record["dev_metric"] <= 1.0
        assert record["dev_metrics"]["accuracy"] == record["dev_metric"] and record["pred_seconds"] > 0
        assert (out / "points" / record["id"] / "pred" / "model.safetensors").is_file()
    by_id = {r["id"]: r for r in document}
    assert by_id["no_hsk"]["hsk_fraction"] == 0 and by_id["no_hsk"]["hsk_seconds"] is None
    assert by_id["full_hsk"]["hsk_fraction"] == 1.0 and by_id["full_hsk"]["elements_per_example"] == 3 * 16 * 32
    assert by_id["1l_4t_0.5h"]["hsk_fraction"] == pytest.approx(1 / 3 * 4 / 16 * 0.5)
    assert by_id["1l_4t_0.5h"]["elements_per_example"] == 64 and by_id["1l_4t_0.5h"]["hsk_seconds"] > 0
    assert (out / "points" / "1l_4t_0.5h" / "hsk" / "knowledge_budget.json").is_file()


def test_plot_is_a_png_and_the_text_curve_has_every_series(finished):
    plots = finished["result"].plots
    assert plots == [str(finished["out"] / "marginal_utility.png")]
    data = Path(plots[0]).read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 2000
    lines = text_curve(finished["result"].records)
    assert lines[0].startswith("dev accuracy") and any(line.strip().startswith("a = 3D") for line in lines)
    assert any("full hsk" in line for line in lines) and any("no hsk" in line for line in lines)


def test_rerun_skips_finished_points_and_retrains_only_a_missing_one(finished, monkeypatch):
    import mudkd.core.cache as cache_module
    import mudkd.core.distill as distill_module

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
    assert result.ran == ["2l_8t_0.25h"] and sorted(result.skipped) == ["1l_4t_0.5h", "full_hsk", "no_hsk"]
    assert len(result.records) == 4 and (out / "points" / "2l_8t_0.25h" / "result.json").is_file()


# ---------------------------------------------------------------------------------------------------------------
# Orchestration with fake stages (fast): shards, merge, restart of interrupted points


@pytest.fixture
def fake_stages(monkeypatch):
    """Replace the training stages by instant fakes whose dev accuracy depends on the point's budget."""
    import mudkd.core.distill as distill_module

    calls = []

    def fake_hsk(recipe, events=None, resume=False):
        calls.append(("hsk", recipe.hsk.output_dir))
        Path(recipe.hsk.output_dir).mkdir(parents=True)
        return StageResult(recipe.hsk.output_dir, {}, {})

    def fake_pred(recipe, events=None, resume=False):
        calls.append(("pred", recipe.pred.output_dir))
        Path(recipe.pred.output_dir).mkdir(parents=True)
        score = 0.5 + 0.01 * (recipe.hsk.keep_tokens or 0) + 0.001 * recipe.training.seed
        return StageResult(recipe.pred.output_dir, {"accuracy": score, "f1": score / 2}, {"selection": "accuracy"})

    monkeypatch.setattr(distill_module, "run_hsk", fake_hsk)
    monkeypatch.setattr(distill_module, "run_pred", fake_pred)
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


def test_an_interrupted_point_restarts_and_a_changed_recipe_retrains(tmp_path, models, fake_stages):
    path = online_sweep(tmp_path, models, tmp_path / "out")
    sweep = read_sweep(path)
    core.run(sweep, make_recipe_builder(sweep))
    point = tmp_path / "out" / "points" / "k4-s1"
    (point / "result.json").unlink()  # as after kill -9 in the middle of the point
    (point / "hsk.partial").mkdir()
    (point / "hsk.partial" / "junk").write_text("half a checkpoint")
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


def test_merge_refuses_a_point_finished_with_different_recipes(tmp_path, models, fake_stages):
    path = online_sweep(tmp_path, models, tmp_path / "a")
    sweep = read_sweep(path)
    core.run(sweep, make_recipe_builder(sweep))
    other = read_sweep(path, sets=[f'output_dir="{tmp_path / "b"}"'])
    core.run(other, make_recipe_builder(other, ["pred.learning_rate=1e-3"]), shard=(1, 7))
    with pytest.raises(RecipeError, match="different recipes"):
        core.merge([tmp_path / "a", tmp_path / "b"], into=tmp_path / "m")


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
    assert [p["id"] for p in document["points"]] == ["no_hsk", "full_hsk", "1l_4t_0.5h", "2l_8t_0.25h"]
    assert document["points"][2]["hsk_fraction"] == pytest.approx(1 / 3 * 4 / 16 * 0.5)
    assert document["points"][2]["budget"].startswith("K=1") and document["points"][2]["store"] == "store"
    assert len(document["stores"]) == 1 and document["stores"][0]["points"] == ["1l_4t_0.5h", "2l_8t_0.25h"]
    assert not out.exists()
    shard_two = runner.invoke(app, ["sweep", str(finished["sweep"]), "--dry-run", "--json", "--shard", "2/2"])
    assert [p["id"] for p in json.loads(shard_two.stdout)["points"]] == ["full_hsk", "2l_8t_0.25h"]


def test_cli_dry_run_table(finished):
    result = runner.invoke(app, ["sweep", str(finished["sweep"]), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "1l_4t_0.5h" in result.stdout and "K=2 k=8 ρ=0.25" in result.stdout and "yes" in result.stdout


def test_cli_rerun_of_a_finished_sweep_renders_results(finished, monkeypatch):
    import mudkd.core.distill as distill_module

    def refuse(*args, **kwargs):
        raise AssertionError("a finished point was retrained")

    monkeypatch.setattr(distill_module, "run_hsk", refuse)
    monkeypatch.setattr(distill_module, "run_pred", refuse)
    result = runner.invoke(app, ["sweep", str(finished["sweep"]), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["output_dir"] == str(finished["out"]) and len(document["points"]) == 4
    assert document["plots"] == [str(finished["out"] / "marginal_utility.png")] and document["ran"] == []
    text = runner.invoke(app, ["sweep", str(finished["sweep"])])
    assert text.exit_code == 0, text.output
    assert "Sweep results (4 points)" in text.stdout and "dev accuracy vs HSK fraction" in text.stdout
    assert "marginal_utility.png" in text.stdout and "4 already done" in text.stderr


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
