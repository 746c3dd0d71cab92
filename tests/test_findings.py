"""docs/findings.md and the README's findings: every table, interval and verdict is what
``benchmarks/findings_claims.py`` prints from the shipped CSVs, and every verdict follows the stated rule."""

from __future__ import annotations

import importlib.util
import re
import shutil

import pytest

from tests.helpers import REPO_ROOT

FINDINGS = REPO_ROOT / "docs" / "findings.md"
README = REPO_ROOT / "README.md"


def _claims():
    spec = importlib.util.spec_from_file_location("findings_claims", REPO_ROOT / "benchmarks" / "findings_claims.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ship(task: str, folder) -> None:
    """The shipped CSVs of ``task`` into ``folder`` as the sweep names them (``results.csv`` when shipped)."""
    shutil.copy(REPO_ROOT / "docs" / "findings" / f"summary_{task}.csv", folder / "summary.csv")
    results = REPO_ROOT / "docs" / "findings" / f"results_{task}.csv"
    if results.is_file():
        shutil.copy(results, folder / "results.csv")


def _output(tmp_path, task: str, capsys) -> str:
    sweep = tmp_path / task
    sweep.mkdir()
    _ship(task, sweep)
    assert _claims().main([str(sweep)]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("task", ["sst2", "cola"])
def test_the_tables_of_docs_findings_are_the_scripts_output(tmp_path, capsys, task):
    points, claims = _output(tmp_path, task, capsys).strip().split("\n\n")
    text = FINDINGS.read_text(encoding="utf-8")
    assert points in text and claims in text


def test_every_interval_and_p_in_the_prose_comes_from_the_script(tmp_path, capsys):
    """Every ``[a, b]`` interval of docs/findings.md and of the README's findings paragraph is one the script
    printed (the minus sign of the prose is typographic), and so is every ``p = …``."""
    printed = _output(tmp_path, "sst2", capsys) + _output(tmp_path, "cola", capsys)
    readme = README.read_text(encoding="utf-8")
    findings = readme[readme.index("**The paper's findings at CPU scale**") : readme.index("## Deviations")]
    # the "before → after" list quotes the earlier three-seed run: its figures come from its archived summary
    page, history = FINDINGS.read_text(encoding="utf-8").split("## Changes to this page", 1)
    page = page.split("## Feeding the student", 1)[0]  # its figures: test_feeding_the_student_...
    old = _output(tmp_path, "sst2_3seeds_dev_selected", capsys)
    for source, allowed in ((page, printed), (findings, printed), (history, printed + old)):
        prose = source.replace("−", "-")
        intervals = set(re.findall(r"\[[+-]\d+\.\d, [+-]\d+\.\d\]", prose))
        assert intervals and intervals <= set(re.findall(r"\[[+-]\d+\.\d, [+-]\d+\.\d\]", allowed))
        for value in re.findall(r"p = (0\.\d+)", prose):
            assert value in allowed, value


@pytest.mark.parametrize("task", ["sst2", "cola"])
def test_every_verdict_follows_the_rule(tmp_path, task):
    """ "reproduces"/"reversed" only at a Holm-adjusted p < 0.05, "equivalent" only by TOST, else "not resolved"."""
    _ship(task, tmp_path)
    table = _claims().claims_table(_claims().read_summary(tmp_path))
    assert len(table) == {"sst2": 15, "cola": 9}[task]
    for row in table:
        if row["verdict"] == "reproduces":
            assert row["p_holm"] < 0.05 and row["difference"] > 0
        elif row["verdict"] == "reversed":
            assert row["p_holm"] < 0.05 and row["difference"] < 0
        elif row["verdict"].startswith("equivalent within"):
            assert row["tost_p_holm"] < 0.05
        else:
            interval = f"CI [{100 * row['low']:+.1f}, {100 * row['high']:+.1f}]"
            assert row["verdict"] == f"not resolved (n = {row['n']}, {interval})"
            assert row["p_holm"] >= 0.05 and (row["tost_p_holm"] is None or row["tost_p_holm"] >= 0.05)
    verdicts = [row["verdict"].split(" (")[0] for row in table]
    # at five seeds (SST-2) and three (CoLA), only distillation against no training at all passes on SST-2
    assert verdicts.count("reproduces") == {"sst2": 1, "cola": 0}[task]


def test_holm_decides_on_hand_computed_summaries(tmp_path):
    """A = 0.01, 0.02, 0.03 and B = 0.04, 0.05, 0.06 as summaries (means 0.02 and 0.05, std 1 point, n 3): Welch
    t = 3.674 with 4 df, p = 0.0213. With one other claim (attention vs left-first, p 0.908) Holm gives
    2 × 0.0213 = 0.0426 < 0.05: reproduces; with full HSK added the report holds 3 tests, 3 × 0.0213 = 0.064:
    not resolved."""
    claims = _claims()
    header = "point,kind,series,hsk_fraction,mean,std,n,min,max\n"
    two = "1l_5t_0.1h,hsk,3D,0.002,0.05,0.01,3,0.04,0.06\nno_hsk,no_hsk,no HSK,0,0.02,0.01,3,0.01,0.03\n"
    two += "att,hsk,length,0.004,0.021,0.01,3,0.011,0.031\nleft,hsk,length,0.004,0.02,0.01,3,0.01,0.03\n"
    (tmp_path / "summary.csv").write_text(header + two)
    table = claims.claims_table(claims.read_summary(tmp_path))
    assert [(row["a"], row["b"]) for row in table] == [("1l_5t_0.1h", "no_hsk"), ("att", "left")]
    assert table[0]["p"] == pytest.approx(0.02131, abs=1e-5) and table[1]["p"] == pytest.approx(0.908, abs=1e-3)
    assert table[0]["p_holm"] == pytest.approx(2 * table[0]["p"]) and table[0]["verdict"] == "reproduces"
    (tmp_path / "summary.csv").write_text(header + two + "full_hsk,full_hsk,full HSK,1,0.02,0.01,3,0.01,0.03\n")
    table = claims.claims_table(claims.read_summary(tmp_path))
    assert len(table) == 3 and table[0]["p_holm"] == pytest.approx(3 * table[0]["p"])
    assert table[0]["verdict"] == "not resolved (n = 3, CI [+0.7, +5.3])"  # 3 ± 2.776 · 0.8165 points


def test_equivalence_needs_tost_at_the_stated_margin(tmp_path):
    """0.7500 and 0.7502, std 0.001 each over 3 seeds: d = -0.0002, se 0.000816, df 4. At ±1 point both
    one-sided t's are about 12: equivalent; at ±0.1 point (t = 1.0 and 1.5) it is not."""
    claims = _claims()
    summary = "point,kind,series,hsk_fraction,mean,std,n,min,max\n"
    summary += (
        "1l_10t_0.1h,hsk,3D,0.004,0.7500,0.001,3,0.749,0.751\nfull_hsk,full_hsk,full,1,0.7502,0.001,3,0.7492,0.7512\n"
    )
    (tmp_path / "summary.csv").write_text(summary)
    rows = claims.read_summary(tmp_path)
    (row,) = claims.claims_table(rows)
    assert row["verdict"] == "equivalent within ±1 point" and row["tost_p_holm"] < 0.001
    (narrow,) = claims.claims_table(rows, margin=0.001)
    assert narrow["verdict"].startswith("not resolved (n = 3, CI [-0.2, +0.2])")


def test_paired_when_the_per_seed_results_are_shipped(tmp_path):
    """results.csv beside summary.csv: the same seeds on both sides give the paired test instead of Welch's
    (differences 0.03, 0.02, 0.04: mean 0.03, se 0.00577, t = 5.196 with 2 df: p = 1 - t / sqrt(t² + 2) = 0.0351)."""
    claims = _claims()
    summary = "point,kind,series,hsk_fraction,mean,std,n,min,max\n"
    summary += "1l_5t_0.1h,hsk,3D,0.002,0.76,0.01,3,0.75,0.77\nno_hsk,no_hsk,no HSK,0,0.73,0.01,3,0.72,0.74\n"
    (tmp_path / "summary.csv").write_text(summary)
    results = "id,point,seed,dev_metric\n"
    for seed, (a, b) in zip((42, 43, 44), ((0.76, 0.73), (0.75, 0.73), (0.77, 0.73)), strict=True):
        results += f"1l_5t_0.1h-s{seed},1l_5t_0.1h,{seed},{a}\nno_hsk-s{seed},no_hsk,{seed},{b}\n"
    (tmp_path / "results.csv").write_text(results)
    (row,) = claims.claims_table(claims.read_summary(tmp_path))
    assert row["test"] == "paired" and row["p"] == pytest.approx(0.0351, abs=1e-4)


def test_the_shipped_sst2_run_is_five_paired_seeds_that_agree_with_its_summary(tmp_path):
    """results_sst2.csv is the per-seed file of the five-seed re-run: every trained point ran seeds 42-46, its
    mean and std are the summary's, every test of the claims is paired, and selection never used dev."""
    import csv
    import statistics

    with (REPO_ROOT / "docs" / "findings" / "results_sst2.csv").open(encoding="utf-8") as handle:
        runs = list(csv.DictReader(handle))
    by_point: dict[str, dict[str, float]] = {}
    for run in runs:
        if run["seed"]:
            by_point.setdefault(run["point"], {})[run["seed"]] = float(run["dev_metric"])
            assert "selection split" in run["selected_on"] and run["selection_evaluations"] == "4", run["id"]
    assert len(runs) == 56 and all(sorted(v) == ["42", "43", "44", "45", "46"] for v in by_point.values())
    _ship("sst2", tmp_path)
    rows = _claims().read_summary(tmp_path)
    for point, values in by_point.items():
        assert rows[point]["mean"] == pytest.approx(statistics.mean(values.values()))
        assert rows[point]["std"] == pytest.approx(statistics.stdev(values.values()))
    table = _claims().claims_table(rows)
    assert {row["test"] for row in table if row["b"] != "untrained"} == {"paired"}


def test_feeding_the_student_figures_are_the_benchmarks():
    """The "Feeding the student" section holds feeding_report.py's tables of docs/findings/student_quality.json as
    the script prints them (each variant's mean ± std, share of the teacher, paired difference from (a), Holm p,
    the target verdicts), and the README's paragraph quotes each task's best share of its teacher."""
    import json

    spec = importlib.util.spec_from_file_location("feeding_report", REPO_ROOT / "benchmarks" / "feeding_report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    merged = json.loads((REPO_ROOT / "docs" / "findings" / "student_quality.json").read_text(encoding="utf-8"))
    assert merged["selection_split"] == 0.2  # no checkpoint was chosen on the dev set the tables report
    rows = report.analyse(merged, report.TARGETS)
    assert {row["task"] for row in rows} == {"sst2", "rte", "rt"}
    assert all(len(row["values"]) >= 3 for row in rows)  # every figure is a mean over three seeds or more
    section = FINDINGS.read_text(encoding="utf-8").split("## Feeding the student", 1)[1].split("\n## ", 1)[0]
    assert report.markdown(rows) in section
    readme = README.read_text(encoding="utf-8")
    paragraph = readme[readme.index("`benchmarks/student_quality.py` measures") : readme.index("## Recipes")]
    for task in ("sst2", "rt"):
        best = max((row for row in rows if row["task"] == task), key=lambda row: row["share"])
        assert f"{100 * best['share']:.1f} %" in paragraph, task
