"""Proof that a directory is mudkd's: the ownership record its marker holds, and the check against it.

A marker file (:data:`MARKER`) alone proves nothing: ``cp -r`` copies it and anyone can write
``{"made_by": "mudkd"}``. So the marker of a committed output also records

* ``owner.id``: a random id, new at every commit;
* ``owner.path``: the absolute, resolved path the output was committed to (a copy or a move is somewhere else);
* ``owner.files``: every file mudkd wrote, ``relative path -> [size, mtime_ns, sha256]``.

An output is mudkd's (:func:`verify`) only when it sits at its recorded path, every recorded file is there
unchanged and nothing else is. Hashes are computed once, at commit, streaming 1 MiB chunks (about 0.16 s per
100 MB on the development machine, i.e. ~1.6 s per GB of store); a later check re-hashes only the files whose size
or modification time (ns) differ from the record, so checking a multi-GB store costs one ``stat`` per file. A file
whose content changed while its size and nanosecond mtime stayed equal needs a deliberate ``touch -d``: that is
outside what this guard defends against (it prevents accidents, not attacks); ``deep=True`` re-hashes everything.

Three kinds of marked directory exist:

* a committed output (``owner.files`` is a dict): proved file by file;
* a staging directory ``<output>.partial`` (``owner.files`` is None, ``complete`` false): mudkd writes into it
  continuously (Trainer checkpoints, store chunks), so only its recorded path and id are proved;
* an in-place folder (``owner.in_place``: a sweep, a search, a pipeline root, a sweep-merge): written
  incrementally, so it is proved by layout instead: every file must be one its command writes (a layout registered
  with :func:`register_layout`), and every sub-directory that is a mudkd output must itself be proved.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

MARKER = ".mudkd-output.json"
"""The file that says "mudkd made this directory": command, recipe hash, version, time and the ownership record."""

HASH_CHUNK = 1 << 20
"""Bytes read per step when hashing (streaming: a multi-GB store never sits in memory)."""

SHOWN = 5
"""How many offending files a message names (then "and N more")."""

# Files mudkd leaves beside or inside its outputs while it works: locks and atomic-write temporaries of a killed
# run. Only in-place folders (which are never deleted wholesale) tolerate them.
_WORKING_FILES = (".*.lock", ".*.tmp*")


def read_marker(directory: Path) -> dict[str, Any] | None:
    """The marker of ``directory``, or None when it has none (or an unreadable one)."""
    try:
        document = json.loads((Path(directory) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) and document.get("made_by") == "mudkd" else None


def new_owner(path: Path, *, files: dict[str, list[Any]] | None = None, in_place: bool = False) -> dict[str, Any]:
    """A fresh ownership record for a directory that lives (or will live, once committed) at ``path``."""
    owner: dict[str, Any] = {"id": secrets.token_hex(16), "path": str(Path(path).resolve()), "files": files}
    if in_place:
        owner["in_place"] = True
    return owner


# ---------------------------------------------------------------------------------------------------------------
# Recording


def hash_file(path: Path) -> str:
    """The sha256 of a file, read in :data:`HASH_CHUNK` steps."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(HASH_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def file_entry(path: Path) -> list[Any]:
    """``[size, mtime_ns, sha256]`` of one file (a symbolic link records its target instead of a hash)."""
    status = path.lstat()
    if path.is_symlink():
        return [status.st_size, status.st_mtime_ns, "symlink:" + os.readlink(path)]
    return [status.st_size, status.st_mtime_ns, hash_file(path)]


def walk_files(directory: Path) -> Iterator[str]:
    """Every file (and symbolic link) below ``directory`` as a POSIX relative path, the marker excluded."""
    for root, folders, names in os.walk(directory):
        base = Path(root)
        for name in folders:
            if (base / name).is_symlink():  # os.walk does not descend into linked folders: they count as files
                names.append(name)
        for name in names:
            relative = (base / name).relative_to(directory).as_posix()
            if relative != MARKER:
                yield relative


def record_files(directory: Path) -> dict[str, list[Any]]:
    """The ``owner.files`` record of everything below ``directory``."""
    return {relative: file_entry(directory / relative) for relative in sorted(walk_files(directory))}


