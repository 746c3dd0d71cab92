"""Never destroy what mudkd did not make: the output guard, the per-output lock, staging and commit.

Each data-loss case of issue 10 runs the real command against tiny models and a tiny SST-2-format data set written
here (no data from outside the repository), and then checks, file by file, that what the user had is untouched.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from mudkd.cli.app import app
from mudkd.core.outputs import MARKER, StagingDir, check_output_dir, clean_leftovers, read_marker
from tests.helpers import REPO_ROOT, make_teacher_and_student, snapshot, write_sst2_slice

runner = CliRunner()


def user_folder(path: Path) -> Path:
    """A folder a user cares about: a thesis and a source checkout's ``.git``."""
    (path / ".git").mkdir(parents=True)
    (path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (path / "thesis.tex").write_text("\\chapter{Results}\n")
    return path


@pytest.fixture(scope="module")
def w(tmp_path_factory):
    """A tiny teacher and its pruned student, SST-2-format data, and a store built by mudkd."""
    root = tmp_path_factory.mktemp("safe_outputs")
    patch = pytest.MonkeyPatch()
    patch.setenv("MUDKD_CACHE", str(tmp_path_factory.mktemp("safe_outputs_cache")))
    make_teacher_and_student(root)
    data = write_sst2_slice(root / "SST-2", 24, 8)
    sst2 = ["--task-name", "sst-2", "--data-dir", str(data), "--max-seq-length", "16"]
    store_args = ["--teacher-model", str(root / "teacher"), "--student-model", str(root / "student"), *sst2]
    result = runner.invoke(
        app, ["distill", "cache", *store_args, "--config-3d", "1l_8t_0.5h", "-o", str(root / "store")]
    )
    assert result.exit_code == 0, result.output
    yield SimpleNamespace(
        root=root,
        data=data,
        sst2=sst2,
        store_args=store_args,
        teacher=root / "teacher",
        student=root / "student",
        store=root / "store",
    )
    patch.undo()


def finetune_args(w, out, *extra):
    return ["finetune", "--model-name-or-path", str(w.teacher), *w.sst2, "--max-steps", "1", "-o", str(out), *extra]


def refused(result, phrase: str) -> None:
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and phrase in errors[0], result.stderr
    assert "Traceback" not in result.output


# ---------------------------------------------------------------------------------------------------------------
# The data-loss cases of issue 10


def test_finetune_overwrite_refuses_a_users_folder(w, tmp_path):
    victim = user_folder(tmp_path / "thesis")
    before = snapshot(victim)
    refused(runner.invoke(app, finetune_args(w, victim, "--overwrite")), "was not made by mudkd")
    assert snapshot(victim) == before
    assert not (tmp_path / "thesis.partial").exists()


def test_cache_overwrite_refuses_a_users_folder(w, tmp_path):
    victim = user_folder(tmp_path / "mine")
    before = snapshot(victim)
    args = ["distill", "cache", *w.store_args, "--config-3d", "1l_8t_0.5h", "-o", str(victim), "--overwrite"]
    refused(runner.invoke(app, args), "was not made by mudkd")
    assert snapshot(victim) == before


def test_cache_overwrite_keeps_a_valid_store_when_the_run_is_refused(w, tmp_path):
    """Today: the store was deleted first, then the run was refused for a tokenizer mismatch."""
    import shutil

    from tests.helpers import make_tiny_bert

    store = tmp_path / "store"
    shutil.copytree(w.store, store)
    other = tmp_path / "other-student"
    make_tiny_bert(other, layers=2)
    (other / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nzebra\n")
    tokenizer = json.loads((other / "tokenizer.json").read_text())
    tokenizer["model"]["vocab"] = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4, "zebra": 5}
    (other / "tokenizer.json").write_text(json.dumps(tokenizer))
    before = snapshot(store)
    args = [
        "distill",
        "cache",
        "--teacher-model",
        str(w.teacher),
        "--student-model",
        str(other),
        *w.sst2,
        "--config-3d",
        "1l_8t_0.5h",
        "-o",
        str(store),
        "--overwrite",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert snapshot(store) == before


def test_cache_output_equal_to_the_teacher_is_refused(w):
    before = snapshot(w.teacher)
    args = ["distill", "cache", *w.store_args, "--config-3d", "1l_8t_0.5h", "-o", str(w.teacher), "--overwrite"]
    refused(runner.invoke(app, args), "is an input of this run (--teacher-model")
    assert snapshot(w.teacher) == before


def test_hsk_output_equal_to_its_store_is_refused(w):
    before = snapshot(w.store)
    args = [
        "distill",
        "hsk",
        "--hsk-store",
        str(w.store),
        "--student-model",
        str(w.student),
        *w.sst2,
        "--config-3d",
        "1l_8t_0.5h",
        "-o",
        str(w.store),
        "--overwrite",
    ]
    refused(runner.invoke(app, args), "is an input of this run (--hsk-store")
    assert snapshot(w.store) == before


@pytest.mark.parametrize("where", ["inside", "contains"])
def test_outputs_inside_or_around_an_input_are_refused(w, where):
    out = w.data / "out" if where == "inside" else w.root
    refused(runner.invoke(app, finetune_args(w, out)), "an input of this run" if where == "inside" else "")
    assert not (w.data / "out").exists()


def test_recipe_output_dir_resolves_against_the_recipe_and_never_deletes(w, tmp_path, monkeypatch):
    """A recipe file alone (output_dir = "../victim") cannot delete a folder, with or without --overwrite."""
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # "../victim" from here would also be tmp_path/victim
    victim = user_folder(tmp_path / "victim")
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "r.toml").write_text('[finetune]\noutput_dir = "../victim"\nmax_steps = 1\n')
    before = snapshot(victim)
    args = ["finetune", str(recipes / "r.toml"), "--model-name-or-path", str(w.teacher), *w.sst2, "--overwrite"]
    refused(runner.invoke(app, args), "was not made by mudkd")
    assert snapshot(victim) == before


def test_current_directory_and_symlinks_are_refused(w, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    refused(runner.invoke(app, finetune_args(w, Path("."), "--overwrite")), "current directory")
    target = tmp_path / "real"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    refused(runner.invoke(app, finetune_args(w, tmp_path / "link")), "symbolic link")
    assert (tmp_path / "notes.txt").read_text() == "mine"


# ---------------------------------------------------------------------------------------------------------------
# Markers, replacement and leftovers


def test_a_mudkd_output_is_replaced_only_with_overwrite_and_carries_its_marker(w, tmp_path):
    out = tmp_path / "teacher-ft"
    assert runner.invoke(app, finetune_args(w, out)).exit_code == 0
    marker = read_marker(out)
    assert marker is not None and marker["command"] == "finetune" and marker["complete"] is True
    assert len(marker["recipe_hash"]) == 16
    refused(runner.invoke(app, finetune_args(w, out)), "exists")
    # A file a user adds inside a mudkd output (issue 23: NOTES.md was deleted without a word) is never deleted.
    (out / "NOTES.md").write_text("my notes on this run")
    refused(runner.invoke(app, finetune_args(w, out, "--overwrite")), "files mudkd did not write: NOTES.md (1)")
    assert (out / "NOTES.md").read_text() == "my notes on this run"
    (out / "NOTES.md").unlink()
    assert runner.invoke(app, finetune_args(w, out, "--overwrite")).exit_code == 0
    assert (out / "model.safetensors").is_file() and read_marker(out)["owner"]["path"] == str(out.resolve())
    assert not list(tmp_path.glob(".teacher-ft.old-*"))


def test_leftovers_of_a_killed_commit_are_cleaned_only_when_they_are_mudkds(tmp_path):
    final = tmp_path / "out"
    with StagingDir(final, command="finetune") as staging:  # a real commit, renamed aside as a killed commit would
        (staging.path / "model.safetensors").write_text("x")
        staging.commit()
    ours = tmp_path / ".out.old-12345"
    final.rename(ours)
    theirs = tmp_path / ".out.old-999"
    theirs.mkdir()
    (theirs / "keep.txt").write_text("not mudkd's")
    forged = tmp_path / ".out.old-777"  # a bare marker proves nothing (issue 23)
    forged.mkdir()
    (forged / MARKER).write_text(json.dumps({"made_by": "mudkd", "command": "finetune"}))
    (forged / "model.safetensors").write_text("x")
    assert clean_leftovers(final) == [ours]
    assert not ours.exists() and (theirs / "keep.txt").is_file() and (forged / "model.safetensors").is_file()


def test_a_foreign_partial_directory_is_refused(tmp_path):
    (tmp_path / "out.partial").mkdir()
    (tmp_path / "out.partial" / "data.csv").write_text("mine")
    with pytest.raises(Exception, match="was not made by mudkd"):
        check_output_dir(tmp_path / "out", overwrite=True)


def test_a_failed_run_commits_nothing_and_keeps_the_old_output(tmp_path):
    final = tmp_path / "out"
    with StagingDir(final, command="test") as staging:
        (staging.path / "a.txt").write_text("first")
        staging.commit()
    with pytest.raises(RuntimeError), StagingDir(final, command="test", overwrite=True) as staging:
        (staging.path / "a.txt").write_text("second, half written")
        raise RuntimeError("killed")
    assert (final / "a.txt").read_text() == "first"


# ---------------------------------------------------------------------------------------------------------------
# The lock


def _hold_lock(final: Path, command: str = "finetune") -> subprocess.Popen:
    code = (
        "import sys, time\nfrom pathlib import Path\nfrom mudkd.core.outputs import StagingDir\n"
        f"with StagingDir(Path({str(final)!r}), command={command!r}):\n"
        "    print('locked', flush=True)\n    time.sleep(60)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    assert process.stdout is not None and process.stdout.readline().strip() == "locked"
    return process


@pytest.mark.parametrize("command", ["finetune", "cache"])
def test_a_second_writer_is_refused_with_the_holders_pid(w, tmp_path, command):
    out = tmp_path / "busy"
    holder = _hold_lock(out, "finetune" if command == "finetune" else "distill cache")
    try:
        if command == "finetune":
            args = finetune_args(w, out, "--resume")
        else:
            args = ["distill", "cache", *w.store_args, "--config-3d", "1l_8t_0.5h", "-o", str(out), "--overwrite"]
        refused(runner.invoke(app, args), f"is being written by another mudkd process (pid {holder.pid})")
        assert (out.with_name("busy.partial") / MARKER).is_file()  # the first run's work is untouched
    finally:
        holder.kill()
        holder.wait()


# ---------------------------------------------------------------------------------------------------------------
# The pipeline's crash window


def test_pipeline_recognises_a_stage_committed_just_before_a_kill(tmp_path):
    """A kill after a stage's commit but before its stage.json: the marker's key still marks the stage done."""
    from mudkd.core.stages import pipeline
    from mudkd.recipe.load import build_recipe

    recipe = build_recipe(flags={"output.dir": str(tmp_path / "run"), "teacher.pretrained": str(tmp_path / "m")})
    resolved, not_needed = pipeline.resolve_paths(recipe)
    keys = pipeline.stage_keys(resolved, not_needed)
    teacher = tmp_path / "run" / "teacher"
    with StagingDir(teacher, command="finetune") as staging, pipeline.marker_notes(pipeline_key=keys["finetune"]):
        (staging.path / "config.json").write_text("{}")
        staging.commit()
    status = {row["stage"]: row["status"] for row in pipeline.stage_status(resolved, not_needed)}
    assert status["finetune"] == "done" and not (teacher / pipeline.STAGE_FILE).exists()
    assert status["score"] == "to run"


def test_pipeline_refuses_a_root_it_did_not_make(w, tmp_path):
    victim = user_folder(tmp_path / "mine")
    before = snapshot(victim)
    sets = [f"teacher.model={w.teacher}", f"student.model={w.student}", f"task.data_dir={w.data}"]
    args = [
        "pipeline",
        *[word for value in sets for word in ("--set", value)],
        "-o",
        str(victim),
        "--overwrite",
        "--dry-run",
    ]
    refused(runner.invoke(app, args), "was not made by mudkd")
    assert snapshot(victim) == before


def test_marker_survives_in_the_store_and_the_store_still_opens(w):
    from mudkd.core.store import HskStore

    assert read_marker(w.store)["command"] == "distill cache"
    assert len(HskStore.open(w.store)) == 24
    assert not w.store.with_name("store.partial").exists()
