"""Where mudkd writes, and the rules that make losing a user's files impossible.

Every command that writes a directory goes through this module:

1. **The guard** (:func:`check_output_dir`): an existing, non-empty directory is replaced only if it carries
   mudkd's marker (:data:`MARKER`, written when mudkd commits an output) *and* ``--overwrite`` was given.
   Anything else is refused, ``--overwrite`` or not. An output that equals, sits inside or contains one of the
   run's inputs (teacher, student, store, scores, data, recipe) or contains the working directory is refused.
   All of this is read-only, so a command checks everything before it touches anything.
2. **The lock** (:class:`StagingDir`): one writer per output, taken before any file of it is touched; a second
   writer is refused at once with the holder's pid.
3. **Staging**: a run builds ``<output>.partial``; only :meth:`StagingDir.commit` deletes anything: it renames the
   old output aside (``.<name>.old-<pid>``), renames the new one in, then removes the old one. A kill at any
   moment leaves either the old output or the new one in place; leftovers of a killed commit are cleaned by the
   next run (they carry the marker, so they are mudkd's own).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mudkd.errors import CheckpointError

MARKER = ".mudkd-output.json"
"""The file that says "mudkd made this directory": command, recipe hash, version, time."""

PARTIAL_SUFFIX = ".partial"


# ---------------------------------------------------------------------------------------------------------------
# Markers


def read_marker(directory: Path) -> dict[str, Any] | None:
    """The marker of ``directory``, or None when it has none (or an unreadable one)."""
    try:
        document = json.loads((directory / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) and document.get("made_by") == "mudkd" else None


def write_marker(directory: Path, *, command: str, complete: bool, recipe_hash: str | None = None) -> None:
    """Write ``directory``'s marker (atomically), naming the command that made it and its recipe."""
    import mudkd

    document = {
        "made_by": "mudkd",
        "command": command,
        "complete": complete,
        "recipe_hash": recipe_hash,
        "mudkd_version": mudkd.__version__,
        "pid": os.getpid(),
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **_NOTES,
    }
    write_text_atomic(directory / MARKER, json.dumps(document, indent=2) + "\n")


_NOTES: dict[str, Any] = {}


@contextmanager
def marker_notes(**notes: Any) -> Iterator[None]:
    """Extra facts written into every marker committed inside this block.

    The pipeline records its stage key this way, so a kill between a stage's commit and the pipeline's own
    bookkeeping still leaves a stage that a rerun recognises as done.
    """
    saved = dict(_NOTES)
    _NOTES.update(notes)
    try:
        yield
    finally:
        _NOTES.clear()
        _NOTES.update(saved)


