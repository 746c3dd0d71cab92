"""``mudkd search``: the bisection on synthetic metric curves, the ladders, resume, bad inputs, dry run, end to end."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mudkd.cli.app import app
from mudkd.core import search as core
from mudkd.core.search.decide import NO_HSK, max_runs_needed, next_step
from mudkd.core.search.ladder import build_ladder
from mudkd.recipe.search import read_search
from tests.helpers import FIXTURE_GLUE, make_teacher_and_student

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------------------------
# The decision function on synthetic, deterministic "metric vs budget" curves


def drive(metric, *, rungs, tolerance=0.5, seeds=3, max_runs=100, observations=None):
    """Run the search against ``metric(index, seed_index)``; return (runs asked for, final outcome)."""
    observations = {k: list(v) for k, v in (observations or {}).items()}
    asked = []
    while True:
        step = next_step(observations, rungs=rungs, tolerance=tolerance, seeds=seeds, max_runs=max_runs)
        if step.run is None:
            return asked, step.outcome
        asked.append((step.run.index, step.run.seed_index))
        observations.setdefault(step.run.index, []).append(metric(step.run.index, step.run.seed_index))


def staircase(index, seed_index, *, rungs=15):
    """no HSK 0.70; rung i: 0.70 + 0.02·(i + 1), capped at 0.90 (reached from rung 9 on); full HSK 0.90 exactly."""
    if index == NO_HSK:
        return 0.70
    if index == rungs:
        return 0.90
    return round(min(0.70 + 0.02 * (index + 1), 0.90), 12)


def test_bisection_finds_the_known_minimum_in_log_runs():
    asked, outcome = drive(staircase, rungs=15, seeds=1)
    # threshold 0.895: rung 8 gives 0.88 (short), rung 9 gives 0.90: the answer is 9
    assert outcome.chosen == 9 and outcome.converged and outcome.threshold == pytest.approx(0.895)
    # reference, baseline, rung 0, then bisection of (0, 15): 7, 11, 9, 8 — 1 + ceil(log2(15)) rungs instead of 15
    assert asked == [(15, 0), (-1, 0), (0, 0), (7, 0), (11, 0), (9, 0), (8, 0)]
    assert outcome.runs == 7 and max_runs_needed(15, 1) == 7 and max_runs_needed(15, 3) == 21
    assert "rung 9 is within 0.5 points of full HSK" in outcome.reason and "rung 8 is short" in outcome.reason


@pytest.mark.parametrize(("tolerance", "expected"), [(0.0, 9), (0.5, 9), (2.5, 8), (5.0, 7), (10.0, 4), (21.0, -1)])
def test_the_answer_follows_the_tolerance(tolerance, expected):
    # threshold 0.90 - t/100; rung i reaches it when 0.72 + 0.02 i >= 0.90 - t/100 (hand-derived), no HSK at t >= 20
    _, outcome = drive(staircase, rungs=15, seeds=1, tolerance=tolerance)
    assert outcome.chosen == expected


def test_nothing_within_tolerance_means_full_hsk():
    _, outcome = drive(lambda i, s: 0.90 if i == 6 else 0.80, rungs=6, seeds=1)
    assert outcome.chosen == 6 and outcome.converged and "only full HSK" in outcome.reason


def test_the_run_cap_is_respected_and_the_answer_is_an_upper_bound():
    asked, outcome = drive(staircase, rungs=15, seeds=1, max_runs=5)
    assert len(asked) == 5 and outcome.runs == 5 and not outcome.converged
    assert asked == [(15, 0), (-1, 0), (0, 0), (7, 0), (11, 0)]
    assert outcome.chosen == 11 and "run cap" in outcome.reason  # the smallest rung known to be within tolerance
    assert "run cap" in outcome.flags and "rung 11 is an upper bound" in outcome.caveat
    _, reference_only = drive(staircase, rungs=15, seeds=3, max_runs=2)
    assert reference_only.runs == 2 and reference_only.reference == pytest.approx(0.90)


def noisy(index, seed_index):
    """Full HSK 0.90 ± 0.01 over 3 seeds (std 0.01), no HSK 0.70; rungs as :func:`staircase`, with seed noise
    +0.000, -0.006, +0.006 on every rung except rung 9, whose first seed dips to 0.888 (just short of 0.895)."""
    if index == 15:
        return (0.90, 0.91, 0.89)[seed_index]
    if index == NO_HSK:
        return 0.70
    if index == 9:
        return (0.888, 0.906, 0.906)[seed_index]  # mean 0.9000: within tolerance
    return staircase(index, 0) + (0.0, -0.006, 0.006)[seed_index]


def test_every_point_gets_every_seed_and_a_tolerance_inside_the_noise_resolves_nothing():
    """Adding seeds only where a decision looks close is optional stopping: every point gets all of them."""
    asked, outcome = drive(noisy, rungs=15, seeds=3)
    per_point = {}
    for index, seed_index in asked:
        per_point[index] = max(per_point.get(index, 0), seed_index + 1)
    assert set(per_point.values()) == {3}
    # rung 11 (0.900, 0.894, 0.906) against full HSK (0.90, 0.91, 0.89): paired differences 0, -0.016, +0.016,
    # se 0.016 / sqrt(3) = 0.0092, one-sided p of "short by 0.5 points" = P(T2 > 0.005 / 0.0092 = 0.54) = 0.32:
    # a 0.5-point tolerance inside 1-point seed noise decides nothing, and the answer is full HSK
    assert outcome.statuses[11].decision == "not resolved" and outcome.statuses[11].p == pytest.approx(0.32, abs=0.01)
    assert outcome.chosen == 15 and "not resolved" in outcome.flags and "rung 11" in outcome.caveat
    # rung 7 - full HSK: -0.04, -0.056, -0.024, 90 % interval -0.04 ± 2.92 · 0.0092 = [-0.067, -0.013]: below
    # -1 point (short at 1 point), straddling -3 points; rung 11 at 3 points: P(T2 > 0.03 / 0.0092 = 3.25) = 0.042
    _, one_point = drive(noisy, rungs=15, seeds=3, tolerance=1.0)
    assert one_point.statuses[7].decision == "short" and one_point.statuses[11].decision == "not resolved"
    _, wide = drive(noisy, rungs=15, seeds=3, tolerance=3.0)
    assert wide.statuses[7].decision == "not resolved" and wide.statuses[11].decision == "within"
    assert wide.statuses[11].p == pytest.approx(0.042, abs=1e-3)
    _, clean = drive(staircase, rungs=15, seeds=3)  # no noise at all: every decision is exact
    assert clean.chosen == 9 and clean.unresolved == [] and clean.caveats == [] and clean.to_dict()["caveat"] == ""


# The five cases of issue 20, each of which the bisection before it got wrong (hand-computed values).


def test_issue20_a_non_monotone_curve_answers_with_the_smallest_budget_when_it_is_within():
    """Rung 0 is within tolerance, rung 3 dips to the baseline: bisection stepped over rung 0 and answered 4."""

    def dip(index, seed_index):
        if index == 7:
            return (0.80, 0.81, 0.79)[seed_index]
        if index in (NO_HSK, 3):
            return (0.70, 0.71, 0.69)[seed_index]
        return (0.805, 0.812, 0.797)[seed_index]

    asked, outcome = drive(dip, rungs=7, tolerance=1.0)
    # rung 0 - full HSK per seed: 0.005, 0.002, 0.007: mean 0.00467, sd 0.00252, se 0.00145;
    # t = (0.00467 + 0.01) / 0.00145 = 10.1 with 2 df: one-sided p 0.0048 < 0.05, within
    assert outcome.chosen == 0 and outcome.statuses[0].p == pytest.approx(0.0048, abs=1e-4)
    assert 3 not in outcome.statuses and outcome.converged and len(asked) == 9


def test_issue20_a_search_cut_short_by_max_runs_says_so():
    """Reference 0.740, 0.731, 0.755, no HSK 0.737 on one seed, tolerance 0.5, --max-runs 4: it said "no HSK
    needed", converged, nothing unresolved."""
    values = {4: (0.740, 0.731, 0.755), NO_HSK: (0.737, 0.737, 0.737)}
    asked, outcome = drive(lambda i, s: values[i][s], rungs=4, max_runs=4)
    assert len(asked) == 4 and not outcome.converged and outcome.chosen == 4  # only full HSK is known
    assert outcome.statuses[NO_HSK].decision == "not resolved"  # one value: no test possible
    assert outcome.to_dict()["flags"] == ["run cap", "not resolved"]
    assert outcome.to_dict()["caveats"][0].startswith("run cap: the search stopped after 4 runs")


