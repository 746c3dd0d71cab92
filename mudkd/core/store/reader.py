"""Reading a finished store: :class:`HskStore` (memory-mapped, bounded RSS) and :func:`store_nbytes`.

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
import mmap
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mudkd.core.store.fingerprint import fingerprint_mismatches
from mudkd.core.store.format import (
    REBUILD_HINT,
    Field,
    Manifest,
    check_chunk_files,
    check_fingerprint,
    chunk_file_name,
    read_manifest,
)
from mudkd.errors import StoreError

# torch is imported inside as_torch only: the store's checks in every --dry-run read numpy arrays and stay torch-free.

DEFAULT_RELEASE_BYTES = 64 << 20
# A read fault maps the already-cached neighbours too: fault_around_bytes (64 KiB) of small pages, or the whole
# large folio, which is at most the PMD huge-page size. The release accounting charges the larger per row.
_FAULT_AROUND_BYTES = 64 << 10
_DEFAULT_HUGE_PAGE_BYTES = 2 << 20
_SCALAR_GATHER_ROWS = 8


def store_nbytes(directory: str | os.PathLike[str]) -> int:
    """Bytes of committed chunk data in the store at ``directory`` (the manifest itself not counted).

    Raises:
        StoreError: The directory is not a readable store.
    """
    return read_manifest(Path(directory)).nbytes


class HskStore:
    """A finished store, memory-mapped for O(1) random reads with a bounded RSS.

    Open it with :meth:`open`, then read batches with :meth:`get`. Maps are opened lazily in the process that reads,
    so a store can be handed to DataLoader workers (pickled or forked) and opened by every DDP rank.

    Attributes:
        directory: The store directory.
    """

    def __init__(self, directory: Path, manifest: Manifest, *, release_bytes: int | None, max_open_chunks: int) -> None:
        """Use :meth:`open`."""
        self.directory = directory
        self._manifest = manifest
        self._fields: dict[str, Field] = manifest.fields
        self._chunk_size: int = manifest.chunk_size
        self._counts = [chunk.count for chunk in manifest.chunks]
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
            expect_fingerprint: This run's fingerprint; every key it names must hold the same value in the store
                (:func:`~mudkd.core.store.fingerprint.fingerprint_mismatches`: keys only the store has are not
                compared).
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
        manifest = read_manifest(directory)
        if expect_fingerprint is not None:
            differ = fingerprint_mismatches(manifest.fingerprint, check_fingerprint(expect_fingerprint, "run"))
            if differ:
                raise StoreError(
                    f"HSK store {directory} does not match this run: {', '.join(differ)}",
                    hint="rebuild it with 'mudkd distill cache' for this run, or pass the settings it was built with",
                )
        stored_dtype = manifest.value_dtype
        if expect_dtype is not None and stored_dtype is not None and stored_dtype != expect_dtype:
            raise StoreError(
                f"HSK store {directory} holds {stored_dtype} values, but this run asks for {expect_dtype}",
                hint=f"pass --set cache.dtype={stored_dtype} to use it, or rebuild it with --dtype {expect_dtype}",
            )
        if not manifest.complete:
            raise StoreError(
                f"HSK store {directory} is incomplete ({manifest.committed} of {manifest.num_examples} "
                "examples): its build was interrupted",
                hint="resume the cache build to finish it",
            )
        check_chunk_files(directory, manifest)
        if verify:
            _verify_checksums(directory, manifest)
        if max_open_chunks is None:
            max_open_chunks = max(8, _open_file_limit() // 4 // len(manifest.fields))
        if max_open_chunks < 1:
            raise StoreError(f"HSK store {directory}: max_open_chunks must be >= 1", hint="e.g. max_open_chunks=64")
        return cls(directory, manifest, release_bytes=release_bytes, max_open_chunks=max_open_chunks)

    def verify(self, max_bytes: int | None = None) -> tuple[int, int]:
        """Re-read the chunk files (all, or an even sample of about ``max_bytes``): checksums and finite values.

        A dry run calls it with :data:`PLAN_VERIFY_BYTES`, so a corrupted store fails the plan as it fails the run
        while a large store still plans in about a second (sizes, always checked, catch truncation everywhere).

        Returns:
            ``(chunks read, chunks in the store)``.

        Raises:
            StoreError: A chunk file whose checksum differs from the manifest's, or that holds nan or inf values.
        """
        return _verify_checksums(self.directory, self._manifest, max_bytes)

    # -- metadata ------------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._manifest.num_examples

    @property
    def fields(self) -> dict[str, Field]:
        """Name to :class:`Field` (dtype and per-example shape)."""
        return dict(self._fields)

    @property
    def meta(self) -> Any:
        """The free JSON value given at creation (a copy)."""
        return copy.deepcopy(self._manifest.meta)

    @property
    def fingerprint(self) -> dict[str, str]:
        """What the store was built from (a copy)."""
        return dict(self._manifest.fingerprint)

    @property
    def value_dtype(self) -> str | None:
        """The precision of the stored HSK values (``float16``/``float32``), None for a logits-only store."""
        return self._manifest.value_dtype

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
                path = self.directory / chunk_file_name(chunk, name)
                with open(path, "rb") as handle:
                    size = os.fstat(handle.fileno()).st_size
                    if size != count * field.nbytes:
                        # Mapping a shorter file would turn a read past its end into SIGBUS.
                        raise StoreError(
                            f"HSK store {self.directory}: chunk file {path.name} changed size since the store was "
                            f"opened ({size} bytes, expected {count * field.nbytes})",
                            hint=REBUILD_HINT,
                        )
                    maps.append(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ))
                views.append(np.frombuffer(maps[-1], dtype=field.dtype).reshape(count, field.size))
        except FileNotFoundError as error:
            views.clear()
            for mapped in maps:
                mapped.close()
            raise StoreError(
                f"HSK store {self.directory}: chunk file {error.filename} is missing", hint=REBUILD_HINT
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


#: A dry run re-reads at most this many bytes of a store's chunk files (about half a second at 1 GB/s): all of a
#: store up to that size, else an even sample of its chunks (first and last included). The run re-reads them all.
PLAN_VERIFY_BYTES = 512 << 20
_VERIFY_BLOCK = 1 << 20  # a multiple of every itemsize, so each block holds whole values
_EXPONENT_BITS = {2: 0x7C00, 4: 0x7F800000, 8: 0x7FF0000000000000}  # IEEE float16/32/64, by itemsize


def _verify_checksums(directory: Path, manifest: Manifest, max_bytes: int | None = None) -> tuple[int, int]:
    """Re-read chunk files with buffered reads (memory maps would leave the whole store in the RSS): each must have
    its manifest checksum and, for a float field, only finite values (a store is built only from finite teacher
    outputs, so a nan there means damage the checksum was rewritten over).

    Args:
        max_bytes: Read an even sample of chunks (first and last included) of about this many bytes; None: all.

    Returns:
        ``(chunks read, chunks in the store)``.
    """
    chunks = manifest.chunks
    if max_bytes is not None and chunks:
        per_chunk = max(1, manifest.nbytes // len(chunks))
        wanted = min(len(chunks), max(2, max_bytes // per_chunk))
        picked = sorted({round(i * (len(chunks) - 1) / max(1, wanted - 1)) for i in range(wanted)})
        chunks = [chunks[index] for index in picked]
    for chunk in chunks:
        for name, entry in chunk.files.items():
            file_name = chunk_file_name(chunk.index, name)
            problem = _chunk_file_problem(directory / file_name, entry.sha256, manifest.fields[name].dtype)
            if problem:
                raise StoreError(f"HSK store {directory}: chunk file {file_name} {problem}", hint=REBUILD_HINT)
    return len(chunks), len(manifest.chunks)


def _chunk_file_problem(path: Path, sha256: str, dtype: np.dtype) -> str | None:
    """What is wrong with one chunk file (checksum first, then non-finite values), or None."""
    digest, finite = hashlib.sha256(), True
    # nan and inf are the values whose exponent bits are all ones: one AND and a max over the raw integers is ~10x
    # faster than np.isfinite on float16 (slower than the hash itself), so checking them costs little more
    exponent = _EXPONENT_BITS.get(dtype.itemsize) if dtype.kind == "f" else None
    with path.open("rb") as handle:  # buffered: every read but the last returns a whole block
        while block := handle.read(_VERIFY_BLOCK):
            digest.update(block)
            if exponent is not None and finite:
                bits = np.frombuffer(block, dtype=f"<u{dtype.itemsize}", count=len(block) // dtype.itemsize)
                finite = int((bits & exponent).max(initial=0)) != exponent
    if digest.hexdigest() != sha256:
        return "is corrupted (checksum mismatch)"
    return None if finite else "holds nan or inf values"


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
