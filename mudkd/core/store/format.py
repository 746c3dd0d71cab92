"""The store's on-disk format: a directory of chunk files described by one ``manifest.json``.

::

    manifest.json                 what is stored, how far the build got, checksums, the run fingerprint
    chunk-00000.<field>.bin       raw C-order little-endian rows of one field for examples [0, chunk_size)
    chunk-00001.<field>.bin       ... the last chunk may be shorter
    .writer.lock                  held (flock) by the one process building the store

What is stored per example is decided by the caller: a dict of named fixed-shape arrays (``fields``), e.g.
``{"logits": float32[2], "token_index": int16[1, 10], "values": float16[1, 768], "positions": int16[1, 768]}``.

The manifest is the pydantic model :class:`Manifest`; :func:`read_manifest` turns any way a manifest can be
damaged, foreign or self-contradictory into one :class:`~mudkd.errors.StoreError` that names the store.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic import Field as ModelField
from pydantic_core import ErrorDetails

from mudkd.core.store.fingerprint import fingerprint_value
from mudkd.errors import StoreError

FORMAT = "mudkd-hsk-store"
VERSION = 1
MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".writer.lock"
TMP_SUFFIX = ".tmp"
DEFAULT_CHUNK_SIZE = 4096
# A writer buffers one whole chunk in memory: more than this per chunk is refused before anything is written.
MAX_CHUNK_BYTES = 1 << 30
REBUILD_HINT = "delete the store directory and build it again"
CHUNK_FILE = re.compile(r"^chunk-(\d+)\.([A-Za-z0-9_-]+)\.bin$")

_FIELD_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_ALLOWED_KINDS = "biuf"  # bool, signed and unsigned integers, floats: raw bytes with a fixed little-endian layout


def chunk_file_name(index: int, field: str) -> str:
    """The file holding one field of chunk ``index``: ``chunk-00003.values.bin``."""
    return f"chunk-{index:05d}.{field}.bin"


def storable_dtype(dtype: np.dtype) -> bool:
    """Whether arrays of ``dtype`` can be stored: bool, integer or float (raw bytes, fixed layout)."""
    return dtype.kind in _ALLOWED_KINDS and dtype.fields is None and dtype.subdtype is None


class SpecError(ValueError):
    """A field spec, fingerprint or manifest that is not valid: the message (without the store's name), a hint."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


# --------------------------------------------------------------------------------------------------------------------
# Fields


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


def parse_fields(fields: Any, where: str) -> dict[str, Field]:
    """Name to :class:`Field` from ``Field``, ``(dtype, shape)`` or ``{"dtype": ..., "shape": [...]}`` specs.

    Raises:
        StoreError: A bad name, spec, dtype or shape, prefixed with ``where``.
    """
    try:
        return _fields(fields)
    except SpecError as error:
        raise StoreError(f"{where}: {error.message}", hint=error.hint) from error


def check_fingerprint(fingerprint: Any, where: str) -> dict[str, str]:
    """A copy of ``fingerprint`` after checking it is a dict of str to str.

    Raises:
        StoreError: It is not, prefixed with ``where``.
    """
    try:
        return _fingerprint(fingerprint)
    except SpecError as error:
        raise StoreError(f"{where}: {error.message}", hint=error.hint) from error


def _fields(fields: Any) -> dict[str, Field]:
    if not isinstance(fields, Mapping) or not fields:
        raise SpecError(
            "fields must be a non-empty mapping of name to (dtype, shape)",
            hint="e.g. fields={'values': ('float16', (1, 768))}",
        )
    return {name: _field(name, spec) for name, spec in fields.items()}


def _field(name: Any, spec: Any) -> Field:
    if not isinstance(name, str) or not _FIELD_NAME.match(name):
        raise SpecError(f"field name {name!r} is invalid", hint="use letters, digits, '_' and '-' only")
    if isinstance(spec, Field):
        dtype, shape = spec.dtype, spec.shape
    elif isinstance(spec, Mapping) and set(spec) == {"dtype", "shape"}:
        dtype, shape = spec["dtype"], spec["shape"]
    elif isinstance(spec, tuple | list) and len(spec) == 2:
        dtype, shape = spec
    else:
        raise SpecError(
            f"field {name!r} must be (dtype, shape) or {{'dtype', 'shape'}}, got {spec!r}",
            hint="e.g. fields={'values': ('float16', (1, 768))}",
        )
    try:
        parsed = np.dtype(dtype)
    except TypeError as error:
        raise SpecError(f"field {name!r} has an unknown dtype {dtype!r}", hint="use e.g. 'float16'") from error
    if not storable_dtype(parsed):
        raise SpecError(
            f"field {name!r} has dtype {parsed} which cannot be stored", hint="use a bool, integer or float dtype"
        )
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, tuple | list) or not all(type(d) is int and d > 0 for d in shape):
        raise SpecError(
            f"field {name!r} has shape {shape!r}; expected a list of positive integers",
            hint="give the per-example shape without the batch dimension, e.g. (1, 768)",
        )
    return Field(parsed.newbyteorder("<"), tuple(shape))