def test_issue20_one_seed_is_flagged():
    """--seeds 1: the pooled noise was 0 and nothing was ever flagged."""
    _, outcome = drive(staircase, rungs=15, seeds=1)
    assert "no noise estimate" in outcome.caveat and outcome.flags == ["one seed"]
    assert all(status.p is None for status in outcome.statuses.values())  # untested, and shown as such


def test_issue20_the_references_own_noise_counts():
    """Full HSK 0.70, 0.80 (two seeds), prediction-only 0.80, 0.80, tolerance 1 point: 0.80 is far above the
    threshold 0.74 against the pooled std 0.05, so "no HSK needed" passed. The paired differences 0.10, 0.00 have
    mean 0.05 and se 0.05 (1 df, a Cauchy tail): p = 1/2 - atan((0.05 + 0.01) / 0.05) / pi = 0.221."""
    values = {4: (0.70, 0.80), NO_HSK: (0.80, 0.80)}
    _, outcome = drive(lambda i, s: values.get(i, (0.60, 0.60))[s], rungs=4, seeds=2, tolerance=1.0)
    assert outcome.chosen != NO_HSK and outcome.statuses[NO_HSK].decision == "not resolved"
    assert outcome.statuses[NO_HSK].p == pytest.approx(0.5 - math.atan(1.2) / math.pi)