# ---------------------------------------------------------------------------------------------------------------
# Verifying


@dataclass
class Proof:
    """The outcome of :func:`verify`: whether ``directory`` is provably mudkd's, and if not, why.

    ``reason`` is one of ``owned``, ``missing``, ``empty``, ``no marker``, ``no record``, ``moved``,
    ``changed``; ``unexpected``, ``changed`` and ``missing`` name files (relative paths).
    """

    directory: Path
    marker: dict[str, Any] | None
    reason: str
    unexpected: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    recorded_path: str | None = None

    @property
    def owned(self) -> bool:
        """The directory is mudkd's and may be replaced (by the same command, with ``--overwrite``)."""
        return self.reason == "owned"

    @property
    def command(self) -> str | None:
        """The command that made it (None without a marker)."""
        return (self.marker or {}).get("command")

    @property
    def in_place(self) -> bool:
        """A folder written in place (sweep, search, pipeline root), proved by layout."""
        return bool(((self.marker or {}).get("owner") or {}).get("in_place"))

    def describe(self) -> str:
        """Why the directory is not provably mudkd's, for an error message (``is mudkd's`` when it is)."""
        if self.reason == "owned":
            return "is mudkd's"
        if self.reason == "no marker":
            return f"was not made by mudkd (it has no {MARKER})"
        if self.reason == "no record":
            return (
                f"carries a {MARKER} without an ownership record (from an earlier mudkd, copied or hand-written), "
                "so mudkd cannot prove it made it"
            )
        if self.reason == "moved":
            return f"is not where mudkd committed it ({self.recorded_path}): a copied or moved output is not mudkd's"
        parts = []
        for label, names in (
            ("files mudkd did not write", self.unexpected),
            ("changed since mudkd wrote them", self.changed),
            ("missing", self.missing),
        ):
            if names:
                more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
                parts.append(f"{label}: {', '.join(names[:SHOWN])}{more} ({len(names)})")
        return "holds " + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "owned": self.owned,
            "reason": self.reason,
            "command": self.command,
            "in_place": self.in_place,
            "recorded_path": self.recorded_path,
            "unexpected": self.unexpected,
            "changed": self.changed,
            "missing": self.missing,
        }


def verify(directory: str | Path, *, expected_path: Path | None = None, deep: bool = False) -> Proof:
    """Whether ``directory`` is provably a mudkd output (see the module docstring).

    Args:
        directory: The directory to check.
        expected_path: Where it must have been committed (default: where it is); a leftover
            ``.<name>.old-<pid>`` of a killed commit was committed to ``<name>``.
        deep: Re-hash every recorded file, not only those whose size or mtime changed.
    """
    directory = Path(directory)
    if not directory.is_dir() or directory.is_symlink():
        return Proof(directory, None, "missing")
    marker = read_marker(directory)
    if marker is None:
        return Proof(directory, None, "empty" if not any(directory.iterdir()) else "no marker")
    owner = marker.get("owner")
    if not isinstance(owner, dict) or not owner.get("id") or not isinstance(owner.get("path"), str):
        return Proof(directory, marker, "no record")
    expected = str((expected_path or directory).resolve())
    if owner["path"] != expected:
        return Proof(directory, marker, "moved", recorded_path=owner["path"])
    files = owner.get("files")
    if owner.get("in_place"):
        return _verify_layout(directory, marker, deep)
    if not isinstance(files, dict):  # a staging directory: its path and id are all there is to prove
        return Proof(directory, marker, "owned" if not marker.get("complete") else "no record")
    present = set(walk_files(directory))
    unexpected = sorted(present - set(files))
    missing = sorted(set(files) - present)
    changed = sorted(name for name in present & set(files) if not _unchanged(directory / name, files[name], deep))
    reason = "changed" if unexpected or missing or changed else "owned"
    return Proof(directory, marker, reason, unexpected, changed, missing, owner["path"])