def _fingerprint(fingerprint: Any) -> dict[str, str]:
    if not isinstance(fingerprint, Mapping):
        raise SpecError("fingerprint must be a dict of str to str", hint="e.g. {'task': 'sst-2'}")
    for key, value in fingerprint.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise SpecError(
                f"fingerprint entry {key!r} must map a str to a str, got {type(value).__name__}",
                hint="convert values with str() or fingerprint_value()",
            )
    return dict(fingerprint)


# --------------------------------------------------------------------------------------------------------------------
# The manifest


def _malformed(what: str) -> SpecError:
    return SpecError(f"{MANIFEST_NAME} is malformed: {what}", hint=REBUILD_HINT)


def _manifest_fields(value: Any) -> dict[str, Field]:
    try:
        return _fields(value)
    except SpecError as error:
        raise _malformed(error.message) from error


def _manifest_fingerprint(value: Any) -> dict[str, str]:
    try:
        return _fingerprint(value)
    except SpecError as error:
        raise _malformed(error.message) from error


StoredFields = Annotated[
    dict[str, Field],
    PlainValidator(_manifest_fields),
    PlainSerializer(lambda fields: {name: field.to_json() for name, field in fields.items()}),
]
StoredFingerprint = Annotated[dict[str, str], PlainValidator(_manifest_fingerprint)]
Sha256 = Annotated[str, StringConstraints(strict=True, pattern=r"^[0-9a-f]{64}$")]


class ChunkFile(BaseModel):
    """One field's file of one chunk: its size and checksum."""

    model_config = ConfigDict(extra="allow")

    bytes: StrictInt
    sha256: Sha256


class Chunk(BaseModel):
    """One committed chunk: examples ``[start, start + count)``, one file per field."""

    model_config = ConfigDict(extra="allow")

    index: StrictInt
    start: StrictInt
    count: StrictInt
    files: dict[str, ChunkFile]