def test_issue20_names_what_was_compared_and_reports_budgets_that_beat_prediction_only():
    """Full HSK is no better than prediction-only while the smallest budget beats it clearly: the old search
    printed "no HSK needed" after two points and never measured the budget."""
    values = {2: (0.750, 0.740, 0.760), NO_HSK: (0.752, 0.744, 0.757), 0: (0.772, 0.765, 0.778)}
    asked, outcome = drive(lambda i, s: values.get(i, (0.78, 0.78, 0.78))[s], rungs=2, tolerance=1.0)
    # prediction-only - full HSK: 0.002, 0.004, -0.003 → mean 0.001, se 0.00208, t = 0.011 / 0.00208 = 5.28:
    # one-sided p 0.017, within 1 point. Rung 0 - prediction-only: 0.020, 0.021, 0.021 → mean 0.0207, se 0.00033,
    # t = 62, two-sided p 0.00026, Holm (2 comparisons) 0.00052. Full HSK - prediction-only: p 0.68.
    assert outcome.chosen == NO_HSK and (0, 2) in asked
    assert outcome.reason.startswith("prediction-only is within 1 point of full HSK (one-sided p = 0.017")
    (beats,) = outcome.beats_prediction_only
    assert beats["index"] == 0 and beats["p"] == pytest.approx(0.00052, abs=2e-5)
    assert "rung 0 beats prediction-only by +2.1 points" in outcome.reason
    assert outcome.flags == ["full HSK not better than prediction-only"]
    assert "full HSK is not better than prediction-only here (-0.1 points" in outcome.caveat


