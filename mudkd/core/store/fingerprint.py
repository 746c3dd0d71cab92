"""Fingerprints: what stored knowledge was built from, hashed; and the one rule for "was it built for this run".

A fingerprint is a flat ``{str: str}`` dict, e.g. ``{"teacher": <sha256 of the weights>, "task": "sst-2",
"max_seq_length": "64", "budget": <sha256 of the budget>}``. ``mudkd distill cache`` builds one per store
(:func:`mudkd.core.stages.cache.run_fingerprint`), the manifest keeps it, and every reader compares it with
:func:`fingerprint_mismatches`, so "matches" means the same thing to training, sweeps and resumed builds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mudkd.errors import StoreError

_READ_BLOCK = 1 << 20  # files are hashed in 1 MiB reads
_SHOWN_CHARS = 16  # a value longer than this is shortened in messages


def fingerprint_mismatches(stored: Mapping[str, str], expected: Mapping[str, str], *, exact: bool = False) -> list[str]:
    """What disagrees between a store's fingerprint and a run's: empty when the store was built for the run.

    The rule: every key the run expects must hold the same value in the store, and a key the store lacks
    disagrees. Keys only the store has are not compared, because a store records more than any one reader can
    recompute (a teacher-free run never loads the teacher it would have to hash; a training run matches the
    budget by slicing, not equality). ``exact`` compares those too: resuming a build continues the very same
    build, so nothing may differ.

    Args:
        stored: The store's fingerprint (its manifest's ``fingerprint``).
        expected: What this run was given, e.g. :func:`mudkd.core.stages.cache.run_fingerprint`.
        exact: Also count keys only the store has.

    Returns:
        One ``"key (store X, run Y)"`` per disagreeing key, sorted by key; a value over 16 characters is
        shortened, a missing one shown as ``absent``.
    """
    keys = set(expected) | set(stored) if exact else set(expected)
    return [
        f"{key} (store {_short(stored.get(key))}, run {_short(expected.get(key))})"
        for key in sorted(keys)
        if stored.get(key) != expected.get(key)
    ]


#: Fingerprint keys that say how many training examples a store was built on, not which: a reader compares the
#: number of examples instead (:func:`serving_mismatches`), since a store serves any prefix of its examples.
COUNT_KEYS = frozenset({"max_train_samples"})


def serving_mismatches(
    stored: Mapping[str, str], stored_examples: int, expected: Mapping[str, str], wanted_examples: int
) -> list[str]:
    """What stops a store from serving a run that trains on ``wanted_examples`` examples: empty when it serves.

    The rule of :func:`fingerprint_mismatches` for every key but :data:`COUNT_KEYS`, and the store must hold at least
    the examples the run trains on: the run reads the store's first ``wanted_examples`` rows. That prefix is the
    run's own examples because the ``data`` key hashes the whole source (every data file, or a hub dataset's training
    split before any limit), the loader reads it in a fixed order and ``max_train_samples = N`` keeps its first N
    examples; with the same data, tokenizer and length (also compared), example i is the same in both.

    Args:
        stored: The store's fingerprint.
        stored_examples: The examples the store holds.
        expected: The run's fingerprint (its :data:`COUNT_KEYS` are ignored).
        wanted_examples: The training examples of the run.

    Returns:
        The :func:`fingerprint_mismatches` lines, then ``"examples (store N, run M)"`` when M > N.
    """
    differ = fingerprint_mismatches(stored, {k: v for k, v in expected.items() if k not in COUNT_KEYS})
    if wanted_examples > stored_examples:
        differ.append(f"examples (store {stored_examples:,}, run {wanted_examples:,})")
    return differ


def fingerprint_files(paths: Iterable[str | os.PathLike[str]]) -> str:
    """A sha256 over the names and contents of files, e.g. the teacher weights or the training data.

    A file contributes its base name, a directory the paths of its files relative to it (recursing in sorted
    order, symlinked files followed), so moving the data elsewhere keeps the fingerprint. Paths are hashed in the
    order given. Contents are streamed in 1 MiB blocks.

    Args:
        paths: Files and/or directories.

    Returns:
        64 hex digits.

    Raises:
        StoreError: A path does not exist.
    """
    digest = hashlib.sha256()
    buffer = bytearray(_READ_BLOCK)
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            entries = []
            for root, dirs, files in os.walk(path):
                dirs.sort()
                entries.extend((Path(root) / name).relative_to(path).as_posix() for name in sorted(files))
            digest.update(b"D" + _length_prefixed(path.name))
            for relative in entries:
                _hash_file(digest, path / relative, relative, buffer)
        elif path.is_file():
            _hash_file(digest, path, path.name, buffer)
        else:
            raise StoreError(f"cannot fingerprint {path}: no such file or directory", hint="check the path")
    return digest.hexdigest()


def fingerprint_value(obj: Any) -> str:
    """A sha256 of the canonical JSON of ``obj`` (sorted keys, no whitespace); e.g. a knowledge budget dict.

    Paths become strings, numpy scalars and arrays become numbers and lists, dataclasses become dicts.

    Raises:
        TypeError: ``obj`` holds something JSON cannot represent.
    """
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_sha256(path: Path) -> str:
    """The sha256 of one file's contents, read sequentially in 1 MiB blocks (no memory map, so no RSS growth)."""
    digest = hashlib.sha256()
    buffer = bytearray(_READ_BLOCK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        while n := handle.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()


def _short(value: str | None) -> str:
    if value is None:
        return "absent"
    return value if len(value) <= _SHOWN_CHARS else value[:12] + "…"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, np.generic | np.ndarray):
        return obj.tolist()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    raise TypeError(f"cannot fingerprint a {type(obj).__name__}")


def _length_prefixed(text: str) -> bytes:
    data = text.encode("utf-8")
    return len(data).to_bytes(8, "little") + data


def _hash_file(digest: Any, path: Path, name: str, buffer: bytearray) -> None:
    # Name and size are framed so that ("ab", "c") and ("a", "bc") cannot collide.
    digest.update(b"F" + _length_prefixed(name) + path.stat().st_size.to_bytes(8, "little"))
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while n := handle.readinto(buffer):
            digest.update(view[:n])