class Manifest(BaseModel):
    """``manifest.json``: the store's fields, size, build progress, checksums and what it was built from.

    The JSON keys are the attributes in this order (``json.dumps(indent=1)``, as every mudkd version wrote them);
    keys this version does not know are kept. Types are strict (``1.0`` is not an integer, ``1`` not a bool).
    Beyond the types, a manifest must agree with itself: ``committed`` in ``[0, num_examples]`` and equal to
    the examples of the listed chunks, all of them when ``complete``; chunk ``i`` starts at ``i * chunk_size``
    and holds ``min(chunk_size, num_examples - start)`` (> 0) examples in one file per field of
    ``count * field.nbytes`` bytes; ``bytes_per_example`` (filled in when absent) is what the fields take; and
    ``meta`` says what ``fingerprint`` hashes (see :meth:`meta_disagreement`).
    """

    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True)

    # format, fields and fingerprint are checked even when absent, so a missing one gets its own message.
    format: Any = ModelField(default=None, validate_default=True)
    version: StrictInt
    fields: StoredFields = ModelField(default=None, validate_default=True)
    bytes_per_example: StrictInt | None = None
    num_examples: Annotated[StrictInt, ModelField(ge=0)]
    chunk_size: Annotated[StrictInt, ModelField(gt=0)]
    committed: Annotated[StrictInt, ModelField(ge=0)]
    chunks: list[Chunk]
    fingerprint: StoredFingerprint = ModelField(default=None, validate_default=True)
    meta: Any = None
    complete: StrictBool

    @field_validator("format")
    @classmethod
    def check_format(cls, value: Any) -> str:
        """A foreign JSON file is not "malformed": it is no store at all."""
        if value != FORMAT:
            raise SpecError(
                f"{MANIFEST_NAME} has format {value!r}, not {FORMAT!r}",
                hint="point to a directory built as an HSK store",
            )
        return value

    @field_validator("version")
    @classmethod
    def check_version(cls, version: int) -> int:
        """Another version's layout may differ anywhere, so it is refused before anything else is read."""
        if version != VERSION:
            raise SpecError(
                f"store format version {version} is not supported (expected {VERSION})",
                hint="upgrade mudkd" if version > VERSION else REBUILD_HINT,
            )
        return version

    @model_validator(mode="after")
    def check_consistency(self) -> Manifest:
        """The cross-field rules of the class docstring, in the order a reader would check them."""
        if self.committed > self.num_examples:
            raise _malformed("committed is not an integer in [0, num_examples]")
        if self.complete and self.committed != self.num_examples:
            raise _malformed("marked complete but committed < num_examples")
        for index, chunk in enumerate(self.chunks):
            start = index * self.chunk_size
            if chunk.index != index or chunk.start != start:
                raise _malformed(f"chunk {index} has a wrong index or start")
            if chunk.count != min(self.chunk_size, self.num_examples - start) or chunk.count <= 0:
                raise _malformed(f"chunk {index} has a wrong count")
            if set(chunk.files) != set(self.fields):
                raise _malformed(f"chunk {index} does not list one file per field")
            for name, entry in chunk.files.items():
                if entry.bytes != chunk.count * self.fields[name].nbytes:
                    raise _malformed(f"chunk {index} field {name!r} has a wrong size or checksum entry")
        if sum(chunk.count for chunk in self.chunks) != self.committed:
            raise _malformed("committed does not equal the examples in the listed chunks")
        per_example = sum(field.nbytes for field in self.fields.values())
        if self.bytes_per_example is None:
            self.bytes_per_example = per_example
        elif self.bytes_per_example != per_example:
            raise _malformed(f"bytes_per_example is {self.bytes_per_example}, the fields take {per_example}")
        disagreement = self.meta_disagreement()
        if disagreement:
            raise SpecError(
                f"{MANIFEST_NAME} contradicts itself: {disagreement}",
                hint="the manifest was edited or damaged: " + REBUILD_HINT,
            )
        return self

    def meta_disagreement(self) -> str | None:
        """How ``meta`` (or the fields) contradicts ``fingerprint``, or None.

        ``mudkd distill cache`` writes both from one budget: ``fingerprint.budget`` is :func:`fingerprint_value`
        of ``meta.budget``, ``meta.task`` equals ``fingerprint.task``, and the ``values`` field has
        ``fingerprint.dtype``. Training reads the budget from ``meta`` but matches runs on the fingerprint, so the
        two must agree. Keys only one side has are not compared (a generic store need not have them).
        """
        meta, fingerprint = self.meta, self.fingerprint
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
        values = self.fields.get("values")
        if "dtype" in fingerprint and values is not None and values.dtype.name != fingerprint["dtype"]:
            return f"the values field is {values.dtype.name} but fingerprint.dtype is {fingerprint['dtype']!r}"
        return None

    @property
    def value_dtype(self) -> str | None:
        """The precision of the stored HSK values (``float16``/``float32``), or None for a store without values."""
        values = self.fields.get("values")
        return self.fingerprint.get("dtype") or (values.dtype.name if values is not None else None)

    @property
    def nbytes(self) -> int:
        """Bytes of committed chunk data."""
        return sum(entry.bytes for chunk in self.chunks for entry in chunk.files.values())

    def to_json_text(self) -> str:
        """The file's text: the keys in attribute order, one-space indents, a final newline."""
        return json.dumps(self.model_dump(), indent=1) + "\n"

    @classmethod
    def from_document(cls, document: Any, where: str) -> Manifest:
        """Validate a parsed ``manifest.json``.

        Raises:
            StoreError: The first problem found, prefixed with ``where`` (e.g. ``HSK store outputs/store``).
        """
        try:
            return cls.model_validate(document)
        except ValidationError as error:
            problem = _problem(error.errors()[0])
            raise StoreError(f"{where}: {problem.message}", hint=problem.hint) from None