def test_the_real_sst2_numbers_do_not_show_prediction_only_within_half_a_point():
    """The MiniLM / SST-2 search of the README: full HSK 0.7317, 0.7546, 0.7351; no HSK 0.7477, 0.7385, 0.7397
    (seeds 42-44). Paired differences +0.0160, -0.0161, +0.0046: mean 0.0015, se 0.0093; at 0.5 points
    t = 0.0065 / 0.0093 = 0.70, one-sided p 0.28: not resolved (the old search called it "no HSK needed")."""
    values = {4: (0.7317, 0.7546, 0.7351), NO_HSK: (0.7477, 0.7385, 0.7397)}
    _, outcome = drive(lambda i, s: values.get(i, (0.7592, 0.7614, 0.7672))[s], rungs=4, seeds=3)
    assert outcome.statuses[NO_HSK].decision == "not resolved"
    assert outcome.statuses[NO_HSK].p == pytest.approx(0.28, abs=0.01)
    assert outcome.chosen != NO_HSK and "full HSK not better than prediction-only" in outcome.flags


def test_replaying_recorded_runs_asks_for_nothing_twice():
    asked, outcome = drive(noisy, rungs=15, seeds=3)
    recorded = {}
    for index, seed_index in asked[:5]:
        recorded.setdefault(index, []).append(noisy(index, seed_index))
    rest, resumed = drive(noisy, rungs=15, seeds=3, observations=recorded)
    assert rest == asked[5:] and resumed.chosen == outcome.chosen and resumed.runs == outcome.runs


@pytest.mark.parametrize(
    "kwargs", [{"tolerance": -0.1}, {"max_runs": 0}, {"seeds": 0}, {"rungs": -1}], ids=["tol", "cap", "seeds", "rungs"]
)
def test_next_step_refuses_impossible_settings(kwargs):
    settings = {"rungs": 3, "tolerance": 0.5, "seeds": 1, "max_runs": 5, **kwargs}
    with pytest.raises(ValueError):
        next_step({}, **settings)


# ---------------------------------------------------------------------------------------------------------------
# Ladders


def nominal(text, layers, length):
    from mudkd.knowledge import parse_config_3d

    k_layers, k_tokens, rho = parse_config_3d(text)
    return k_layers * k_tokens * rho / ((layers + 1) * length)


def test_default_3d_ladder_spans_from_a_twentieth_of_a_percent_to_below_full():
    ladder = build_ladder(
        "3d", num_layers=6, seq_length=64, hidden=768, ranked=True, magnitude=True, base=(None, None, 1.0)
    )
    fractions = [nominal(t, 6, 64) for t in ladder]
    assert fractions == sorted(fractions) and len(set(fractions)) == len(fractions)
    assert fractions[0] == pytest.approx(0.0005, rel=0.1) and fractions[-1] < 1.0 and len(ladder) == 11
    assert all(int(t.split("t_")[0].split("l_")[1]) < 64 for t in ladder)  # ranked: never all 64 tokens


def test_one_axis_ladders_keep_the_recipes_other_two_axes():
    common = {"num_layers": 3, "seq_length": 16, "hidden": 32, "magnitude": False}
    depth = build_ladder("depth", ranked=False, base=(None, None, 1.0), **common)
    assert depth == ["1l_16t_1h", "2l_16t_1h", "3l_16t_1h"]  # 4l_16t_1h is full HSK: the reference
    length = build_ladder("length", ranked=True, base=(2, None, 0.5), **common)
    assert length == ["2l_1t_0.5h", "2l_2t_0.5h", "2l_4t_0.5h", "2l_8t_0.5h"]  # ranked: not all 16 tokens
    width = build_ladder("width", ranked=False, base=(1, 4, 1.0), **common)
    assert width == ["1l_4t_0.05h", "1l_4t_0.1h", "1l_4t_0.2h", "1l_4t_0.5h", "1l_4t_1h"]  # rho >= 1/32


# ---------------------------------------------------------------------------------------------------------------
# Tiny models and recipes


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny teacher (2 layers, hidden 32) and a pruned 2-layer student (as in test_sweep)."""
    root = make_teacher_and_student(tmp_path_factory.mktemp("search_models"), layers=2, seed=0, score_dtype="float64")
    return root / "teacher", root / "student"


LADDER = ["1l_2t_0.25h", "1l_4t_0.5h", "2l_4t_0.5h", "2l_8t_0.5h", "3l_8t_1h"]


def write_recipe(directory: Path, models, search: str = "", extra: str = "") -> Path:
    teacher, student = models
    path = directory / "recipe.toml"
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
{extra}
[pred]
max_steps = 2
train_batch_size = 16
eval_step = 2
[cache]
batch_size = 32
[training]
device = "cpu"
eval_batch_size = 16
seed = 7
[search]
{search}
""")
    return path


