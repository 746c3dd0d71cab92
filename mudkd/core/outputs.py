"""Where mudkd writes, and the rules that make losing a user's files impossible.

Every command that writes a directory goes through this module:

1. **The guard** (:func:`check_output_dir`): the path is resolved first (``..``, symlinked parents, trailing
   slashes), and names of mudkd's working files (``*.partial``, ``*.old-*``, ``*.lock``) are refused. An existing,
   non-empty directory is replaced only if mudkd can prove it made it (:func:`mudkd.core.ownership.verify`: the
   marker's record of the path it was committed to and of every file it wrote), it was made by the *same*
   command, and ``--overwrite`` was given. ``--resume`` only continues the same command's ``<output>.partial``
   (with the same settings); it never replaces a finished output. Anything else is refused, ``--overwrite`` or
   not. An output that equals, sits inside or contains one of the
   run's inputs (teacher, student, store, scores, data, recipe) or contains the working directory is refused.
   All of this is read-only, so a command checks everything before it touches anything.
2. **The lock** (:class:`StagingDir`): one writer per output, taken before any file of it is touched; a second
   writer is refused at once with the holder's pid.
3. **Staging**: a run builds ``<output>.partial``; only :meth:`StagingDir.commit` deletes anything: it renames the
   old output aside (``.<name>.old-<pid>``), renames the new one in, then removes the old one. A kill at any
   moment leaves either the old output or the new one in place; leftovers of a killed commit are cleaned by the
   next run (only those whose record proves them mudkd's). The lock file is removed when the run ends.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

import mudkd
from mudkd.core.ownership import (
    MARKER,
    Proof,
    file_entry,
    layout,
    layout_strangers,
    nested_outputs,
    new_owner,
    read_marker,
    record_files,
    verify,
    walk_files,
)
from mudkd.errors import CheckpointError, MudkdError
from mudkd.recipe.schema import recipe_source

__all__ = ["MARKER", "read_marker"]  # re-exported: the marker's home is mudkd.core.ownership

PARTIAL_SUFFIX = ".partial"

# Names mudkd gives its own working files beside an output: never an output themselves.
_WORKING_NAME = re.compile(r"(\.partial|\.old-[^/]*|\.lock)$")


# ---------------------------------------------------------------------------------------------------------------
# Markers


def write_marker(
    directory: Path,
    *,
    command: str,
    complete: bool,
    owner: dict[str, Any],
    recipe_hash: str | None = None,
    notes: dict[str, Any] | None = None,
) -> None:
    """Write ``directory``'s marker (atomically): the command that made it, its recipe and its ownership record
    (:func:`mudkd.core.ownership.new_owner`)."""
    document = {
        "made_by": "mudkd",
        "command": command,
        "complete": complete,
        "recipe_hash": recipe_hash,
        "mudkd_version": mudkd.__version__,
        "pid": os.getpid(),
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **_NOTES,
        **(notes or {}),
        "owner": owner,
    }
    write_text_atomic(directory / MARKER, json.dumps(document, indent=2) + "\n")


def mark_folder(directory: Path, *, command: str) -> None:
    """Mark a folder written in place (a sweep, a search, a pipeline root): proved by its command's layout."""
    write_marker(directory, command=command, complete=True, owner=new_owner(directory, in_place=True))


def add_owned_file(directory: Path, name: str, document: Any) -> None:
    """Write one JSON file into a committed output and add it to the output's record (the pipeline's stage.json).

    The file is written first, then the record: a kill between the two leaves a file the record does not list,
    so the output is refused (naming the file) rather than trusted.
    """
    write_json_atomic(directory / name, document)
    record_owned_file(directory, name)


def record_owned_file(directory: Path, name: str) -> None:
    """Add ``directory/name``, just written by mudkd into a committed output, to that output's record."""
    marker = read_marker(directory)
    owner = (marker or {}).get("owner")
    if marker is None or not isinstance(owner, dict) or not isinstance(owner.get("files"), dict):
        return  # not a proved output (e.g. an older one): nothing to record into
    owner["files"][name] = file_entry(directory / name)  # this file alone: a store's GBs are not re-hashed
    write_text_atomic(directory / MARKER, json.dumps(marker, indent=2) + "\n")