def recipe_hash(recipe: Any) -> str:
    """A short hash of what a run computes (the settings a resume must share)."""
    document = json.dumps(resume_settings(recipe), sort_keys=True, default=str)
    return hashlib.sha256(document.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------------------
# The guard (read-only: call it before anything is written)


def check_output_dir(
    path: str | Path | None,
    *,
    overwrite: bool,
    inputs: Mapping[str, str | Path | None] | None = None,
    resume: bool = False,
    what: str = "output directory",
) -> Path:
    """Refuse an output mudkd may not write; return it as a path.

    Args:
        path: The output directory.
        overwrite: ``--overwrite`` was given: a directory mudkd made may be replaced.
        inputs: The run's inputs, ``{label: path}`` (e.g. ``{"--teacher-model": "models/teacher"}``); hub names and
            paths that do not exist locally are ignored.
        resume: ``--resume``: the output's own ``.partial`` (and a finished output) may be continued.
        what: How messages name the directory.

    Raises:
        CheckpointError: The directory is missing from the settings, is a symlink or a file, overlaps an input or
            the working directory, holds files mudkd did not make, or exists without ``--overwrite``.
    """
    if not path:
        raise CheckpointError(f"no {what} given", hint="pass --output-dir DIR")
    target = Path(path)
    if target.is_symlink():
        raise CheckpointError(
            f"{target}: {what} is a symbolic link", hint="pass the real directory (mudkd does not write through links)"
        )
    if target.exists() and not target.is_dir():
        raise CheckpointError(f"{target}: exists and is not a directory", hint="choose another --output-dir")
    resolved = target.resolve()
    working = Path.cwd().resolve()
    if resolved == working or resolved in working.parents:
        raise CheckpointError(
            f"{target}: {what} is (or contains) the current directory",
            hint="write into a new subdirectory, e.g. --output-dir outputs/run1",
        )
    check_no_overlap(target, inputs or {}, what=what)
    if not is_main_process():
        return target  # under DDP rank 0 alone checks, stages and commits: it may be creating the output right now
    if _non_empty(target):
        if read_marker(target) is None:
            raise CheckpointError(
                f"{target}: {what} exists and was not made by mudkd (it has no {MARKER})",
                hint="mudkd never replaces a folder it did not make: choose another --output-dir",
            )
        if not (overwrite or resume):
            raise CheckpointError(f"{target}: {what} exists", hint="pass --overwrite to replace it")
    partial = staging_path(target)
    if partial.is_symlink() or (partial.exists() and (not partial.is_dir() or _foreign(partial))):
        raise CheckpointError(
            f"{partial}: exists and was not made by mudkd", hint="move it away, or choose another --output-dir"
        )
    return target


def check_no_overlap(output: Path, inputs: Mapping[str, str | Path | None], *, what: str = "output") -> None:
    """Refuse an output that equals, sits inside or contains an existing input path."""
    resolved = output.resolve()
    for label, value in inputs.items():
        if not value or not Path(value).exists():
            continue  # a hub name, or an input the run itself will report as missing
        source = Path(value).resolve()
        if resolved == source:
            relation = "is"
        elif source in resolved.parents:
            relation = "is inside"
        elif resolved in source.parents:
            relation = "contains"
        else:
            continue
        raise CheckpointError(
            f"{output}: the {what} {relation} an input of this run ({label} {value})",
            hint="write the result somewhere else: mudkd never writes into its own inputs",
        )


def staging_path(final: Path) -> Path:
    """Where a run builds ``final`` before committing it."""
    return final.with_name(final.name + PARTIAL_SUFFIX)


def _non_empty(directory: Path) -> bool:
    return directory.is_dir() and any(directory.iterdir())


def _foreign(directory: Path) -> bool:
    """A non-empty directory without mudkd's marker."""
    return _non_empty(directory) and read_marker(directory) is None


# ---------------------------------------------------------------------------------------------------------------
# Lock, staging and commit


class StagingDir:
    """Build an output directory next to its final place under a lock, then move it into place in one rename.

    Use as a context manager: entering takes the output's lock (refusing a second writer), re-checks the output
    under it and prepares ``<output>.partial`` (a stale one of mudkd's own is discarded unless ``resume``, when
    it is continued: Trainer checkpoints live there). :meth:`commit` writes the marker and swaps the finished
    directory in, so the final path holds either the old result or the complete new one. Leaving the block
    releases the lock; after a failure the ``.partial`` stays for ``--resume``.

    Under DDP only rank 0 locks, creates, cleans and commits; the other ranks get the same paths.
    """

    def __init__(
        self, final: Path, *, command: str, resume: bool = False, recipe: Any = None, check_settings: bool = True
    ) -> None:
        self.final = Path(final)
        self.path = staging_path(self.final)
        self.command = command
        self.resume = resume
        self.recipe = recipe
        self.check_settings = check_settings  # False where the output checks its own inputs (the store's fingerprint)
        self.main = is_main_process()
        self._lock: Any = None

    def __enter__(self) -> StagingDir:
        if self.resume and self.recipe is not None and self.check_settings:
            _check_resume_settings(self.path, self.recipe)
        if not self.main:
            return self
        self._lock = acquire_lock(self.final)
        try:
            self._prepare()
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._release()

    def _prepare(self) -> None:
        # Re-check under the lock: the read-only guard ran before it, and another process may have acted since.
        if _foreign(self.final) or self.path.is_symlink() or (self.path.exists() and _foreign(self.path)):
            raise CheckpointError(
                f"{self.final}: changed while mudkd was starting (files not made by mudkd appeared)",
                hint="choose another --output-dir",
            )
        clean_leftovers(self.final)
        if self.path.exists() and not self.resume:
            shutil.rmtree(self.path)
        if not self.path.exists():
            # The staging directory appears with its marker already inside (one rename), so nobody ever sees it
            # without one and mistakes it for a folder mudkd did not make.
            with replaced_atomically(self.path) as fresh:
                fresh.mkdir(parents=True)
                write_marker(fresh, command=self.command, complete=False)
        else:  # resumed: the marker now names this process (the pid a second writer is told about)
            write_marker(self.path, command=self.command, complete=False)
        settings = self.path / "resume_settings.json"
        if self.recipe is not None and self.check_settings and not settings.is_file():
            settings.write_text(json.dumps(resume_settings(self.recipe), indent=2, sort_keys=True) + "\n")

    def commit(self) -> Path:
        """Mark the staged directory as complete and swap it into place (rank 0; a no-op on other ranks)."""
        if not self.main:
            return self.final
        hashed = recipe_hash(self.recipe) if self.recipe is not None else None
        write_marker(self.path, command=self.command, complete=True, recipe_hash=hashed)
        if _foreign(self.final):  # cannot happen under the lock unless someone wrote there by hand since
            raise CheckpointError(f"{self.final}: files not made by mudkd appeared there during the run")
        old = None
        if self.final.exists():
            old = self.final.with_name(f".{self.final.name}.old-{os.getpid()}")
            os.replace(self.final, old)
        os.replace(self.path, self.final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.final

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def acquire_lock(final: Path) -> Any:
    """Take ``final``'s writer lock (a ``filelock`` beside it) without waiting; refuse when another process holds it."""
    from filelock import FileLock, Timeout

    final.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(final.with_name(f".{final.name}.lock")), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        holder = (read_marker(staging_path(final)) or {}).get("pid", "unknown")
        raise CheckpointError(
            f"{final} is being written by another mudkd process (pid {holder})",
            hint="wait for it to finish, or choose another --output-dir",
        ) from None
    return lock


@contextmanager
def output_lock(final: Path) -> Iterator[None]:
    """Hold ``final``'s writer lock for a block (for outputs that are written in place, like a sweep's folder)."""
    if not is_main_process():
        yield
        return
    lock = acquire_lock(final)
    try:
        yield
    finally:
        lock.release()


def clean_leftovers(final: Path) -> list[Path]:
    """Remove ``.<name>.old-<pid>`` directories a killed commit left beside ``final`` (only mudkd's own)."""
    removed = []
    for old in final.parent.glob(f".{final.name}.old-*"):
        if old.is_dir() and not old.is_symlink() and not _foreign(old):
            shutil.rmtree(old, ignore_errors=True)
            removed.append(old)
    return removed


def is_main_process() -> bool:
    """False on the non-zero ranks of a distributed launch (``torchrun`` and ``accelerate launch`` set ``RANK``)."""
    return int(os.environ.get("RANK", "0")) == 0


# ---------------------------------------------------------------------------------------------------------------
# Resume settings


def resume_settings(recipe: Any) -> dict[str, Any]:
    """The recipe values a resumed run must share with the interrupted one (where it runs may change)."""
    data = recipe.model_dump(mode="json")
    for volatile in ("output", "pipeline"):
        data.pop(volatile, None)
    for key in ("device", "dataloader_num_workers", "logging_steps", "eval_batch_size"):
        data["training"].pop(key, None)
    return data


def _check_resume_settings(partial: Path, recipe: Any) -> None:
    settings = partial / "resume_settings.json"
    if not settings.is_file():
        return
    changed = changed_settings(json.loads(settings.read_text()), resume_settings(recipe))
    if changed:
        raise CheckpointError(
            f"{partial}: cannot resume: the interrupted run used different {', '.join(changed[:5])}",
            hint="rerun with the original settings, or without --resume to start over",
        )


def changed_settings(before: dict[str, Any], after: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two nested dicts."""
    changed = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changed += changed_settings(old, new, f"{prefix}{key}.")
        elif old != new:
            changed.append(f"{prefix}{key}")
    return changed


# ---------------------------------------------------------------------------------------------------------------
# Atomic files


@contextmanager
def replaced_atomically(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write (a file or a folder); if the block succeeds, one rename puts
    it in place of ``path``. Readers see the old ``path`` or the complete new one, never half of one; after a
    failure the temporary is removed and ``path`` is untouched.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if temporary.is_dir() and not temporary.is_symlink():
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            temporary.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, fsync and one rename (readers never see half a file)."""
    with replaced_atomically(path) as temporary, temporary.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def write_json_atomic(path: Path, document: Any) -> None:
    """Write one JSON document to ``path`` atomically."""
    write_text_atomic(path, json.dumps(document, indent=2, default=str) + "\n")


def recipe_inputs(recipe: Any) -> dict[str, str | None]:
    """A recipe's local data paths and its own file, labelled (inputs an output may not overlap)."""
    from mudkd.recipe.schema import recipe_source

    task = recipe.task
    return {
        "task.data_dir": task.data_dir,
        "task.train_file": task.train_file,
        "task.validation_file": task.validation_file,
        "the recipe": recipe_source(recipe),
    }