class FakeRunner:
    """Records every (point, seed) it trains; dev accuracy grows with the HSK fraction, plus a seed offset."""

    def __init__(self, fail_after: int | None = None):
        self.calls: list[tuple[str, int]] = []
        self.fail_after = fail_after

    def __call__(self, plan, kind, point, seed, events):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt  # as a kill in the middle of a run
        self.calls.append((point, seed))
        fraction = {"no_hsk": 0.0, "full_hsk": 1.0}.get(point)
        if fraction is None:
            fraction = next(r.fraction for r in plan.ladder if r.id == point)
        value = 0.60 + min(fraction, 0.05) * 6 + 0.002 * (seed - 7)  # saturates at 5 % HSK
        return {"metric": "accuracy", "dev_metric": value, "seconds": 1.0, "model_dir": None}


def make_plan(tmp_path, models, search="", sets=None, out="out"):
    recipe, settings = read_search(write_recipe(tmp_path, models, search), sets=sets)
    return core.plan(recipe, settings, recipe_path=str(tmp_path / "recipe.toml"), output_dir=tmp_path / out)


# ---------------------------------------------------------------------------------------------------------------
# Resume, records and the result (fake runner, real store)


def test_a_killed_search_resumes_without_rerunning_a_recorded_run(tmp_path, models):
    search = f"ladder = {json.dumps(LADDER)}\nseeds = 2\ntolerance = 1.0"
    plan = make_plan(tmp_path, models, search)
    # fractions (L_S = 2, T = 16, so full = 3·16): 1/96, 1/24, 1/12, 1/6, 1/2 -> the smallest rung >= 5 % is 2l_4t
    assert [r.id for r in plan.ladder] == LADDER and plan.seeds == [7, 8]
    first = FakeRunner(fail_after=3)
    with pytest.raises(KeyboardInterrupt):
        core.run(plan, runner=first)
    assert first.calls == [("full_hsk", 7), ("full_hsk", 8), ("no_hsk", 7)]
    assert [(r["point"], r["seed"]) for r in core.read_runs(tmp_path / "out")] == first.calls
    second = FakeRunner()
    result = core.run(make_plan(tmp_path, models, search), runner=second)
    assert not set(second.calls) & set(first.calls)  # nothing recorded ran again
    # no HSK's second seed, rung 0 (0.6625, short), then bisection of (0, 5): rung 2 (0.90, within), rung 1
    # (0.85, short) -> rung 2; every point with both seeds (the seed offsets cancel in the paired differences)
    assert [c[0] for c in second.calls] == [
        "no_hsk",
        *[p for p in ("1l_2t_0.25h", "2l_4t_0.5h", "1l_4t_0.5h") for _ in (7, 8)],
    ]
    assert result.chosen["point"] == "2l_4t_0.5h" and result.chosen["snippet"] == '[hsk]\nconfig_3d = "2l_4t_0.5h"'
    assert "--config-3d 2l_4t_0.5h" in result.chosen["flags"]
    assert result.compute["runs"] == 10 and result.compute["grid_runs"] == 14
    document = json.loads((tmp_path / "out" / "result.json").read_text())
    assert document["chosen"]["point"] == "2l_4t_0.5h" and document["converged"] is True
    assert Path(result.files["plot"]).read_bytes().startswith(PNG_MAGIC)
    third = FakeRunner()
    again = core.run(make_plan(tmp_path, models, search), runner=third)
    assert third.calls == [] and again.chosen["point"] == "2l_4t_0.5h"
    store_files = list((tmp_path / "out" / "store").iterdir())
    assert store_files and (tmp_path / "out" / "store.json").is_file()  # built once, then reused
    built = json.loads((tmp_path / "out" / "store.json").read_text())
    assert result.store["action"] == again.store["action"] == "reused" and built["seconds"] > 0
    assert again.compute["store_seconds"] == pytest.approx(built["seconds"])  # the build still counts