def adoption(directory: Path) -> dict[str, Any]:
    """What ``mudkd outputs adopt DIR`` would own: every marked directory in it, its files and bytes (read-only).

    Raises:
        CheckpointError: ``directory`` is missing, has no marker (mudkd adopts only what it made, e.g. an output
            moved on purpose or written by an earlier mudkd), or is a folder written in place that holds files its
            command never writes.
    """
    directory = canonical_output(directory)
    if not directory.is_dir() or directory.is_symlink():
        raise CheckpointError(f"{directory}: no such directory", hint="pass the folder to adopt")
    marker = read_marker(directory)
    if marker is None:
        raise CheckpointError(
            f"{directory}: has no {MARKER}: mudkd adopts only folders it made (moved, or from an earlier mudkd)",
            hint="mudkd never takes over a folder it did not make",
        )
    command = str(marker.get("command"))
    strangers = layout_strangers(directory, command, lambda entry: True) if layout(command) else []
    if strangers:
        more = f" and {len(strangers) - 5} more" if len(strangers) > 5 else ""
        raise CheckpointError(
            f"{directory}: a '{command}' folder holds files it never writes: {', '.join(strangers[:5])}{more}",
            hint="move them out of the folder first",
        )
    rows = []
    for path in [*nested_outputs(directory), directory]:
        in_place = layout(str((read_marker(path) or {}).get("command"))) is not None
        names = [] if in_place else list(walk_files(path))
        size = sum((path / name).lstat().st_size for name in names)
        rows.append(
            {
                "directory": str(path),
                "command": (read_marker(path) or {}).get("command"),
                "in_place": in_place,
                "files": len(names),
                "bytes": size,
            }
        )
    return {
        "directory": str(directory),
        "command": command,
        "outputs": rows,
        "files": sum(r["files"] for r in rows),
        "bytes": sum(r["bytes"] for r in rows),
    }


def adopt(directory: Path) -> dict[str, Any]:
    """Re-record ``directory`` (and every mudkd output inside it) as mudkd's, at its current path, as it is now.

    A folder written in place (sweep, search, pipeline) gets an in-place record; a ``.partial`` a staging record;
    anything else a record of every file it holds now (those files are then mudkd's to replace). Returns
    :func:`adoption`'s summary.
    """
    summary = adoption(directory)
    for row in summary["outputs"]:  # innermost first: an output's record must not change after its parent's
        path = Path(row["directory"])
        marker = read_marker(path) or {}
        if layout(str(marker.get("command"))) is not None:
            marker["owner"] = new_owner(path, in_place=True)
        elif marker.get("complete") is False and path.name.endswith(PARTIAL_SUFFIX):
            marker["owner"] = new_owner(path)
        else:
            marker["owner"] = new_owner(path, files=record_files(path))
        write_text_atomic(path / MARKER, json.dumps(marker, indent=2) + "\n")
    return summary


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


def canonical_output(path: str | Path) -> Path:
    """``path`` with its parent resolved (``..``, symlinked parents, ``~``) and its own name kept.

    The name is not resolved, so a symbolic link *as* the output is still seen (and refused) as one.
    """
    given = Path(path).expanduser()
    if given.name in {"", ".", ".."}:  # "OUT/new/..", ".": the last segment names no folder of its own
        return given.resolve()
    return given.parent.resolve() / given.name


def check_output_dir(
    path: str | Path | None,
    *,
    overwrite: bool,
    inputs: Mapping[str, str | Path | None] | None = None,
    resume: bool = False,
    what: str = "output directory",
    command: str | None = None,
) -> Path:
    """Refuse an output mudkd may not write; return it as a resolved path (see :func:`canonical_output`).

    Args:
        path: The output directory.
        overwrite: ``--overwrite`` was given: an output this command made may be replaced.
        inputs: The run's inputs, ``{label: path}`` (e.g. ``{"--teacher-model": "models/teacher"}``); hub names and
            paths that do not exist locally are ignored.
        resume: ``--resume``: the output's own ``.partial`` may be continued (a finished output is still only
            replaced with ``overwrite``).
        what: How messages name the directory.
        command: The command that will write it (``finetune``, ``distill cache``, ...): another command's output
            is never replaced.

    Raises:
        CheckpointError: The directory is missing from the settings, is a symlink or a file, has a working-file
            name, sits below a file or in a folder mudkd cannot write, overlaps an input or the working directory,
            is not provably mudkd's, is another command's, or exists without ``--overwrite``.
    """
    if not path:
        raise CheckpointError(f"no {what} given", hint="pass --output-dir DIR")
    given = Path(path).expanduser()
    if given.name in {"", ".", ".."} and given.resolve() != Path.cwd().resolve():
        raise CheckpointError(
            f"{path}: {what} ends in '{given.name or '/'}' and names no folder of its own",
            hint=f"name the folder itself, e.g. --output-dir {given.resolve()}",
        )
    target = canonical_output(given)
    if _WORKING_NAME.search(target.name):
        raise CheckpointError(
            f"{path}: names ending in .partial, .old-* or .lock are mudkd's working files, not outputs",
            hint="choose another --output-dir (mudkd builds OUT.partial itself while it writes OUT)",
        )
    if target.is_symlink():
        raise CheckpointError(
            f"{target}: {what} is a symbolic link", hint="pass the real directory (mudkd does not write through links)"
        )
    if target.exists() and not target.is_dir():
        raise CheckpointError(f"{target}: exists and is not a directory", hint="choose another --output-dir")
    check_writable_parent(target, what=what)
    working = Path.cwd().resolve()
    if target == working or target in working.parents:
        raise CheckpointError(
            f"{target}: {what} is (or contains) the current directory",
            hint="write into a new subdirectory, e.g. --output-dir outputs/run1",
        )
    check_no_overlap(target, inputs or {}, what=what)
    if not is_main_process():
        return target  # under DDP rank 0 alone checks, stages and commits: it may be creating the output right now
    check_replaceable(target, command=command, overwrite=overwrite, what=what)
    check_partial(staging_path(target), command=command, resume=resume)
    return target


