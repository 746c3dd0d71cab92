"""The teacher-free knowledge store: a teacher's compressed HSK and logits for every training example (method §16).

A store is a directory::

    manifest.json                 what is stored, how far the build got, checksums, the run fingerprint
    chunk-00000.<field>.bin       raw C-order little-endian rows of one field for examples [0, chunk_size)
    chunk-00001.<field>.bin       ... the last chunk may be shorter
    .writer.lock                  held (flock) by the one process building the store

What is stored per example is decided by the caller: a dict of named fixed-shape arrays (``fields``), e.g.
``{"logits": float32[2], "token_index": int16[1, 10], "values": float16[1, 768], "positions": int16[1, 768]}``.

Crash safety. :class:`StoreWriter` buffers at most one chunk. A full chunk is written to ``*.tmp`` files, fsynced,
renamed into place, and only then is the manifest rewritten atomically (tmp file, fsync, ``os.replace``) with the
new ``committed`` count. A kill at any moment therefore leaves a manifest that lists only complete, checksummed
chunks; stray ``*.tmp`` files and chunk files the manifest does not list are removed by :meth:`StoreWriter.resume`.

Bounded reads. :class:`HskStore` memory-maps each chunk file lazily and gathers rows with numpy, so random access
is O(1) and nothing is read up front. Touched file-backed pages count toward the process RSS and would otherwise
stay mapped until the whole store is resident. Worse, one touched row maps far more than its own bytes: Linux maps
the whole page-cache folio around a read fault, and recent kernels cache freshly written files in folios of up to
2 MiB (measured: 2 MiB of RSS per random 12 KiB row on 6.18). So the reader charges every row it gathers
``row bytes + max(2 MiB huge-page size, 64 KiB fault-around)`` and, once ``release_bytes`` (64 MiB by default) are
charged, drops the pages of the chunk maps touched since the last release with ``madvise(MADV_DONTNEED)``. The data
stays in the kernel page cache, so re-reading it costs a minor fault (a few microseconds), not I/O.
At most ``max_open_chunks`` chunks are mapped at once (each map holds a file descriptor); older ones are unmapped.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import mmap
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mudkd.core.outputs import MARKER as OUTPUT_MARKER
from mudkd.errors import StoreError
from mudkd.knowledge.summary import format_bytes

try:  # POSIX only; without it concurrent writers are not detected.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

FORMAT = "mudkd-hsk-store"
VERSION = 1
MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".writer.lock"
TMP_SUFFIX = ".tmp"
DEFAULT_CHUNK_SIZE = 4096
DEFAULT_RELEASE_BYTES = 64 << 20
# A writer buffers one whole chunk in memory: more than this per chunk is refused before anything is written.
MAX_CHUNK_BYTES = 1 << 30

_READ_BLOCK = 1 << 20
# A read fault maps the already-cached neighbours too: fault_around_bytes (64 KiB) of small pages, or the whole
# large folio, which is at most the PMD huge-page size. The release accounting charges the larger per row.
_FAULT_AROUND_BYTES = 64 << 10
_DEFAULT_HUGE_PAGE_BYTES = 2 << 20
_SCALAR_GATHER_ROWS = 8
_FIELD_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_CHUNK_FILE = re.compile(r"^chunk-(\d+)\.([A-Za-z0-9_-]+)\.bin$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ALLOWED_KINDS = "biuf"  # bool, signed and unsigned integers, floats: raw bytes with a fixed little-endian layout
_REBUILD_HINT = "delete the store directory and build it again"


@dataclass(frozen=True)
class Field:
    """The dtype and per-example shape of one stored array.

    Args:
        dtype: A numeric numpy dtype (bool, integer or float), stored little-endian.
        shape: The shape of one example's array, without the batch dimension, e.g. ``(1, 768)``.
    """

    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        """Number of elements per example."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes per example."""
        return self.size * self.dtype.itemsize

    def to_json(self) -> dict[str, Any]:
        """The manifest form: ``{"dtype": "float16", "shape": [1, 768]}``."""
        return {"dtype": self.dtype.name, "shape": list(self.shape)}


# --------------------------------------------------------------------------------------------------------------------
# Fingerprints


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


def _json_default(obj: Any) -> Any:
    import dataclasses

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


def check_chunk_bytes(fields: Mapping[str, Any], chunk_size: int, *, limit: int = MAX_CHUNK_BYTES) -> int:
    """Refuse a chunk whose in-memory write buffer (``chunk_size`` examples of every field) would exceed ``limit``.

    :class:`StoreWriter` buffers one whole chunk before writing it, so this bounds the memory a store build needs;
    it runs before anything is written (``StoreWriter.create`` calls it too).

    Args:
        fields: Name to per-example array, as for :meth:`StoreWriter.create`.
        chunk_size: Examples per chunk (``cache.chunk_size``).
        limit: The most bytes one chunk may buffer (default :data:`MAX_CHUNK_BYTES`, 1 GiB).

    Returns:
        The bytes one full chunk buffers.

    Raises:
        StoreError: Bad fields or chunk size, or a chunk larger than ``limit``; the hint gives the largest
            ``cache.chunk_size`` that fits.
    """
    where = "HSK store"
    if type(chunk_size) is not int or chunk_size <= 0:
        raise StoreError(
            f"{where}: chunk_size must be a positive integer, got {chunk_size!r}", hint="e.g. chunk_size=4096"
        )
    per_example = sum(field.nbytes for field in _parse_fields(fields, where).values())
    total = per_example * chunk_size
    if total > limit:
        fits = limit // per_example
        hint = (
            f"lower cache.chunk_size to {fits}"
            if fits >= 1
            else "one example alone exceeds the limit: choose a smaller knowledge budget"
        )
        raise StoreError(
            f"cache.chunk_size {chunk_size} × {format_bytes(per_example)} per example = {format_bytes(total)} "
            f"per chunk, more than the {format_bytes(limit)} a chunk may hold in memory while the store is written",
            hint=hint,
        )
    return total