# What a type or range error at a location means, in the words of the rules above.
_TYPE_PROBLEMS = {
    "version": "version is not an integer",
    "bytes_per_example": "bytes_per_example is not an integer",
    "num_examples": "num_examples is not a non-negative integer",
    "chunk_size": "chunk_size is not a positive integer",
    "committed": "committed is not an integer in [0, num_examples]",
    "chunks": "chunks is not a list",
    "complete": "complete is not true/false",
}


def _problem(error: ErrorDetails) -> SpecError:
    """The :class:`SpecError` one pydantic error stands for: a validator's own, or one by its location."""
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, SpecError):
        return cause
    location = error["loc"]
    if not location:
        return _malformed("not a JSON object")
    if location[0] != "chunks" or len(location) < 2:
        return _malformed(_TYPE_PROBLEMS.get(str(location[0]), f"{location[0]} is invalid"))
    index, part = location[1], location[2] if len(location) > 2 else None
    if part == "count":
        return _malformed(f"chunk {index} has a wrong count")
    if part == "files" and len(location) == 3:
        return _malformed(f"chunk {index} does not list one file per field")
    if part == "files":
        return _malformed(f"chunk {index} field {location[3]!r} has a wrong size or checksum entry")
    return _malformed(f"chunk {index} has a wrong index or start")


def read_manifest(directory: Path) -> Manifest:
    """Read and fully validate ``directory/manifest.json``.

    Raises:
        StoreError: No such directory or manifest, invalid JSON, or a damaged, foreign or self-contradicting
            manifest; the message names the store.
    """
    where = f"HSK store {directory}"
    if not directory.is_dir():
        hint = "build the store first, or fix the path"
        if directory.exists():
            raise StoreError(f"{where} is not a directory", hint=hint)
        raise StoreError(f"{where} not found", hint=hint)
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise StoreError(f"{where}: no {MANIFEST_NAME} (not a store, or its build never started)", hint=REBUILD_HINT)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StoreError(f"{where}: {MANIFEST_NAME} is not valid JSON ({error})", hint=REBUILD_HINT) from error
    return Manifest.from_document(document, where)


def check_chunk_files(directory: Path, manifest: Manifest) -> None:
    """Every listed chunk file exists with its listed size (a cheap ``stat``, no reads).

    Raises:
        StoreError: A chunk file is missing, truncated or too large.
    """
    for chunk in manifest.chunks:
        for name, entry in chunk.files.items():
            file_name = chunk_file_name(chunk.index, name)
            try:
                size = (directory / file_name).stat().st_size
            except FileNotFoundError as error:
                message = f"HSK store {directory}: chunk file {file_name} is missing"
                raise StoreError(message, hint=REBUILD_HINT) from error
            if size != entry.bytes:
                state = "truncated" if size < entry.bytes else "too large"
                raise StoreError(
                    f"HSK store {directory}: chunk file {file_name} is {state} ({size} bytes, expected {entry.bytes})",
                    hint=REBUILD_HINT,
                )