def check_writable_parent(target: Path, *, what: str = "output directory") -> None:
    """Refuse an output below a file, or in a folder this process cannot write (checked on the nearest existing
    ancestor, before anything is created)."""
    ancestor = target.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise CheckpointError(
            f"{target}: cannot create the {what}: {ancestor} is a file, not a folder",
            hint="choose an --output-dir whose parent folders are folders",
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise CheckpointError(
            f"{target}: cannot create the {what}: {ancestor} is not writable",
            hint="choose an --output-dir in a folder you can write",
        )


def ownership_error(proof: Proof, *, what: str = "output directory") -> CheckpointError:
    """The refusal for a directory mudkd cannot prove it made (with the way out that fits the reason)."""
    adoptable = proof.reason in {"no record", "moved", "changed"}
    hint = (
        f"if it is mudkd's output, check it and run 'mudkd outputs adopt {proof.directory}' first; "
        "otherwise choose another --output-dir"
        if adoptable
        else "mudkd never replaces a folder it did not make: choose another --output-dir"
    )
    return CheckpointError(f"{proof.directory}: {what} exists and {proof.describe()}", hint=hint)


def check_replaceable(target: Path, *, command: str | None, overwrite: bool, what: str = "output directory") -> None:
    """Refuse to replace ``target`` unless it is empty or missing, or provably this command's output and
    ``overwrite`` is given. Read-only."""
    proof = verify(target)
    if proof.reason in {"missing", "empty"}:
        return
    if not proof.owned:
        raise ownership_error(proof, what=what)
    if proof.in_place or (command is not None and proof.command != command):
        raise CheckpointError(
            f"{target}: {what} is a '{proof.command}' output; mudkd never replaces one command's output with "
            f"another's ({command or 'this run'})",
            hint="choose another --output-dir",
        )
    if not overwrite:
        raise CheckpointError(
            f"{target}: {what} exists",
            hint="pass --overwrite to replace it (--resume only continues an interrupted run's .partial)",
        )


def check_folder(
    directory: Path, *, commands: tuple[str, ...], what: str, kind: str, error: type[MudkdError] = CheckpointError
) -> None:
    """A folder written in place (a sweep, a search, a pipeline root) is new, empty, or provably one that
    ``commands`` made: recognised by its marker's command and record, never by a file name (``sweep.json``).

    Raises:
        error: A folder mudkd cannot prove is its own (no marker, no record, moved, files it does not write), or one
            another command made.
    """
    proof = verify(directory)
    if proof.reason in {"missing", "empty"}:
        return
    if not proof.owned:
        adopt_hint = ownership_error(proof).hint
        raise error(f"{directory}: {what} holds no {kind} mudkd made: it {proof.describe()}", hint=adopt_hint)
    if proof.command not in commands or not proof.in_place:
        raise error(
            f"{directory}: {what} holds no {kind}: it is a '{proof.command}' output, and mudkd never writes a "
            f"{kind} into another command's output",
            hint="choose another output directory",
        )


def check_partial(partial: Path, *, command: str | None, resume: bool = False) -> None:
    """Refuse a ``<output>.partial`` that is not provably mudkd's staging directory, or is another command's."""
    if not (partial.is_symlink() or partial.exists()):
        return
    proof = verify(partial) if partial.is_dir() and not partial.is_symlink() else None
    if proof is None or not (proof.owned or proof.reason == "empty") or (proof.marker or {}).get("complete"):
        reason = proof.describe() if proof is not None else "is not a directory"
        raise CheckpointError(f"{partial}: exists and {reason}", hint="move it away, or choose another --output-dir")
    if command is not None and proof.command not in {None, command}:
        raise CheckpointError(
            f"{partial}: holds an interrupted '{proof.command}' run, not {command}'s",
            hint=f"finish it with '{proof.command} --resume', or choose another --output-dir",
        )


def check_no_overlap(output: Path, inputs: Mapping[str, str | Path | None], *, what: str = "output") -> None:
    """Refuse an output that equals, sits inside or contains an existing input path."""
    resolved = canonical_output(output).resolve()
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
        self,
        final: Path,
        *,
        command: str,
        resume: bool = False,
        recipe: Any = None,
        check_settings: bool = True,
        overwrite: bool | None = None,
    ) -> None:
        self.final = canonical_output(final)
        self.path = staging_path(self.final)
        self.command = command
        self.resume = resume
        self.recipe = recipe
        self.check_settings = check_settings  # False where the output checks its own inputs (the store's fingerprint)
        # --overwrite: from the recipe unless given (the recipe's value comes from the command line only)
        self.overwrite = (
            overwrite if overwrite is not None else bool(getattr(getattr(recipe, "output", None), "overwrite", False))
        )
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
        # Re-check under the lock: the read-only guard ran before it, and another process may have acted since
        # (e.g. a run that held the lock a moment ago has just committed a finished output here).
        check_replaceable(self.final, command=self.command, overwrite=self.overwrite)
        check_partial(self.path, command=self.command, resume=self.resume)
        clean_leftovers(self.final)
        if self.path.exists() and not self.resume:
            shutil.rmtree(self.path)
        if not self.path.exists():
            # The staging directory appears with its marker already inside (one rename), so nobody ever sees it
            # without one and mistakes it for a folder mudkd did not make.
            with replaced_atomically(self.path) as fresh:
                fresh.mkdir(parents=True)
                write_marker(fresh, command=self.command, complete=False, owner=new_owner(self.path))
        else:  # resumed: the marker now names this process (the pid a second writer is told about)
            owner = (read_marker(self.path) or {}).get("owner") or new_owner(self.path)
            write_marker(self.path, command=self.command, complete=False, owner=owner)
        settings = self.path / "resume_settings.json"
        if self.recipe is not None and self.check_settings and not settings.is_file():
            settings.write_text(json.dumps(resume_settings(self.recipe), indent=2, sort_keys=True) + "\n")

    def commit(self) -> Path:
        """Record every staged file in the marker and swap the directory into place (rank 0; a no-op elsewhere).

        Hashing the files is one read of the output (about 1.6 s per GB, see :mod:`mudkd.core.ownership`).
        """
        if not self.main:
            return self.final
        hashed = recipe_hash(self.recipe) if self.recipe is not None else None
        owner = new_owner(self.final, files=record_files(self.path))
        write_marker(self.path, command=self.command, complete=True, owner=owner, recipe_hash=hashed)
        # Under the lock nobody else commits here, but a user may have written into the old output during the run.
        check_replaceable(self.final, command=self.command, overwrite=self.overwrite)
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
            release_lock(self._lock)
            self._lock = None


