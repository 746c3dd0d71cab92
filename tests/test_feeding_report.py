"""``benchmarks/feeding_report.py``: the student-quality runs merged, each variant tested against (a) paired over
its seeds, Holm over the report, and a target met only by a mean that reaches it (hand-computed figures)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.helpers import REPO_ROOT


def _report():
    spec = importlib.util.spec_from_file_location("feeding_report", REPO_ROOT / "benchmarks" / "feeding_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _document(task: str, teacher: float, variants: dict[str, list[float]], **extra) -> dict:
    rows = {
        name: {
            "label": name,
            "cpu_seconds": 60.0,
            "runs": [{"seed": 42 + i, "metric": v, "cpu_seconds": 60.0} for i, v in enumerate(vals)],
        }
        for name, vals in variants.items()
    }
    return {
        "seeds": [42, 43, 44],
        "tiny": False,
        "selection_split": 0.2,
        "results": {task: {"teacher": teacher, "variants": rows}},
        **extra,
    }


def test_variants_are_tested_against_a_paired_over_their_seeds_and_holm_adjusted():
    report = _report()
    # two documents of one task (a, then d) merge; per-seed differences d - a: 0.02, 0.03, 0.04
    merged = report.merge(
        [_document("rt", 0.80, {"a": [0.70, 0.71, 0.72]}), _document("rt", 0.80, {"d": [0.72, 0.74, 0.76]})]
    )
    rows = {row["variant"]: row for row in report.analyse(merged, {"rt": 0.9})}
    d = rows["d"]
    assert d["vs_a"].test == "paired" and d["vs_a"].difference == pytest.approx(0.03)
    # sd of (0.02, 0.03, 0.04) = 0.01, se = 0.01 / sqrt(3), t(0.975, 2) = 4.3027
    assert d["vs_a"].high - d["vs_a"].difference == pytest.approx(4.3027 * 0.01 / 3**0.5, rel=1e-3)
    assert d["holm_p"] == pytest.approx(d["vs_a"].p)  # one comparison: Holm changes nothing
    assert d["share"] == pytest.approx(0.74 / 0.80) and "vs_a" not in rows["a"]
    text = report.markdown(list(rows.values()))
    assert "+3.0 [" in text and "92.5 %" in text
    # shares 0.900, 0.925, 0.950: the mean reaches 90 %, the interval (86.3–98.7 %) does not lie above it
    assert "Target 90 %: met by the mean only, not shown by the seeds: the best variant, (d), keeps 92.5 %" in text


def test_seeds_of_one_variant_from_two_documents_are_joined():
    report = _report()
    first = _document("rt", 0.80, {"c": [0.70, 0.72]})
    second = _document("rt", 0.80, {"c": [0.74]})
    second["results"]["rt"]["variants"]["c"]["runs"][0]["seed"] = 44
    second["results"]["rt"]["variants"]["c"]["runs"][0]["cpu_seconds"] = 90.0
    for run in first["results"]["rt"]["variants"]["c"]["runs"]:
        run["cpu_seconds"] = 60.0
    joined = report.merge([first, second])["results"]["rt"]["variants"]["c"]
    assert [run["seed"] for run in joined["runs"]] == [42, 43, 44] and joined["cpu_seconds"] == 70.0
    with pytest.raises(SystemExit, match="in two documents"):
        report.merge([first, first])


def test_a_mean_below_the_target_is_missed_whatever_a_seed_reaches():
    report = _report()
    merged = report.merge([_document("sst2", 1.0, {"a": [0.90, 0.99, 0.91]})])
    text = report.markdown(report.analyse(merged, {"sst2": 0.97}))
    assert "Target 97 %: missed" in text


def test_documents_that_cannot_be_compared_are_refused(tmp_path):
    report = _report()
    with pytest.raises(SystemExit, match="two teachers"):
        report.merge([_document("rt", 0.80, {"a": [0.7, 0.7]}), _document("rt", 0.81, {"d": [0.7, 0.7]})])
    with pytest.raises(SystemExit, match="different checkpoint selections"):
        other = _document("rt", 0.80, {"d": [0.7, 0.7]})
        other["selection_split"] = 0
        report.merge([_document("rt", 0.80, {"a": [0.7, 0.7]}), other])
    with pytest.raises(SystemExit, match="tiny"):
        report.merge([_document("rt", 0.80, {"a": [0.7, 0.7]}, tiny=True)])


def test_write_saves_the_merged_runs_and_the_plot(tmp_path):
    source = tmp_path / "runs.json"
    source.write_text(json.dumps(_document("rt", 0.80, {"a": [0.70, 0.71, 0.72], "b": [0.71, 0.73, 0.72]})))
    assert _report().main([str(source), "--write", str(tmp_path / "out")]) == 0
    merged = json.loads((tmp_path / "out" / "student_quality.json").read_text())
    assert merged["results"]["rt"]["variants"]["b"]["runs"][1]["metric"] == 0.73
    assert (tmp_path / "out" / "student_quality.png").read_bytes()[:4] == b"\x89PNG"


def test_sst2_overlap_groups_dev_sentences_by_where_the_teacher_saw_them(tmp_path, monkeypatch):
    """A dev sentence among the teacher's training snippets, one elsewhere in rt-snippets, one nowhere; matching
    ignores case and punctuation runs."""
    spec = importlib.util.spec_from_file_location("sst2_overlap", REPO_ROOT / "benchmarks" / "sst2_overlap.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from mudkd.core import data

    snippets = {"train": {"text_a": ["A gem -- truly.", "Dull and long", "later one"]}, "dev": {"text_a": ["x y"]}}
    monkeypatch.setattr(data, "load_raw", lambda config: (snippets, None, None, None, []))
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\na gem , truly . \t1\ndull and long \t0\nnever seen \t1\n")
    header, groups = module.split_dev(tmp_path, teacher_train=1)
    assert header == "sentence\tlabel"
    assert groups == {
        "teacher_train": ["a gem , truly . \t1"],
        "rt_elsewhere": ["dull and long \t0"],
        "nowhere": ["never seen \t1"],
    }