# --------------------------------------------------------------------------------------------------------------------
# Manifest helpers


def _chunk_file_name(index: int, field: str) -> str:
    return f"chunk-{index:05d}.{field}.bin"


def _parse_field(name: Any, spec: Any, where: str) -> Field:
    """Turn ``Field``, ``(dtype, shape)`` or ``{"dtype": ..., "shape": [...]}`` into a :class:`Field`."""
    if not isinstance(name, str) or not _FIELD_NAME.match(name):
        raise StoreError(f"{where}: field name {name!r} is invalid", hint="use letters, digits, '_' and '-' only")
    if isinstance(spec, Field):
        dtype, shape = spec.dtype, spec.shape
    elif isinstance(spec, Mapping) and set(spec) == {"dtype", "shape"}:
        dtype, shape = spec["dtype"], spec["shape"]
    elif isinstance(spec, tuple | list) and len(spec) == 2:
        dtype, shape = spec
    else:
        raise StoreError(
            f"{where}: field {name!r} must be (dtype, shape) or {{'dtype', 'shape'}}, got {spec!r}",
            hint="e.g. fields={'values': ('float16', (1, 768))}",
        )
    try:
        parsed = np.dtype(dtype)
    except TypeError as error:
        raise StoreError(
            f"{where}: field {name!r} has an unknown dtype {dtype!r}", hint="use e.g. 'float16'"
        ) from error
    if parsed.kind not in _ALLOWED_KINDS or parsed.fields is not None or parsed.subdtype is not None:
        raise StoreError(
            f"{where}: field {name!r} has dtype {parsed} which cannot be stored",
            hint="use a bool, integer or float dtype",
        )
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, tuple | list) or not all(type(d) is int and d > 0 for d in shape):
        raise StoreError(
            f"{where}: field {name!r} has shape {shape!r}; expected a list of positive integers",
            hint="give the per-example shape without the batch dimension, e.g. (1, 768)",
        )
    return Field(parsed.newbyteorder("<"), tuple(shape))


def _parse_fields(fields: Any, where: str) -> dict[str, Field]:
    if not isinstance(fields, Mapping) or not fields:
        raise StoreError(
            f"{where}: fields must be a non-empty mapping of name to (dtype, shape)",
            hint="e.g. fields={'values': ('float16', (1, 768))}",
        )
    return {name: _parse_field(name, spec, where) for name, spec in fields.items()}


def _check_fingerprint(fingerprint: Any, where: str) -> dict[str, str]:
    if not isinstance(fingerprint, Mapping):
        raise StoreError(f"{where}: fingerprint must be a dict of str to str", hint="e.g. {'task': 'sst-2'}")
    for key, value in fingerprint.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise StoreError(
                f"{where}: fingerprint entry {key!r} must map a str to a str, got {type(value).__name__}",
                hint="convert values with str() or fingerprint_value()",
            )
    return dict(fingerprint)


def _short(value: str | None) -> str:
    if value is None:
        return "absent"
    return value if len(value) <= 16 else value[:12] + "…"


def _fingerprint_diff(stored: Mapping[str, str], expected: Mapping[str, str]) -> list[str]:
    """One ``key (store X, run Y)`` entry per key whose value differs or that only one side has."""
    keys = sorted(set(stored) | set(expected))
    return [
        f"{key} (store {_short(stored.get(key))}, run {_short(expected.get(key))})"
        for key in keys
        if stored.get(key) != expected.get(key)
    ]