def lock_path(final: Path) -> Path:
    """The lock file of ``final``: ``.<name>.lock`` beside it."""
    return final.with_name(f".{final.name}.lock")


def acquire_lock(final: Path) -> Any:
    """Take ``final``'s writer lock (a ``filelock`` beside it) without waiting; refuse when another process holds it."""
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(lock_path(final)), timeout=0)
        lock.acquire()
    except Timeout:
        holder = (read_marker(staging_path(final)) or {}).get("pid", "unknown")
        raise CheckpointError(
            f"{final} is being written by another mudkd process (pid {holder})",
            hint="wait for it to finish, or choose another --output-dir",
        ) from None
    except OSError as error:  # e.g. a folder even root cannot write (/sys), or one that became read-only
        raise CheckpointError(
            f"{final}: cannot create the output there ({error.strerror or error})",
            hint="choose an --output-dir in a folder you can write",
        ) from None
    return lock


def release_lock(lock: Any) -> None:
    """Remove the lock file, then release the lock.

    The file is deleted while the lock is still held: a process that opened it a moment earlier and then gets
    the (now unlinked) inode's lock notices and retries on a fresh file (filelock's Unix lock checks
    ``st_nlink == 0`` after ``flock``, filelock/_native/_unix.py), so two writers never both hold it.
    """
    Path(lock.lock_file).unlink(missing_ok=True)
    lock.release()


@contextmanager
def output_lock(final: Path) -> Iterator[None]:
    """Hold ``final``'s writer lock for a block (for outputs that are written in place, like a sweep's folder)."""
    if not is_main_process():
        yield
        return
    lock = acquire_lock(canonical_output(final))
    try:
        yield
    finally:
        release_lock(lock)


def clean_leftovers(final: Path) -> list[Path]:
    """Remove ``.<name>.old-<pid>`` directories a killed commit left beside ``final``: only those whose record
    proves them mudkd's output committed to ``final`` (unchanged since, with nothing added)."""
    removed = []
    for old in final.parent.glob(f".{final.name}.old-*"):
        if old.is_dir() and not old.is_symlink() and verify(old, expected_path=final).owned:
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
    task = recipe.task
    return {
        "task.data_dir": task.data_dir,
        "task.train_file": task.train_file,
        "task.validation_file": task.validation_file,
        "the recipe": recipe_source(recipe),
    }