def _unchanged(path: Path, entry: Any, deep: bool) -> bool:
    try:
        size, mtime, digest = entry
        status = path.lstat()
    except (OSError, TypeError, ValueError):
        return False
    if status.st_size != size:
        return False
    if path.is_symlink() or str(digest).startswith("symlink:"):
        return path.is_symlink() and "symlink:" + os.readlink(path) == digest
    if status.st_mtime_ns == mtime and not deep:
        return True
    return hash_file(path) == digest  # touched (or a deep check): the content decides


# ---------------------------------------------------------------------------------------------------------------
# In-place folders: proved by layout

_LAYOUTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
# Where each in-place command registers its layout (imported on first use, so `outputs check` knows them all).
_LAYOUT_MODULES = {
    "sweep": "mudkd.core.sweep.results",
    "sweep-merge": "mudkd.core.sweep.results",
    "search": "mudkd.core.search.run",
    "pipeline": "mudkd.core.stages.pipeline",
}


def register_layout(command: str, *, files: tuple[str, ...], folders: tuple[str, ...] = ()) -> None:
    """Declare the files (and plain sub-folders) an in-place folder made by ``command`` may hold.

    Patterns are relative POSIX paths, ``*`` matching within one path segment (``points/*/result.json``).
    Sub-directories that are mudkd outputs themselves (a store, a point's model, a nested sweep) need no pattern:
    their own marker proves them.
    """
    _LAYOUTS[command] = (files, folders)


def layout(command: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """The registered layout of an in-place command (None for a command that is not in-place)."""
    if command not in _LAYOUTS and command in _LAYOUT_MODULES:
        importlib.import_module(_LAYOUT_MODULES[command])
    return _LAYOUTS.get(command)


def _matches(relative: str, patterns: tuple[str, ...]) -> bool:
    parts = relative.split("/")
    for pattern in patterns:
        wanted = pattern.split("/")
        if len(wanted) == len(parts) and all(fnmatchcase(p, w) for p, w in zip(parts, wanted, strict=True)):
            return True
    return False


def _verify_layout(directory: Path, marker: dict[str, Any], deep: bool) -> Proof:
    unexpected = layout_strangers(directory, str(marker.get("command")), lambda entry: _nested_owned(entry, deep))
    if unexpected is None:
        return Proof(directory, marker, "no record")
    reason = "changed" if unexpected else "owned"
    return Proof(directory, marker, reason, unexpected=unexpected, recorded_path=marker["owner"]["path"])


def layout_strangers(directory: Path, command: str, nested_ok: Callable[[Path], bool]) -> list[str] | None:
    """The entries of an in-place folder its command's layout does not allow (None: no such layout).

    ``nested_ok`` decides about a sub-directory that carries a marker (a nested output).
    """
    known = layout(command)
    if known is None:
        return None
    files, folders = known
    unexpected: list[str] = []
    pending = [directory]
    while pending:
        folder = pending.pop()
        for entry in sorted(folder.iterdir()):
            relative = entry.relative_to(directory).as_posix()
            if entry.name == MARKER and folder == directory:
                continue
            if entry.is_dir() and not entry.is_symlink():
                if read_marker(entry) is not None:
                    if not nested_ok(entry):
                        unexpected.append(relative + "/")
                elif _matches(relative, folders):
                    pending.append(entry)
                else:
                    unexpected.append(relative + "/")
            elif not (_matches(relative, files) or any(fnmatchcase(entry.name, p) for p in _WORKING_FILES)):
                unexpected.append(relative)
    return sorted(unexpected)


def _nested_owned(entry: Path, deep: bool) -> bool:
    """A mudkd output inside an in-place folder: proved by its own record (a killed commit's leftover by its name)."""
    name = entry.name
    if name.startswith(".") and ".old-" in name:
        return verify(entry, expected_path=entry.with_name(name[1:].rsplit(".old-", 1)[0]), deep=deep).owned
    return verify(entry, deep=deep).owned


def nested_outputs(directory: Path) -> list[Path]:
    """Every marked directory strictly below ``directory`` (an in-place folder's stores, models, nested sweeps)."""
    found = []
    for root, folders, _names in os.walk(directory):
        base = Path(root)
        for name in list(folders):
            if read_marker(base / name) is not None and not (base / name).is_symlink():
                found.append(base / name)
    return sorted(found, key=lambda path: (-len(path.parts), str(path)))  # innermost first
