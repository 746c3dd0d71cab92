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


# ---------------------------------------------------------------------------------------------------------------
# Issue 23: an output is mudkd's only if mudkd can prove it; --resume never replaces; paths resolved


def test_a_copied_marker_does_not_make_a_users_folder_mudkds(w, tmp_path):
    """``cp -r outputs/teacher/. my_project/`` copied the marker; ``--overwrite`` then deleted .git and sources."""
    import shutil

    out = tmp_path / "teacher"
    assert runner.invoke(app, finetune_args(w, out)).exit_code == 0
    project = user_folder(tmp_path / "my_project")
    shutil.copytree(out, project, dirs_exist_ok=True)  # cp -r teacher/. my_project/
    before = snapshot(project)
    refused(runner.invoke(app, finetune_args(w, project, "--overwrite")), "is not where mudkd committed it")
    assert snapshot(project) == before and (project / ".git" / "HEAD").is_file()


@pytest.mark.parametrize(
    "marker", [{"made_by": "mudkd"}, {"made_by": "mudkd", "command": "finetune", "complete": True}]
)
def test_a_hand_written_or_old_marker_is_not_proof(w, tmp_path, marker):
    victim = user_folder(tmp_path / "mine")
    (victim / MARKER).write_text(json.dumps(marker))
    before = snapshot(victim)
    result = runner.invoke(app, finetune_args(w, victim, "--overwrite"))
    refused(result, "without an ownership record")
    assert f"mudkd outputs adopt {victim}" in result.stderr  # an earlier mudkd's output is re-adopted explicitly
    assert snapshot(victim) == before


def _owned_copy(source: Path, target: Path) -> Path:
    """A copy of a mudkd output, adopted where it now is (a copy alone is not mudkd's)."""
    import shutil

    from mudkd.core.outputs import adopt

    shutil.copytree(source, target)
    adopt(target)
    return target


@pytest.mark.parametrize("flags", [["--resume"], ["--overwrite"], ["--resume", "--overwrite"]])
def test_finetune_never_replaces_a_store(w, tmp_path, flags):
    """A store is not a model: another command's output is never replaced, --overwrite or not."""
    store = _owned_copy(w.store, tmp_path / "store")
    before = snapshot(store)
    refused(runner.invoke(app, finetune_args(w, store, *flags)), "is a 'distill cache' output")
    assert snapshot(store) == before


def test_resume_with_other_settings_does_not_replace_a_finished_model(w, tmp_path):
    out = tmp_path / "model"
    assert runner.invoke(app, finetune_args(w, out)).exit_code == 0
    before = snapshot(out)
    result = runner.invoke(app, finetune_args(w, out, "--resume", "--seed", "9"))
    refused(result, "exists")
    assert "--resume only continues" in result.stderr and snapshot(out) == before


def test_cache_resume_does_not_turn_a_pruned_student_into_a_store(w, tmp_path):
    import shutil

    student = tmp_path / "student"
    with StagingDir(student, command="prune") as staging:  # a student as `mudkd prune` commits it
        shutil.copytree(w.student, staging.path, dirs_exist_ok=True)
        staging.commit()
    before = snapshot(student)
    args = ["distill", "cache", *w.store_args, "--config-3d", "1l_8t_0.5h", "-o", str(student), "--resume"]
    refused(runner.invoke(app, args), "is a 'prune' output")
    assert snapshot(student) == before


def test_cache_resume_does_not_replace_a_store_finished_after_it_started(w, tmp_path):
    """The race of issue 23: a second ``cache --resume`` passes the read-only guard while the first run holds the
    lock; the first commits; the second must not replace that finished store once it gets the lock."""
    final = tmp_path / "store"
    check_output_dir(final, overwrite=False, resume=True, command="distill cache")  # the second run's guard: fine
    with StagingDir(final, command="distill cache", resume=True) as first:  # the first run finishes meanwhile
        (first.path / "manifest.json").write_text("{}")
        first.commit()
    before = snapshot(final)
    with pytest.raises(Exception, match="exists") as caught, StagingDir(final, command="distill cache", resume=True):
        pass
    assert "--resume only continues" in caught.value.hint and snapshot(final) == before
    # ... and through the CLI, with other settings: refused, the finished store untouched
    store = _owned_copy(w.store, tmp_path / "store2")
    before = snapshot(store)
    args = ["distill", "cache", *w.store_args, "--config-3d", "1l_8t_0.5h", "-o", str(store), "--resume"]
    refused(runner.invoke(app, [*args, "--seed", "9"]), "exists")
    assert snapshot(store) == before