def test_a_changed_recipe_does_not_reuse_old_runs(tmp_path, models):
    search = f"ladder = {json.dumps(LADDER[:2])}\nseeds = 1"
    core.run(make_plan(tmp_path, models, search), runner=FakeRunner())
    changed = FakeRunner()
    core.run(make_plan(tmp_path, models, search, sets=["pred.learning_rate=1e-3"]), runner=changed)
    assert changed.calls[:2] == [("full_hsk", 7), ("no_hsk", 7)]


def test_a_foreign_output_dir_is_refused(tmp_path, models):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "precious.txt").write_text("keep me")
    plan = make_plan(tmp_path, models, f"ladder = {json.dumps(LADDER)}")
    fake = FakeRunner()
    with pytest.raises(Exception, match="holds no search"):
        core.run(plan, runner=fake)
    assert fake.calls == [] and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["precious.txt"]


def test_the_no_hsk_run_trains_under_the_sweeps_fair_baseline_protocol(tmp_path, models):
    """The search's baseline is planned by the sweep, so it trains as long as an HSK run (the fair protocol)."""
    from mudkd.core.search.run import sweep_runner
    from mudkd.core.sweep import ensure_store, fair_baseline_overrides
    from mudkd.recipe import build_recipe

    plan = make_plan(tmp_path, models, f"ladder = {json.dumps(LADDER[:1])}\nseeds = 1")
    ensure_store(plan.store, plan.recipe, core.SearchEvents())
    # hand-derived: the recipe's HSK stage (2 steps) + prediction stage (2 steps), a 10 % warm-up; the prediction
    # stage evaluates once (step 2 of 2), so the baseline evaluates once too (step 4 of 4)
    fair = fair_baseline_overrides(plan.recipe)
    assert fair == {"pred.max_steps": 4, "pred.eval_step": 4, "pred.warmup_proportion": 0.1}
    record = sweep_runner(plan, "no_hsk", "no_hsk", 7, core.SearchEvents())
    assert record["kind"] == "no_hsk" and record["seed"] == 7 and record["teacher_free"] is True
    assert record["pred_updates"] == fair["pred.max_steps"] and record["pred_warmup"] == fair["pred.warmup_proportion"]
    trained = build_recipe(Path(record["model_dir"]) / "recipe.resolved.toml")  # what the student trained with
    assert trained.pred.max_steps == 4 and trained.pred.warmup_proportion == 0.1 and trained.training.seed == 7
    logged = [json.loads(line) for line in (Path(record["model_dir"]) / "metrics.jsonl").read_text().splitlines()]
    assert max(entry["step"] for entry in logged) == 4  # 4 optimiser updates, not the base's 2
    # a search selects without peeking: on 20 % of the 32 training examples (the last 6 of the 64-line file)
    assert trained.training.selection_split == 0.2 and record["selection_evaluations"] == 1
    assert record["selected_on"] == "a selection split of 6 training examples; dev scored once, at the end"
    assert record["model_dir"] == str(tmp_path / "out" / "runs" / "s7" / "points" / "no_hsk" / "pred")


# ---------------------------------------------------------------------------------------------------------------
# CLI: bad inputs, dry run


def error_lines(result):
    return [line for line in result.stderr.splitlines() if line.startswith("Error:")]


