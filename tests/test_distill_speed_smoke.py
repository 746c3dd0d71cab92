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
    assert set(case) == {"name", *RATIO_KEYS, "bytes_error"}
    assert case["name"] == "tiny"
    for key in RATIO_KEYS:
        value = case[key]
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (key, value)
    assert math.isfinite(case["bytes_error"]) and case["bytes_error"] >= 0
    # The ratios are what their definitions say.
    assert math.isclose(case["speedup"], case["online_step_s"] / case["store_step_s"])
    assert math.isclose(case["overhead"], case["store_step_s"] / case["student_only_step_s"])
    ideal = (case["teacher_forward_s"] + case["student_only_step_s"]) / case["student_only_step_s"]
    assert math.isclose(case["ideal_speedup"], ideal)
    assert math.isclose(case["speedup_vs_ideal"], case["speedup"] / case["ideal_speedup"])
    # The store holds exactly what the budget table says (fp16 HSK, int16 indices, float32 logits).
    assert case["store_bytes_per_example"] == case["budget_bytes_per_example"]