def test_a_partial_of_another_command_is_not_resumed(w, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), StagingDir(out, command="distill cache"):
        raise RuntimeError("killed")  # leaves out.partial, an interrupted store
    refused(runner.invoke(app, finetune_args(w, out, "--resume")), "holds an interrupted 'distill cache' run")
    assert (tmp_path / "out.partial" / MARKER).is_file()


def test_a_users_sweep_json_or_search_json_folder_is_refused(tmp_path):
    from mudkd.core.search.run import check_search_dir
    from mudkd.core.sweep.results import check_sweep_dir, merge
    from mudkd.errors import RecipeError

    for name, check in (
        ("sweep.json", lambda d: check_sweep_dir(d)),
        ("search.json", lambda d: check_search_dir(d, {})),
    ):
        folder = tmp_path / name.split(".")[0]
        (folder / "points" / "p1").mkdir(parents=True)
        (folder / name).write_text('{"mine": true}')
        (folder / "points" / "p1" / "notes.txt").write_text("mine")
        before = snapshot(folder)
        with pytest.raises(RecipeError, match="holds no (sweep|search) mudkd made"):
            check(folder)
        assert snapshot(folder) == before
    with pytest.raises(RecipeError, match="holds no sweep mudkd made"):
        merge([tmp_path / "sweep"], into=tmp_path / "sweep")
    assert json.loads((tmp_path / "sweep" / "sweep.json").read_text()) == {"mine": True}


def test_a_sweep_never_writes_into_another_commands_output(w, tmp_path):
    from mudkd.core.sweep.results import check_sweep_dir
    from mudkd.errors import RecipeError

    out = tmp_path / "model"
    assert runner.invoke(app, finetune_args(w, out)).exit_code == 0
    with pytest.raises(RecipeError, match="is a 'finetune' output"):
        check_sweep_dir(out)


def test_a_sweep_folder_is_proved_by_layout_and_its_nested_outputs(tmp_path):
    from mudkd.core.outputs import mark_folder
    from mudkd.core.ownership import verify
    from mudkd.core.sweep.results import check_sweep_dir
    from mudkd.errors import RecipeError

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    mark_folder(sweep, command="sweep")
    (sweep / "sweep.json").write_text("{}")
    with StagingDir(sweep / "points" / "p1" / "hsk", command="distill hsk") as staging:
        (staging.path / "model.safetensors").write_text("weights")
        staging.commit()
    (sweep / "points" / "p1" / "result.json").write_text("{}")
    check_sweep_dir(sweep)
    assert verify(sweep).owned
    (sweep / "points" / "p1" / "hsk" / "NOTES.md").write_text("mine")  # inside a point's model
    with pytest.raises(RecipeError, match=r"points/p1/hsk/"):
        check_sweep_dir(sweep)
    (sweep / "points" / "p1" / "hsk" / "NOTES.md").unlink()
    (sweep / "todo.txt").write_text("mine")
    with pytest.raises(RecipeError, match=r"files mudkd did not write: todo.txt"):
        check_sweep_dir(sweep)


@pytest.mark.parametrize("name", ["run.partial", ".run.old-4242", ".run.lock"])
def test_working_file_names_are_refused_as_outputs(w, tmp_path, name):
    refused(runner.invoke(app, finetune_args(w, tmp_path / name)), "mudkd's working files")
    assert not (tmp_path / name).exists()


def test_x_partial_cannot_reach_a_live_runs_checkpoints(w, tmp_path):
    """``-o X.partial`` once got past the lock of a run writing X and replaced its checkpoints."""
    holder = _hold_lock(tmp_path / "x")
    try:
        before = snapshot(tmp_path / "x.partial")
        refused(runner.invoke(app, finetune_args(w, tmp_path / "x.partial", "--overwrite")), "working files")
        assert snapshot(tmp_path / "x.partial") == before
    finally:
        holder.kill()
        holder.wait()