@pytest.mark.parametrize(
    ("search", "args", "expected"),
    [
        ("ladder = []", [], "search.ladder: an empty ladder"),
        ("", ["--tolerance", "-1"], "search.tolerance: must be greater than or equal to 0"),
        ("", ["--max-runs", "0"], "search.max_runs: must be greater than or equal to 1"),
        ('ladder = ["1l_4t"]', [], "search.ladder: use {layers}l_{tokens}t_{width}h"),
        ('ladder = ["9l_4t_0.5h"]', [], "keep_layers"),
    ],
    ids=["empty-ladder", "tolerance", "max-runs", "malformed", "too-deep"],
)
def test_bad_inputs_exit_2_with_one_clear_line(tmp_path, models, search, args, expected):
    path = write_recipe(tmp_path, models, search)
    result = runner.invoke(app, ["search", str(path), "--dry-run", "-o", str(tmp_path / "out"), *args])
    assert result.exit_code == 2, result.output
    assert len(error_lines(result)) == 1 and expected in error_lines(result)[0], result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_a_ladder_the_given_store_cannot_serve_exits_2(tmp_path, models):
    small = tmp_path / "small"
    small.mkdir()
    core.run(make_plan(small, models, f"ladder = {json.dumps(LADDER[:2])}\nseeds = 1"), runner=FakeRunner())
    store = small / "out" / "store"  # serves K = 1, k <= 4
    path = write_recipe(tmp_path, models, f"ladder = {json.dumps(LADDER)}", extra=f'hsk_store = "{store}"')
    result = runner.invoke(app, ["search", str(path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert len(error_lines(result)) == 1 and "cannot serve" in error_lines(result)[0]
    assert not (tmp_path / "out").exists()


def test_dry_run_json_plans_the_store_the_runs_and_the_cpu_time_and_writes_nothing(tmp_path, models):
    path = write_recipe(tmp_path, models, f"ladder = {json.dumps(LADDER[::-1])}\nseeds = 2")
    out = tmp_path / "out"
    result = runner.invoke(app, ["search", str(path), "--dry-run", "--json", "-o", str(out), "--max-runs", "7"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["dry_run"] is True and document["output_dir"] == str(out) and not out.exists()
    assert [r["id"] for r in document["ladder"]] == LADDER  # ordered by HSK fraction
    assert document["ladder"][0]["hsk_fraction"] == pytest.approx(1 * 2 * 0.25 / (3 * 16))
    # 5 rungs, 2 seeds: (reference + baseline + rung 0 + ceil(log2 5) = 3 rungs) x 2 = 12; the cap makes it 7
    assert document["runs_needed_at_most"] == 12 and document["max_runs"] == 7 and document["grid_runs"] == 14
    store = document["store"]
    # the store covers K = 3 (all hidden states), k = 8 attention-ranked tokens, full width of d = 32:
    # 3 · 8 · 32 float16 values + 3 · 8 int16 token indices + 2 float32 logits = 1536 + 48 + 8 bytes per example
    assert store["bytes_per_example"] == 1592 and store["bytes"] == 1592 * 32
    estimate = document["estimate"]
    assert estimate["source"] == "a calibration of 2 training steps" and estimate["steps_per_run"] == {
        "hsk": 2,
        "pred": 2,
    }
    assert 0 < estimate["search_seconds_at_most"] < estimate["grid_seconds"]
    text = runner.invoke(app, ["search", str(path), "--dry-run", "-o", str(out)])
    assert text.exit_code == 0 and "runs: at most 12" in text.stdout and "2l_8t_0.5h" in text.stdout
    assert "K=2 (1→1,2→2) k=8/16" in text.stdout and not out.exists()


def test_cli_runs_the_search_and_prints_the_snippet_and_the_compute(tmp_path, models, monkeypatch):
    import importlib

    run_module = importlib.import_module("mudkd.core.search.run")  # the package exports its function run
    fake = FakeRunner()
    monkeypatch.setattr(run_module, "sweep_runner", fake)
    path = write_recipe(tmp_path, models, f"ladder = {json.dumps(LADDER)}\nseeds = 2\ntolerance = 1.0")
    result = runner.invoke(app, ["search", str(path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert 'config_3d = "2l_4t_0.5h"' in result.stdout and "--config-3d 2l_4t_0.5h" in result.stdout
    assert "compute: 10 runs of the grid's 14" in result.stdout and "chosen: 2l_4t_0.5h" in result.stdout
    assert "search.png" in result.stdout and len(fake.calls) == 10
    again = runner.invoke(app, ["search", str(path), "-o", str(tmp_path / "out"), "--json"])
    document = json.loads(again.stdout)
    assert len(fake.calls) == 10 and document["chosen"]["point"] == "2l_4t_0.5h"
    assert document["caveats"] == []  # exact fake values: every comparison is decided
    beats = [b["point"] for b in document["beats_prediction_only"]]
    assert beats == ["1l_2t_0.25h", "1l_4t_0.5h", "2l_4t_0.5h", "full HSK"]
    # one seed: the caveat is a Warning line of its own and marks the chosen row of the table
    single = runner.invoke(app, ["search", str(path), "-o", str(tmp_path / "one"), "--seeds", "1"])
    assert single.exit_code == 0, single.output
    assert "Warning: one seed per point: no noise estimate" in single.stdout
    assert "chosen (caveats: one seed)" in single.stdout
    assert [p["decision"] for p in document["points"] if p["runs"]] == [
        "short",
        "short",
        "short",
        "chosen",
        "reference",
    ]


# ---------------------------------------------------------------------------------------------------------------
# End to end: real store, real (2-step) trainings, the final student


@pytest.mark.slow
def test_end_to_end_on_tiny_berts(tmp_path, models):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    started = time.monotonic()
    path = write_recipe(tmp_path, models, f"ladder = {json.dumps(LADDER[:3])}\nseeds = 1\ntolerance = 100")
    out = tmp_path / "out"
    try:
        result = runner.invoke(app, ["search", str(path), "-o", str(out), "--json", "--train-final"])
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    # tolerance 100 points: prediction distillation alone is within it, after the reference, the baseline and
    # the smallest rung (measured to report whether a budget beats prediction-only); one seed is flagged
    assert document["chosen"]["point"] == "no_hsk" and document["compute"]["runs"] == 3
    assert [(r["point"], r["seed"]) for r in core.read_runs(out)] == [("full_hsk", 7), ("no_hsk", 7), (LADDER[0], 7)]
    assert "one seed" in document["flags"]
    assert (out / "runs" / "s7" / "points" / "full_hsk" / "result.json").is_file()
    assert (out / "store" / "manifest.json").is_file()
    assert (out / "final" / "pred" / "config.json").is_file() and document["final"]["hsk"] is None
    assert Path(document["files"]["plot"]).read_bytes().startswith(PNG_MAGIC)
    # one budget of the ladder, trained teacher-free from the search's store through the sweep
    from mudkd.core.search.run import sweep_runner

    plan = make_plan(tmp_path, models, f"ladder = {json.dumps(LADDER[:3])}\nseeds = 1")
    record = sweep_runner(plan, "hsk", "1l_4t_0.5h", 7, core.SearchEvents())
    assert record["store"] == str(out / "store") and record["teacher_free"] is True
    assert record["hsk_fraction"] == pytest.approx(2 / 48) and 0 <= record["dev_metric"] <= 1
    print(f"end-to-end search: {time.monotonic() - started:.1f}s")


def test_a_pipeline_recipe_is_searched_on_the_models_its_pipeline_wrote(tmp_path):
    """`mudkd search recipes/quickstart.toml` (search --help's first example) after the quickstart: the recipe
    fine-tunes and prunes, so its teacher and student are where `mudkd pipeline` put them; explicit models win."""
    recipe = tmp_path / "pipe.toml"
    recipe.write_text('schema_version = 1\n[task]\nname = "sst-2"\n[teacher]\npretrained = "bert-base-uncased"\n')
    found, _ = read_search(recipe)
    assert (found.teacher.model, found.student.model) == ("outputs/pipe/teacher", "outputs/pipe/student")
    found, _ = read_search(recipe, sets=["output.dir=runs/a"])
    assert (found.teacher.model, found.student.model) == ("runs/a/teacher", "runs/a/student")
    found, _ = read_search(recipe, sets=["student.model=my/student"])
    assert (found.teacher.model, found.student.model) == (None, "my/student")
