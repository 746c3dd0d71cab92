"""Smoke test of ``benchmarks/distill_speed.py`` on its tiny case: the JSON document's shape, never a speed."""

from __future__ import annotations

import importlib.util
import json
import math

from tests.helpers import REPO_ROOT

RATIO_KEYS = (
    "online_step_s",
    "store_step_s",
    "student_only_step_s",
    "teacher_forward_s",
    "speedup",
    "overhead",
    "ideal_speedup",
    "speedup_vs_ideal",
    "store_build_vs_inference",
    "store_bytes_per_example",
    "budget_bytes_per_example",
)


def _load_benchmark():
    path = REPO_ROOT / "benchmarks" / "distill_speed.py"
    spec = importlib.util.spec_from_file_location("distill_speed_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_case_prints_one_json_document_of_positive_finite_ratios(capsys):
    benchmark = _load_benchmark()
    argv = ["--json", "--steps", "2", "--warmup", "1", "--cases", "tiny", "--examples", "64", "--threads", "1"]
    assert benchmark.main(argv) == 0

    document = json.loads(capsys.readouterr().out)  # stdout holds exactly one JSON document
    assert set(document) == {"cases"}
    assert len(document["cases"]) == 1
    case = document["cases"][0]
    assert set(case) == {"name", *RATIO_KEYS, "bytes_error", "spreads", "with_build", "epochs_for_target"}
    assert set(case["with_build"]) == {"1", "3", "10", "20"}  # the default --epochs
    assert case["name"] == "tiny"
    for key in RATIO_KEYS:
        value = case[key]
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (key, value)
    assert math.isfinite(case["bytes_error"]) and case["bytes_error"] >= 0
    # Every ratio is the median of its interleaved pairs (one per timed step, or per store batch: 64 / 32 = 2),
    # within their range, with the load and a verdict; 2 pairs are too few for a measurement.
    pairs = {"speedup": 2, "overhead": 2, "ideal_speedup": 2, "speedup_vs_ideal": 2, "store_build_vs_inference": 2}
    assert set(case["spreads"]) == set(pairs)
    for key, count in pairs.items():
        spread = case["spreads"][key]
        assert spread["n"] == count and spread["low"] <= spread["median"] <= spread["high"], key
        assert case[key] == spread["median"] and spread["verdict"] == "not measurable on this machine now", key
        assert spread["reason"] == "fewer than 3 pairs"
    # The store holds exactly what the budget table says (fp16 HSK, int16 indices, float32 logits).
    assert case["store_bytes_per_example"] == case["budget_bytes_per_example"]