def test_dot_dot_trailing_slash_and_symlinked_parents_are_resolved(w, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, finetune_args(w, f"{out / 'new' / '..'}"))
    refused(result, "names no folder of its own")
    assert not out.exists()
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "linked").symlink_to(real)
    assert runner.invoke(app, finetune_args(w, f"{tmp_path / 'linked' / 'model'}/")).exit_code == 0
    assert read_marker(real / "model")["owner"]["path"] == str((real / "model").resolve())
    assert check_output_dir(f"{tmp_path / 'linked' / 'model'}/", overwrite=True, command="finetune") == real / "model"


def test_an_unwritable_parent_is_refused_before_anything_runs(tmp_path, monkeypatch):
    """The os.access branch a normal user meets. We run as root, where chmod stops nothing, so os.access is
    patched to answer as it would for a read-only folder; the bad-input matrix runs the real /sys case as root."""
    import os

    from mudkd.errors import CheckpointError

    parent = tmp_path / "readonly"
    parent.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != parent and real_access(path, mode))
    with pytest.raises(CheckpointError, match=rf"{parent} is not writable"):
        check_output_dir(parent / "deeper" / "out", overwrite=False)
    assert list(parent.iterdir()) == []


def test_lock_files_are_removed_when_a_run_ends(w, tmp_path):
    from mudkd.core.outputs import output_lock

    out = tmp_path / "model"
    assert runner.invoke(app, finetune_args(w, out)).exit_code == 0
    assert not (tmp_path / ".model.lock").exists()
    with pytest.raises(RuntimeError), StagingDir(tmp_path / "failed", command="finetune"):
        assert (tmp_path / ".failed.lock").exists()
        raise RuntimeError("failed run")
    assert not (tmp_path / ".failed.lock").exists()
    with output_lock(tmp_path / "sweep"):
        assert (tmp_path / ".sweep.lock").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["failed.partial", "model"]


def test_adopt_a_moved_output_then_overwrite(w, tmp_path):
    out = tmp_path / "model"
    assert runner.invoke(app, finetune_args(w, out)).exit_code == 0
    moved = tmp_path / "moved"
    out.rename(moved)
    refused(runner.invoke(app, finetune_args(w, moved, "--overwrite")), "is not where mudkd committed it")
    check = runner.invoke(app, ["outputs", "check", str(moved), "--json"])
    assert check.exit_code == 1 and json.loads(check.stdout)["reason"] == "moved"
    # Without a terminal, adopting needs --yes (nothing is written before)
    before = snapshot(moved)
    refused(runner.invoke(app, ["outputs", "adopt", str(moved)]), "needs a confirmation")
    assert snapshot(moved) == before
    result = runner.invoke(app, ["outputs", "adopt", str(moved), "--yes"])
    assert result.exit_code == 0, result.output
    assert "mudkd will own" in result.stderr and "finetune" in result.stderr
    check = runner.invoke(app, ["outputs", "check", str(moved), "--json"])
    assert check.exit_code == 0 and json.loads(check.stdout)["owned"] is True
    assert runner.invoke(app, finetune_args(w, moved, "--overwrite")).exit_code == 0


def test_adopt_refuses_a_folder_without_a_marker(tmp_path):
    victim = user_folder(tmp_path / "mine")
    before = snapshot(victim)
    refused(runner.invoke(app, ["outputs", "adopt", str(victim), "--yes"]), "mudkd adopts only folders it made")
    assert snapshot(victim) == before


def test_check_finds_a_changed_file_of_the_same_size(tmp_path):
    import os

    from mudkd.core.ownership import verify

    final = tmp_path / "out"
    with StagingDir(final, command="finetune") as staging:
        (staging.path / "model.safetensors").write_bytes(b"A" * 64)
        staging.commit()
    assert verify(final).owned
    (final / "model.safetensors").write_bytes(b"B" * 64)  # same size, new mtime: re-hashed, found changed
    proof = verify(final)
    assert proof.reason == "changed" and proof.changed == ["model.safetensors"]
    stamp = proof.marker["owner"]["files"]["model.safetensors"][1]
    os.utime(final / "model.safetensors", ns=(stamp, stamp))  # mtime forged back: only a deep check sees it
    assert verify(final).owned and verify(final, deep=True).changed == ["model.safetensors"]