def _read_manifest(directory: Path) -> dict[str, Any]:
    """Read and fully validate ``manifest.json``; a damaged or foreign manifest raises :class:`StoreError`."""
    where = f"HSK store {directory}"
    if not directory.is_dir():
        hint = "build the store first, or fix the path"
        if directory.exists():
            raise StoreError(f"{where} is not a directory", hint=hint)
        raise StoreError(f"{where} not found", hint=hint)
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise StoreError(f"{where}: no {MANIFEST_NAME} (not a store, or its build never started)", hint=_REBUILD_HINT)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StoreError(f"{where}: {MANIFEST_NAME} is not valid JSON ({error})", hint=_REBUILD_HINT) from error

    def malformed(what: str) -> StoreError:
        return StoreError(f"{where}: {MANIFEST_NAME} is malformed: {what}", hint=_REBUILD_HINT)

    if not isinstance(manifest, dict):
        raise malformed("not a JSON object")
    if manifest.get("format") != FORMAT:
        raise StoreError(
            f"{where}: {MANIFEST_NAME} has format {manifest.get('format')!r}, not {FORMAT!r}",
            hint="point to a directory built as an HSK store",
        )
    version = manifest.get("version")
    if type(version) is not int:
        raise malformed("version is not an integer")
    if version != VERSION:
        hint = "upgrade mudkd" if version > VERSION else _REBUILD_HINT
        raise StoreError(f"{where}: store format version {version} is not supported (expected {VERSION})", hint=hint)
    try:
        fields = _parse_fields(manifest.get("fields"), where)
        fingerprint = _check_fingerprint(manifest.get("fingerprint"), where)
    except StoreError as error:
        raise malformed(error.message.removeprefix(where + ": ")) from error
    num_examples, chunk_size, committed = (manifest.get(k) for k in ("num_examples", "chunk_size", "committed"))
    if type(num_examples) is not int or num_examples < 0:
        raise malformed("num_examples is not a non-negative integer")
    if type(chunk_size) is not int or chunk_size <= 0:
        raise malformed("chunk_size is not a positive integer")
    if type(committed) is not int or not 0 <= committed <= num_examples:
        raise malformed("committed is not an integer in [0, num_examples]")
    if not isinstance(manifest.get("complete"), bool):
        raise malformed("complete is not true/false")
    if manifest["complete"] and committed != num_examples:
        raise malformed("marked complete but committed < num_examples")
    chunks = manifest.get("chunks")
    if not isinstance(chunks, list):
        raise malformed("chunks is not a list")
    for index, chunk in enumerate(chunks):
        start = index * chunk_size
        if not isinstance(chunk, dict) or chunk.get("index") != index or chunk.get("start") != start:
            raise malformed(f"chunk {index} has a wrong index or start")
        if chunk.get("count") != min(chunk_size, num_examples - start) or chunk["count"] <= 0:
            raise malformed(f"chunk {index} has a wrong count")
        files = chunk.get("files")
        if not isinstance(files, dict) or set(files) != set(fields):
            raise malformed(f"chunk {index} does not list one file per field")
        for name, entry in files.items():
            if (
                not isinstance(entry, dict)
                or entry.get("bytes") != chunk["count"] * fields[name].nbytes
                or not isinstance(entry.get("sha256"), str)
                or not _SHA256.match(entry["sha256"])
            ):
                raise malformed(f"chunk {index} field {name!r} has a wrong size or checksum entry")
    if sum(chunk["count"] for chunk in chunks) != committed:
        raise malformed("committed does not equal the examples in the listed chunks")
    disagreement = _meta_disagreement(manifest.get("meta"), fingerprint, fields)
    if disagreement:
        raise StoreError(
            f"{where}: {MANIFEST_NAME} contradicts itself: {disagreement}",
            hint="the manifest was edited or damaged: " + _REBUILD_HINT,
        )
    manifest["fields"] = fields
    manifest["fingerprint"] = fingerprint
    return manifest


def _meta_disagreement(meta: Any, fingerprint: Mapping[str, str], fields: Mapping[str, Field]) -> str | None:
    """How a manifest's ``meta`` (or its fields) contradicts its own ``fingerprint``, or None.

    ``mudkd distill cache`` writes both from one budget: ``fingerprint.budget`` is :func:`fingerprint_value` of
    ``meta.budget``, ``meta.task`` equals ``fingerprint.task``, and the ``values`` field has ``fingerprint.dtype``.
    Training reads the budget from ``meta`` but matches runs on the fingerprint, so the two must agree. Keys only
    one side has are not compared (a generic store need not have them).
    """
    if isinstance(meta, Mapping):
        if "budget" in meta and "budget" in fingerprint:
            try:
                hashed = fingerprint_value(meta["budget"])
            except TypeError:
                hashed = None
            if hashed != fingerprint["budget"]:
                return "meta.budget does not match fingerprint.budget"
        for key in ("task", "dtype"):
            if key in meta and key in fingerprint and str(meta[key]) != fingerprint[key]:
                return f"meta.{key} is {meta[key]!r} but fingerprint.{key} is {fingerprint[key]!r}"
    values = fields.get("values")
    if "dtype" in fingerprint and values is not None and values.dtype.name != fingerprint["dtype"]:
        return f"the values field is {values.dtype.name} but fingerprint.dtype is {fingerprint['dtype']!r}"
    return None


def _value_dtype(manifest: Mapping[str, Any]) -> str | None:
    """The precision of the stored HSK values (``float16``/``float32``), or None for a store without values."""
    values = manifest["fields"].get("values")
    return manifest["fingerprint"].get("dtype") or (values.dtype.name if values is not None else None)


