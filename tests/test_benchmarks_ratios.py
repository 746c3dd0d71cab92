"""The benchmark scripts print ratios through core/measure.py: their per-pair ratio helper on hand-made timings,
and every script still answers ``--help`` (nothing timed, nothing downloaded)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO_ROOT

#: Each script and an option its --help shows (for the timing scripts: the interleaved pairs behind every ratio).
SCRIPTS = {
    "distill_speed": "--steps",
    "feeding_report": "--write",
    "sst2_overlap": "--students",
    "padding_speed": "--repeats",
    "quickstart_cpu": "--pairs",
    "prune_latency": "--repeats",
    "store_io": "--pairs",
    "student_report": "--repeats",
}


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", REPO_ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_distill_speed_ratios_are_medians_of_per_step_pairs():
    times = {
        "online": [4.0, 6.0, 5.0],
        "store": [2.0, 2.0, 2.0],
        "student_only": [1.0, 1.0, 1.0],
        "teacher_forward": [2.0, 3.0, 2.0],
    }
    build = {"build_s": [2.0, 4.0, 2.0], "inference_s": [1.0, 1.0, 1.0]}
    spreads = _load("distill_speed").step_ratios(times, build)
    # online/store per step 2, 3, 2.5; store/student 2, 2, 2; ideal (t + s)/s 3, 4, 3
    assert (spreads["speedup"]["median"], spreads["speedup"]["low"], spreads["speedup"]["high"]) == (2.5, 2.0, 3.0)
    assert spreads["overhead"]["median"] == 2.0 and spreads["ideal_speedup"]["median"] == 3.0
    # speedup / ideal per step: 2/3, 3/4, 2.5/3 → median 0.75, all below 1 but the range 0.17 < effect 0.25
    assert spreads["speedup_vs_ideal"]["median"] == pytest.approx(0.75)
    assert spreads["speedup_vs_ideal"]["low"] == pytest.approx(2 / 3)
    assert spreads["speedup_vs_ideal"]["verdict"] == "measured"
    # inference/build per batch 0.5, 0.25, 0.5 → 0.5, range 0.25 within the effect 0.5
    assert spreads["store_build_vs_inference"]["median"] == 0.5
    assert all(spread["n"] == 3 for spread in spreads.values())


def test_distill_speed_charges_the_one_time_teacher_pass_to_the_store():
    """E epochs from a store cost one build batch + E store steps per batch, against E online steps."""
    times = {
        "online": [4.0, 4.0, 4.0],
        "store": [1.0, 1.0, 1.0],
        "student_only": [1.0, 1.0, 1.0],
        "teacher_forward": [3.0, 3.0, 3.0],
    }
    build = {"build_s": [2.0, 6.0], "inference_s": [2.0, 6.0]}  # step i pairs with build batch i mod 2
    benchmark = _load("distill_speed")
    once = benchmark.build_ratios(times, build, 1.0)
    # per step 4/(1+2), 4/(1+6), 4/(1+2) -> median 4/3; ideal (3+1)/1 = 4 -> vs ideal 1/3
    assert once["speedup"]["median"] == pytest.approx(4 / 3)
    assert once["vs_ideal"]["median"] == pytest.approx(1 / 3)
    many = benchmark.build_ratios(times, build, 20.0)
    # 80/(20+2) and 80/(20+6): the pass fades as the epochs grow, towards the ideal 4
    assert many["speedup"]["median"] == pytest.approx(80 / 22)
    assert many["vs_ideal"]["median"] == pytest.approx(20 / 22)
    # 0.9 of the ideal needs E >= 9 b / s: 9 * 2 / 1 and 9 * 6 / 1 for steps 0, 2 and 1 -> median 18
    assert benchmark.epochs_for_target(times, build) == pytest.approx(18.0)


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_answers_help(name):
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / f"{name}.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:") and f"{SCRIPTS[name]} " in result.stdout


def test_quickstart_cpu_reads_each_runs_own_cpu_time_and_summary(tmp_path):
    """``finish`` takes one child's CPU time from ``wait4`` (not the wall clock, not the other run's) and its
    accuracies from the pipeline's ``--json`` summary; a failed run stops the benchmark with its stderr."""
    module = _load("quickstart_cpu")
    processes = {}
    for seconds, accuracy in ((0.3, 0.7), (0.9, 0.8)):  # two runs side by side, as the benchmark starts them
        summary = {
            "summary": {"teacher": {"metrics": {"accuracy": 0.9}}, "student": {"metrics": {"accuracy": accuracy}}}
        }
        code = f"import json, time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass\n"
        code += f"print(json.dumps({summary!r}))\n"
        work = tmp_path / str(seconds)
        work.mkdir()
        with (work / "stdout.json").open("w") as out:
            processes[seconds] = (subprocess.Popen([sys.executable, "-c", code], stdout=out), work)
    short, long = (module.finish(*processes[seconds]) for seconds in (0.3, 0.9))
    assert 0.3 <= short["cpu_seconds"] < 0.8 and 0.9 <= long["cpu_seconds"] < 1.4
    assert (short["teacher_accuracy"], short["student_accuracy"], long["student_accuracy"]) == (0.9, 0.7, 0.8)

    (tmp_path / "stderr.txt").write_text("Error: something broke\n")
    failing = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    with pytest.raises(SystemExit, match="exit 3"):
        module.finish(failing, tmp_path)
