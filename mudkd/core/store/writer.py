"""Building a store: :class:`StoreWriter` and the chunk-memory guard :func:`check_chunk_bytes`.

Crash safety. :class:`StoreWriter` buffers at most one chunk. A full chunk is written to ``*.tmp`` files, fsynced,
renamed into place, and only then is the manifest rewritten atomically (tmp file, fsync, ``os.replace``) with the
new ``committed`` count. A kill at any moment therefore leaves a manifest that lists only complete, checksummed
chunks; stray ``*.tmp`` files and chunk files the manifest does not list are removed by :meth:`StoreWriter.resume`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mudkd.core.outputs import MARKER as OUTPUT_MARKER
from mudkd.core.outputs import write_text_atomic
from mudkd.core.store.fingerprint import fingerprint_mismatches
from mudkd.core.store.format import (
    CHUNK_FILE,
    DEFAULT_CHUNK_SIZE,
    FORMAT,
    LOCK_NAME,
    MANIFEST_NAME,
    MAX_CHUNK_BYTES,
    TMP_SUFFIX,
    VERSION,
    Chunk,
    ChunkFile,
    Field,
    Manifest,
    check_chunk_files,
    check_fingerprint,
    chunk_file_name,
    parse_fields,
    read_manifest,
    storable_dtype,
)
from mudkd.errors import StoreError
from mudkd.knowledge.summary import format_bytes

try:  # POSIX only; without it concurrent writers are not detected.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


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
    _check_chunk_size(chunk_size, where)
    per_example = sum(field.nbytes for field in parse_fields(fields, where).values())
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

    def __init__(self, directory: Path, manifest: Manifest, lock_handle: Any) -> None:
        """Use :meth:`create` or :meth:`resume`."""
        self.directory = directory
        self._manifest = manifest
        self.fields: dict[str, Field] = manifest.fields
        self.num_examples: int = manifest.num_examples
        self.chunk_size: int = manifest.chunk_size
        self.committed: int = manifest.committed
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
        parsed_fields = parse_fields(fields, where)
        fingerprint = check_fingerprint(fingerprint, where)
        if type(num_examples) is not int or num_examples < 0:
            raise StoreError(
                f"{where}: num_examples must be a non-negative integer, got {num_examples!r}",
                hint="pass the number of training examples",
            )
        _check_chunk_size(chunk_size, where)
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
            # Every argument was checked above, one message each; the model is built as given.
            manifest = Manifest.model_construct(
                format=FORMAT,
                version=VERSION,
                fields=parsed_fields,
                bytes_per_example=sum(field.nbytes for field in parsed_fields.values()),
                num_examples=num_examples,
                chunk_size=chunk_size,
                committed=0,
                chunks=[],
                fingerprint=fingerprint,
                meta=meta,
                complete=False,
            )
            _write_manifest(directory, manifest)
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
            fingerprint: This run's fingerprint; must equal the stored one, key for key.
            fields: If given, must equal the stored fields.

        Raises:
            StoreError: No store there, a different fingerprint or fields, a damaged chunk, or another writer.
        """
        directory = Path(directory)
        where = f"HSK store {directory}"
        fingerprint = check_fingerprint(fingerprint, where)
        manifest = read_manifest(directory)
        differ = fingerprint_mismatches(manifest.fingerprint, fingerprint, exact=True)
        if differ:
            raise StoreError(
                f"{where} was built for a different run, cannot resume: {', '.join(differ)}",
                hint="delete the store to rebuild it for this run, or choose another directory",
            )
        if fields is not None and parse_fields(fields, where) != manifest.fields:
            stored = {name: field.to_json() for name, field in manifest.fields.items()}
            raise StoreError(
                f"{where} stores different fields, cannot resume: {json.dumps(stored)}",
                hint="delete the store to rebuild it with the new fields, or choose another directory",
            )
        lock_handle = _lock(directory)
        try:
            manifest = read_manifest(directory)  # again: a writer that held the lock until now may have moved on
            _remove_leftovers(directory, num_chunks=len(manifest.chunks))
            check_chunk_files(directory, manifest)
        except BaseException:
            lock_handle.close()
            raise
        writer = cls(directory, manifest, lock_handle)
        if manifest.complete:
            writer._release()
            writer._closed = True
        return writer

    @property
    def complete(self) -> bool:
        """Whether the store is finished (closed with every example written)."""
        return bool(self._manifest.complete)

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
            if not storable_dtype(array.dtype) or not np.can_cast(array.dtype, field.dtype, "same_kind"):
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
        self._manifest.complete = True
        try:
            _write_manifest(self.directory, self._manifest)
        except OSError as error:
            self._manifest.complete = False
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
        chunks = self._manifest.chunks
        index, count = len(chunks), self._buffered
        files: dict[str, ChunkFile] = {}
        renames = []
        try:
            for name in self.fields:
                data = self._buffer[name][:count]  # a leading-axis slice of a C-order array: contiguous
                final = self.directory / chunk_file_name(index, name)
                tmp = final.with_name(final.name + TMP_SUFFIX)
                with open(tmp, "wb") as handle:
                    handle.write(memoryview(data).cast("B"))
                    handle.flush()
                    os.fsync(handle.fileno())
                files[name] = ChunkFile(bytes=data.nbytes, sha256=hashlib.sha256(data).hexdigest())
                renames.append((tmp, final))
            for tmp, final in renames:
                os.replace(tmp, final)
            _fsync_directory(self.directory)
            chunks.append(Chunk(index=index, start=self.committed, count=count, files=files))
            self._manifest.committed = self.committed + count
            _write_manifest(self.directory, self._manifest)
        except OSError as error:
            # The manifest still describes the chunks before this one; the orphans are cleaned on resume.
            if len(chunks) > index:
                chunks.pop()
            self._manifest.committed = self.committed
            # Part of the caller's batch may sit in the lost buffer, so this writer cannot continue safely.
            self._closed = True
            self._release()
            raise StoreError(
                f"HSK store {self.directory}: writing chunk {index} failed ({error})",
                hint="free disk space or fix permissions, then resume the build",
            ) from error
        self.committed += count
        self._buffered = 0

    def _release(self) -> None:
        self._buffer = None
        self._buffered = 0
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None


def _check_chunk_size(chunk_size: Any, where: str) -> None:
    if type(chunk_size) is not int or chunk_size <= 0:
        raise StoreError(
            f"{where}: chunk_size must be a positive integer, got {chunk_size!r}", hint="e.g. chunk_size=4096"
        )


def _write_manifest(directory: Path, manifest: Manifest) -> None:
    write_text_atomic(directory / MANIFEST_NAME, manifest.to_json_text())
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    # Makes the renames themselves durable; without it a power cut can lose a rename the manifest relies on.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
        match = CHUNK_FILE.match(path.name)
        if path.name.endswith(TMP_SUFFIX) or (match and int(match.group(1)) >= num_chunks):
            path.unlink(missing_ok=True)