def _manifest_json(manifest: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(manifest)
    result["fields"] = {name: field.to_json() for name, field in manifest["fields"].items()}
    return result


def _fsync_directory(directory: Path) -> None:
    # Makes the renames themselves durable; without it a power cut can lose a rename the manifest relies on.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + TMP_SUFFIX)
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(obj, handle, indent=1)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_directory(path.parent)


def _check_chunk_files(directory: Path, manifest: Mapping[str, Any]) -> None:
    """Every listed chunk file exists with its listed size (a cheap ``stat``, no reads)."""
    for chunk in manifest["chunks"]:
        for name, entry in chunk["files"].items():
            file_name = _chunk_file_name(chunk["index"], name)
            try:
                size = (directory / file_name).stat().st_size
            except FileNotFoundError as error:
                message = f"HSK store {directory}: chunk file {file_name} is missing"
                raise StoreError(message, hint=_REBUILD_HINT) from error
            if size != entry["bytes"]:
                state = "truncated" if size < entry["bytes"] else "too large"
                raise StoreError(
                    f"HSK store {directory}: chunk file {file_name} is {state} "
                    f"({size} bytes, expected {entry['bytes']})",
                    hint=_REBUILD_HINT,
                )


def _verify_checksums(directory: Path, manifest: Mapping[str, Any]) -> None:
    """Re-hash every chunk file with buffered reads; memory maps would leave the whole store in the RSS."""
    buffer = bytearray(_READ_BLOCK)
    view = memoryview(buffer)
    for chunk in manifest["chunks"]:
        for name, entry in chunk["files"].items():
            file_name = _chunk_file_name(chunk["index"], name)
            digest = hashlib.sha256()
            with open(directory / file_name, "rb", buffering=0) as handle:
                if hasattr(os, "posix_fadvise"):
                    os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
                while n := handle.readinto(buffer):
                    digest.update(view[:n])
            if digest.hexdigest() != entry["sha256"]:
                raise StoreError(
                    f"HSK store {directory}: chunk file {file_name} is corrupted (checksum mismatch)",
                    hint=_REBUILD_HINT,
                )


def store_nbytes(directory: str | os.PathLike[str]) -> int:
    """Bytes of committed chunk data in the store at ``directory`` (the manifest itself not counted).

    Raises:
        StoreError: The directory is not a readable store.
    """
    manifest = _read_manifest(Path(directory))
    return sum(entry["bytes"] for chunk in manifest["chunks"] for entry in chunk["files"].values())


# --------------------------------------------------------------------------------------------------------------------
# Writing


class StoreWriter:
    """Writes a store one chunk at a time, so a killed build resumes from its last complete chunk.

    Make one with :meth:`create` or :meth:`resume`, :meth:`append` the examples in order, then :meth:`close`.
    Used as a context manager, a clean exit closes the store; an exception leaves it resumable.

    Attributes:
        directory: The store directory.
        fields: Name to :class:`Field`.
        num_examples: How many examples the finished store holds.
        chunk_size: Examples per chunk file.
        committed: Examples durably written (always a multiple of ``chunk_size`` until the store is complete);
            after :meth:`resume`, the index of the next example to :meth:`append`.
    """

    def __init__(self, directory: Path, manifest: dict[str, Any], lock_handle: Any) -> None:
        """Use :meth:`create` or :meth:`resume`."""
        self.directory = directory
        self._manifest = manifest
        self.fields: dict[str, Field] = manifest["fields"]
        self.num_examples: int = manifest["num_examples"]
        self.chunk_size: int = manifest["chunk_size"]
        self.committed: int = manifest["committed"]
        self._lock_handle = lock_handle
        self._buffer: dict[str, np.ndarray] | None = None
        self._buffered = 0
        self._closed = False

    @classmethod
    def create(
        cls,
        directory: str | os.PathLike[str],
        *,
        fields: Mapping[str, Any],
        num_examples: int,
        fingerprint: Mapping[str, str],
        meta: Any = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        max_chunk_bytes: int = MAX_CHUNK_BYTES,
    ) -> StoreWriter:
        """Start a new store in an empty or missing directory.

        Args:
            directory: Where to write; created if missing, must not contain other files.
            fields: Name to per-example array: a :class:`Field`, ``(dtype, shape)`` or ``{"dtype", "shape"}``.
            num_examples: How many examples will be appended.
            fingerprint: What the store was built from (str to str); :meth:`HskStore.open` compares it.
            meta: Any JSON value kept in the manifest, e.g. the knowledge budget.
            chunk_size: Examples per chunk file; one chunk is buffered in memory while writing.
            max_chunk_bytes: The most memory that one chunk buffer may take (see :func:`check_chunk_bytes`).

        Raises:
            StoreError: Bad arguments, a chunk buffer over ``max_chunk_bytes``, a non-empty directory, or another
                process writing there.
        """
        directory = Path(directory)
        where = f"HSK store {directory}"
        parsed_fields = _parse_fields(fields, where)
        fingerprint = _check_fingerprint(fingerprint, where)
        if type(num_examples) is not int or num_examples < 0:
            raise StoreError(
                f"{where}: num_examples must be a non-negative integer, got {num_examples!r}",
                hint="pass the number of training examples",
            )
        if type(chunk_size) is not int or chunk_size <= 0:
            raise StoreError(
                f"{where}: chunk_size must be a positive integer, got {chunk_size!r}", hint="e.g. chunk_size=4096"
            )
        check_chunk_bytes(parsed_fields, chunk_size, limit=max_chunk_bytes)
        try:
            json.dumps(meta, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise StoreError(f"{where}: meta is not JSON-serialisable ({error})", hint="pass plain dicts") from error
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"{where}: cannot create the directory ({error})", hint="check the path") from error
        lock_handle = _lock(directory)
        try:
            # Only leftovers of a build killed before its first manifest write are tolerated.
            ignored = (LOCK_NAME, OUTPUT_MARKER)  # the output guard marks the staging directory before the build
            others = sorted(p.name for p in directory.iterdir() if p.name not in ignored and p.suffix != TMP_SUFFIX)
            if others:
                hint = "resume it, delete it, or choose another directory"
                raise StoreError(f"{where} already exists and is not empty ({others[0]}, ...)", hint=hint)
            _remove_leftovers(directory, num_chunks=0)
            manifest = {
                "format": FORMAT,
                "version": VERSION,
                "fields": parsed_fields,
                "bytes_per_example": sum(field.nbytes for field in parsed_fields.values()),
                "num_examples": num_examples,
                "chunk_size": chunk_size,
                "committed": 0,
                "chunks": [],
                "fingerprint": fingerprint,
                "meta": meta,
                "complete": False,
            }
            _write_json_atomic(directory / MANIFEST_NAME, _manifest_json(manifest))
        except BaseException:
            lock_handle.close()
            raise
        return cls(directory, manifest, lock_handle)

    @classmethod
    def resume(
        cls,
        directory: str | os.PathLike[str],
        *,
        fingerprint: Mapping[str, str],
        fields: Mapping[str, Any] | None = None,
    ) -> StoreWriter:
        """Reopen an interrupted (or finished) build; continue by appending from example ``writer.committed``.

        Stray temporary files and chunk files the manifest does not list are deleted.

        Args:
            directory: The store directory.
            fingerprint: This run's fingerprint; must equal the stored one.
            fields: If given, must equal the stored fields.

        Raises:
            StoreError: No store there, a different fingerprint or fields, a damaged chunk, or another writer.
        """
        directory = Path(directory)
        where = f"HSK store {directory}"
        fingerprint = _check_fingerprint(fingerprint, where)
        manifest = _read_manifest(directory)
        differ = _fingerprint_diff(manifest["fingerprint"], fingerprint)
        if differ:
            raise StoreError(
                f"{where} was built for a different run, cannot resume: {', '.join(differ)}",
                hint="delete the store to rebuild it for this run, or choose another directory",
            )
        if fields is not None and _parse_fields(fields, where) != manifest["fields"]:
            stored = {name: field.to_json() for name, field in manifest["fields"].items()}
            raise StoreError(
                f"{where} stores different fields, cannot resume: {json.dumps(stored)}",
                hint="delete the store to rebuild it with the new fields, or choose another directory",
            )
        lock_handle = _lock(directory)
        try:
            manifest = _read_manifest(directory)  # again: a writer that held the lock until now may have moved on
            _remove_leftovers(directory, num_chunks=len(manifest["chunks"]))
            _check_chunk_files(directory, manifest)
        except BaseException:
            lock_handle.close()
            raise
        writer = cls(directory, manifest, lock_handle)
        if manifest["complete"]:
            writer._release()
            writer._closed = True
        return writer

    @property
    def complete(self) -> bool:
        """Whether the store is finished (closed with every example written)."""
        return bool(self._manifest["complete"])

    @property
    def position(self) -> int:
        """Examples appended so far, committed or still buffered: the index the next append starts at."""
        return self.committed + self._buffered

    def append(self, batch: Mapping[str, Any]) -> None:
        """Append the next examples, in order.

        Args:
            batch: Field name to a batch-first array ``[n, *field.shape]`` (numpy, or anything ``np.asarray``
                takes, e.g. a CPU tensor), the same ``n`` for every field. Values are cast to the field dtype
                when numpy considers that a same-kind cast (float32 → float16, int64 → int16) and they fit.

        Raises:
            StoreError: Unknown or missing fields, a wrong shape or dtype, values out of range, more examples than
                ``num_examples``, a closed writer, or a failed disk write (the store stays resumable).
        """
        where = f"HSK store {self.directory}"
        if self._closed:
            raise StoreError(f"{where}: the writer is closed", hint="resume the store to write more")
        if not isinstance(batch, Mapping):
            raise StoreError(
                f"{where}: append() takes a dict of field name to array",
                hint="e.g. append({'values': array, ...}) with every field",
            )
        unknown, missing = sorted(set(batch) - set(self.fields)), sorted(set(self.fields) - set(batch))
        if unknown or missing:
            raise StoreError(
                f"{where}: append() got unknown fields {unknown} and is missing fields {missing}",
                hint=f"pass exactly the store's fields {sorted(self.fields)}",
            )
        arrays: dict[str, np.ndarray] = {}
        rows: int | None = None
        for name, field in self.fields.items():
            array = np.asarray(batch[name])
            if array.shape[1:] != field.shape or array.ndim != len(field.shape) + 1:
                expected = "(n" + "".join(f", {size}" for size in field.shape) + ")"
                raise StoreError(
                    f"{where}: field {name!r} has batch shape {array.shape}, expected {expected}",
                    hint="arrays are batch-first; check the knowledge budget the store was created with",
                )
            if array.dtype.kind not in _ALLOWED_KINDS or not np.can_cast(array.dtype, field.dtype, "same_kind"):
                raise StoreError(
                    f"{where}: field {name!r} has dtype {array.dtype}, which does not cast safely to {field.dtype}",
                    hint=f"convert it to {field.dtype} first",
                )
            if rows is not None and array.shape[0] != rows:
                raise StoreError(
                    f"{where}: fields have different batch sizes ({rows} vs {array.shape[0]})",
                    hint="give every field the same number of examples (the first axis)",
                )
            rows = array.shape[0]
            _check_range(array, field.dtype, name, where)
            arrays[name] = array
        assert rows is not None
        if self.position + rows > self.num_examples:
            raise StoreError(
                f"{where}: appending {rows} examples at {self.position} exceeds num_examples={self.num_examples}",
                hint="append each example once, in order",
            )
        offset = 0
        while offset < rows:
            buffer = self._chunk_buffer()
            capacity = min(self.chunk_size, self.num_examples - self.committed)
            take = min(rows - offset, capacity - self._buffered)
            for name, array in arrays.items():
                buffer[name][self._buffered : self._buffered + take] = array[offset : offset + take]
            self._buffered += take
            offset += take
            if self._buffered == capacity:
                self._flush_chunk()

    def close(self) -> None:
        """Write the last chunk and mark the store complete. Closing twice does nothing.

        Raises:
            StoreError: Fewer than ``num_examples`` examples were appended (nothing is lost: append the rest and
                close again, or resume later).
        """
        if self._closed:
            return
        if self.position != self.num_examples:
            raise StoreError(
                f"HSK store {self.directory}: only {self.position} of {self.num_examples} examples were appended",
                hint="append the remaining examples before close(); the store stays resumable",
            )
        if self._buffered:
            self._flush_chunk()
        self._manifest["complete"] = True
        try:
            self._write_manifest()
        except OSError as error:
            self._manifest["complete"] = False
            raise StoreError(
                f"HSK store {self.directory}: cannot mark the store complete ({error})",
                hint="free disk space or fix permissions, then resume the build and close it",
            ) from error
        self._closed = True
        self._release()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            # Keep the committed chunks, drop the buffer and the lock so a later resume can continue.
            self._closed = True
            self._release()

    def _chunk_buffer(self) -> dict[str, np.ndarray]:
        if self._buffer is None:
            # No chunk from here on holds more than the examples still to come (a small set, a large chunk_size).
            rows = max(1, min(self.chunk_size, self.num_examples - self.committed))
            self._buffer = {
                name: np.empty((rows, *field.shape), dtype=field.dtype) for name, field in self.fields.items()
            }
        return self._buffer

    def _flush_chunk(self) -> None:
        assert self._buffer is not None
        index, count = len(self._manifest["chunks"]), self._buffered
        files: dict[str, dict[str, Any]] = {}
        renames = []
        try:
            for name in self.fields:
                data = self._buffer[name][:count]  # a leading-axis slice of a C-order array: contiguous
                final = self.directory / _chunk_file_name(index, name)
                tmp = final.with_name(final.name + TMP_SUFFIX)
                with open(tmp, "wb") as handle:
                    handle.write(memoryview(data).cast("B"))
                    handle.flush()
                    os.fsync(handle.fileno())
                files[name] = {"bytes": data.nbytes, "sha256": hashlib.sha256(data).hexdigest()}
                renames.append((tmp, final))
            for tmp, final in renames:
                os.replace(tmp, final)
            _fsync_directory(self.directory)
            self._manifest["chunks"].append({"index": index, "start": self.committed, "count": count, "files": files})
            self._manifest["committed"] = self.committed + count
            self._write_manifest()
        except OSError as error:
            # The manifest still describes the chunks before this one; the orphans are cleaned on resume.
            if len(self._manifest["chunks"]) > index:
                self._manifest["chunks"].pop()
            self._manifest["committed"] = self.committed
            # Part of the caller's batch may sit in the lost buffer, so this writer cannot continue safely.
            self._closed = True
            self._release()
            raise StoreError(
                f"HSK store {self.directory}: writing chunk {index} failed ({error})",
                hint="free disk space or fix permissions, then resume the build",
            ) from error
        self.committed += count
        self._buffered = 0

    def _write_manifest(self) -> None:
        _write_json_atomic(self.directory / MANIFEST_NAME, _manifest_json(self._manifest))

    def _release(self) -> None:
        self._buffer = None
        self._buffered = 0
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None


def _check_range(array: np.ndarray, dtype: np.dtype, name: str, where: str) -> None:
    """Refuse values a narrowing cast would wrap around (integers) or turn into inf (floats)."""
    if array.size == 0 or dtype.kind == "b" or array.dtype.kind == "b":
        return
    if dtype.kind in "iu":
        if np.can_cast(array.dtype, dtype, "safe"):
            return
        info = np.iinfo(dtype)
        low, high = array.min(), array.max()
        if low < info.min or high > info.max:
            raise StoreError(
                f"{where}: field {name!r} has values in [{low}, {high}], outside the {dtype} range",
                hint=f"use a wider dtype than {dtype} for {name!r}",
            )
    elif not np.can_cast(array.dtype, dtype, "safe"):
        limit = float(np.finfo(dtype).max)
        # fmax/fmin skip NaNs, so only real overflow (or an inf already in the input) is reported.
        high, low = float(np.fmax.reduce(array, axis=None)), float(np.fmin.reduce(array, axis=None))
        if high > limit or low < -limit:
            raise StoreError(
                f"{where}: field {name!r} has values in [{low}, {high}], outside the {dtype} range",
                hint=f"use a wider dtype than {dtype} for {name!r}, or scale the values",
            )


def _lock(directory: Path) -> Any:
    handle = open(directory / LOCK_NAME, "a+b")  # held (and locked) for the writer's lifetime
    if fcntl is not None:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            handle.close()
            raise StoreError(
                f"HSK store {directory} is being written by another writer",
                hint="wait for that build to finish, or stop it first",
            ) from error
    return handle


def _remove_leftovers(directory: Path, *, num_chunks: int) -> None:
    """Delete ``*.tmp`` files and chunk files from chunks the manifest does not list (a build killed mid-chunk)."""
    for path in directory.iterdir():
        match = _CHUNK_FILE.match(path.name)
        if path.name.endswith(TMP_SUFFIX) or (match and int(match.group(1)) >= num_chunks):
            path.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------------------------
# Reading


class HskStore:
    """A finished store, memory-mapped for O(1) random reads with a bounded RSS.

    Open it with :meth:`open`, then read batches with :meth:`get`. Maps are opened lazily in the process that reads,
    so a store can be handed to DataLoader workers (pickled or forked) and opened by every DDP rank.

    Attributes:
        directory: The store directory.
    """

    def __init__(
        self, directory: Path, manifest: dict[str, Any], *, release_bytes: int | None, max_open_chunks: int
    ) -> None:
        """Use :meth:`open`."""
        self.directory = directory
        self._manifest = manifest
        self._fields: dict[str, Field] = manifest["fields"]
        self._chunk_size: int = manifest["chunk_size"]
        self._counts = [chunk["count"] for chunk in manifest["chunks"]]
        self._release_bytes = release_bytes
        self._max_open_chunks = max_open_chunks
        # What one gathered row can add to the RSS, all fields together (see the module docstring).
        self._row_charge = self.bytes_per_example + len(self._fields) * _fault_granule()
        self._chunk_bytes = [count * self.bytes_per_example for count in self._counts]
        self._reset_process_state()

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        expect_fingerprint: Mapping[str, str] | None = None,
        expect_dtype: str | None = None,
        verify: bool = True,
        release_bytes: int | None = DEFAULT_RELEASE_BYTES,
        max_open_chunks: int | None = None,
    ) -> HskStore:
        """Open a finished store after checking it is whole and built for this run.

        Args:
            directory: The store directory.
            expect_fingerprint: This run's fingerprint; every key must match the stored one.
            expect_dtype: The value precision the run asks for (``cache.dtype``: ``float16``/``float32``); a store
                of another precision is refused. A store without HSK values (logits only) passes.
            verify: Re-hash every chunk file (streamed, about 1 GB/s) to detect corruption; sizes are always
                checked.
            release_bytes: Drop mapped pages (``MADV_DONTNEED``) once this many bytes may have been faulted in,
                bounding the RSS growth from reads to about this much; ``0`` releases after every chunk read,
                ``None`` never (the RSS then grows to the whole store).
            max_open_chunks: Most chunks kept mapped at once (each holds one file descriptor per field); by
                default a quarter of the open-file limit allows.

        Raises:
            StoreError: A missing, damaged, foreign, interrupted or mismatched store.
        """
        directory = Path(directory)
        manifest = _read_manifest(directory)
        if expect_fingerprint is not None:
            differ = _fingerprint_diff(manifest["fingerprint"], _check_fingerprint(expect_fingerprint, "run"))
            if differ:
                raise StoreError(
                    f"HSK store {directory} does not match this run: {', '.join(differ)}",
                    hint="rebuild the store for this teacher, data and budget, or point to the store built for them",
                )
        stored_dtype = _value_dtype(manifest)
        if expect_dtype is not None and stored_dtype is not None and stored_dtype != expect_dtype:
            raise StoreError(
                f"HSK store {directory} holds {stored_dtype} values, but this run asks for {expect_dtype}",
                hint=f"pass --set cache.dtype={stored_dtype} to use it, or rebuild it with --dtype {expect_dtype}",
            )
        if not manifest["complete"]:
            raise StoreError(
                f"HSK store {directory} is incomplete ({manifest['committed']} of {manifest['num_examples']} "
                "examples): its build was interrupted",
                hint="resume the cache build to finish it",
            )
        _check_chunk_files(directory, manifest)
        if verify:
            _verify_checksums(directory, manifest)
        if max_open_chunks is None:
            max_open_chunks = max(8, _open_file_limit() // 4 // len(manifest["fields"]))
        if max_open_chunks < 1:
            raise StoreError(f"HSK store {directory}: max_open_chunks must be >= 1", hint="e.g. max_open_chunks=64")
        return cls(directory, manifest, release_bytes=release_bytes, max_open_chunks=max_open_chunks)

    # -- metadata ------------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self._manifest["num_examples"])

    @property
    def fields(self) -> dict[str, Field]:
        """Name to :class:`Field` (dtype and per-example shape)."""
        return dict(self._fields)

    @property
    def meta(self) -> Any:
        """The free JSON value given at creation (a copy)."""
        return copy.deepcopy(self._manifest["meta"])

    @property
    def fingerprint(self) -> dict[str, str]:
        """What the store was built from (a copy)."""
        return dict(self._manifest["fingerprint"])

    @property
    def value_dtype(self) -> str | None:
        """The precision of the stored HSK values (``float16``/``float32``), None for a logits-only store."""
        return _value_dtype(self._manifest)

    @property
    def chunk_size(self) -> int:
        """Examples per chunk file."""
        return self._chunk_size

    @property
    def bytes_per_example(self) -> int:
        """Stored bytes per example, all fields."""
        return sum(field.nbytes for field in self._fields.values())

    @property
    def nbytes(self) -> int:
        """Bytes of chunk data."""
        return self.bytes_per_example * len(self)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description: size, layout, fields, fingerprint and meta."""
        return {
            "directory": str(self.directory),
            "num_examples": len(self),
            "chunk_size": self._chunk_size,
            "num_chunks": len(self._counts),
            "fields": {name: field.to_json() for name, field in self._fields.items()},
            "bytes_per_example": self.bytes_per_example,
            "nbytes": self.nbytes,
            "fingerprint": self.fingerprint,
            "meta": self.meta,
        }

    # -- reading -------------------------------------------------------------------------------------------------

    def get(self, indices: Any) -> dict[str, np.ndarray]:
        """Copy the rows of arbitrary examples (any order, repeats allowed, negatives count from the end).

        Args:
            indices: Integer indices, shape ``[n]`` (a list, numpy array or CPU tensor).

        Returns:
            Field name to a fresh, writable array ``[n, *field.shape]``, rows in the order of ``indices``.

        Raises:
            IndexError: An index is out of range.
        """
        index = np.asarray(indices)
        if index.ndim != 1 or (index.size and index.dtype.kind not in "iu"):
            raise TypeError(f"indices must be a 1-D sequence of integers, got shape {index.shape} {index.dtype}")
        index = index.astype(np.int64, copy=False)
        total = len(self)
        if index.size and (index.min() < -total or index.max() >= total):
            bad = index[(index < -total) | (index >= total)][0]
            raise IndexError(f"index {bad} is out of range for a store of {total} examples")
        index = np.where(index < 0, index + total, index)
        outs = [np.empty((index.size, *field.shape), dtype=field.dtype) for field in self._fields.values()]
        if index.size:
            # Rows are copied through 2-D views [rows, elements]: same bytes, cheaper indexing.
            flat_outs = [out.reshape(index.size, -1) for out in outs]
            # Group by chunk so each chunk's maps are looked up once per call.
            chunk_of = index // self._chunk_size
            order = np.argsort(chunk_of, kind="stable")
            sorted_chunks = chunk_of[order].tolist()
            local = index - chunk_of * self._chunk_size
            sorted_local = local[order].tolist()
            order_list = order.tolist()
            bounds = np.flatnonzero(np.diff(chunk_of[order])) + 1
            starts, ends = np.concatenate(([0], bounds)).tolist(), np.concatenate((bounds, [index.size])).tolist()
            if os.getpid() != self._pid:
                self._reset_process_state()
            with self._lock:
                for start, end in zip(starts, ends, strict=True):
                    chunk = sorted_chunks[start]
                    views = self._views(chunk)
                    if end - start <= _SCALAR_GATHER_ROWS:
                        # Typical random batches hit most chunks once; a scalar copy beats fancy-index overhead.
                        for position, row in zip(order_list[start:end], sorted_local[start:end], strict=True):
                            for out, view in zip(flat_outs, views, strict=True):
                                out[position] = view[row]
                    else:
                        positions = order[start:end]
                        rows = local[positions]
                        for out, view in zip(flat_outs, views, strict=True):
                            out[positions] = view[rows]
                    self._touched.add(chunk)
                    self._pending += min(self._chunk_bytes[chunk], (end - start) * self._row_charge)
                    # Checked per chunk, not per call, so one large get cannot map much more than the budget.
                    if self._release_bytes is not None and self._pending >= self._release_bytes:
                        self.release_pages()
        return dict(zip(self._fields, outs, strict=True))

    def __getitem__(self, item: int | slice) -> dict[str, np.ndarray]:
        """One example (``store[i]``: arrays without the batch dimension) or a slice (batch-first arrays)."""
        if isinstance(item, slice):
            return self.get(np.arange(*item.indices(len(self))))
        if isinstance(item, bool) or not isinstance(item, int | np.integer):
            raise TypeError(f"store indices must be integers or slices, not {type(item).__name__}")
        return {name: array[0] for name, array in self.get([int(item)]).items()}

    def release_pages(self) -> None:
        """Drop the pages of the chunks read since the last release from this process's RSS.

        The data stays in the kernel page cache, so later reads of it fault it back in without disk I/O.
        """
        if hasattr(mmap, "MADV_DONTNEED"):
            for chunk in self._touched:
                if chunk in self._open:
                    for mapped in self._open[chunk][0]:
                        mapped.madvise(mmap.MADV_DONTNEED)
        self._touched.clear()
        self._pending = 0

    def close(self) -> None:
        """Unmap every chunk file; the store stays usable and re-maps lazily."""
        with self._lock:
            while self._open:
                self._unmap_oldest()
            self._touched.clear()
            self._pending = 0

    def __enter__(self) -> HskStore:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        # Maps, file descriptors and locks belong to one process; the receiving process re-maps lazily.
        state = self.__dict__.copy()
        for key in ("_open", "_touched", "_lock", "_pid", "_pending"):
            del state[key]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_process_state()

    def __repr__(self) -> str:
        return f"HskStore({str(self.directory)!r}, examples={len(self)}, bytes_per_example={self.bytes_per_example})"

    def _reset_process_state(self) -> None:
        # After a fork the parent's maps would be shared state; dropping them unmaps them in this process only.
        self._open: OrderedDict[int, tuple[list[mmap.mmap], list[np.ndarray]]] = OrderedDict()
        self._touched: set[int] = set()
        self._pending = 0
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _views(self, chunk: int) -> list[np.ndarray]:
        """The chunk's fields as read-only arrays ``[count, elements]`` over its maps, mapping it if needed."""
        entry = self._open.get(chunk)
        if entry is not None:
            self._open.move_to_end(chunk)
            return entry[1]
        count = self._counts[chunk]
        maps: list[mmap.mmap] = []
        views: list[np.ndarray] = []
        try:
            for name, field in self._fields.items():
                path = self.directory / _chunk_file_name(chunk, name)
                with open(path, "rb") as handle:
                    size = os.fstat(handle.fileno()).st_size
                    if size != count * field.nbytes:
                        # Mapping a shorter file would turn a read past its end into SIGBUS.
                        raise StoreError(
                            f"HSK store {self.directory}: chunk file {path.name} changed size since the store was "
                            f"opened ({size} bytes, expected {count * field.nbytes})",
                            hint=_REBUILD_HINT,
                        )
                    maps.append(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ))
                views.append(np.frombuffer(maps[-1], dtype=field.dtype).reshape(count, field.size))
        except FileNotFoundError as error:
            views.clear()
            for mapped in maps:
                mapped.close()
            raise StoreError(
                f"HSK store {self.directory}: chunk file {error.filename} is missing", hint=_REBUILD_HINT
            ) from error
        self._open[chunk] = (maps, views)
        while len(self._open) > self._max_open_chunks:
            self._unmap_oldest()
        return views

    def _unmap_oldest(self) -> None:
        chunk, (maps, views) = self._open.popitem(last=False)
        self._touched.discard(chunk)
        views.clear()  # the views export the maps' buffers; close() refuses while they live
        for mapped in maps:
            try:
                mapped.close()
            except BufferError:
                pass  # a caller's frame still holds a view; the map is unmapped when that view dies


def _open_file_limit() -> int:
    try:
        import resource

        return int(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    except (ImportError, OSError, ValueError):  # pragma: no cover - non-POSIX
        return 1024


@functools.cache
def _fault_granule() -> int:
    """The most RSS one read fault on a file map can add: the PMD huge-page size, at least 64 KiB."""
    try:
        huge = int(Path("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size").read_text())
    except (OSError, ValueError):
        huge = _DEFAULT_HUGE_PAGE_BYTES
    return max(huge, _FAULT_AROUND_BYTES)


def as_torch(arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Wrap the arrays returned by :meth:`HskStore.get` as torch tensors, sharing their memory."""
    import torch

    return {name: torch.from_numpy(array) for name, array in arrays.items()}
