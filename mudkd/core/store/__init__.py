"""The teacher-free knowledge store: a teacher's compressed HSK and logits for every training example (method §16).

A store is a directory of chunk files and one ``manifest.json``, written once by the teacher pass and read many
times by training. The package has one module per concern:

- :mod:`~mudkd.core.store.format`: the on-disk layout, its constants and the manifest (a pydantic model that
  refuses a damaged, foreign or self-contradicting manifest with one message naming the store).
- :mod:`~mudkd.core.store.writer`: :class:`StoreWriter`, which commits one chunk at a time so that a killed build
  resumes, and :func:`check_chunk_bytes`, the bound on its memory.
- :mod:`~mudkd.core.store.reader`: :class:`HskStore`, memory-mapped random reads with a bounded RSS.
- :mod:`~mudkd.core.store.fingerprint`: hashes of what a store was built from, and
  :func:`fingerprint_mismatches`, the one rule for whether a store was built for a run, and
  :func:`serving_mismatches`, that rule for training: a store serves any prefix of its examples.
"""

from mudkd.core.store.fingerprint import (
    fingerprint_files,
    fingerprint_mismatches,
    fingerprint_value,
    serving_mismatches,
)
from mudkd.core.store.format import (
    DEFAULT_CHUNK_SIZE,
    FORMAT,
    LOCK_NAME,
    MANIFEST_NAME,
    MAX_CHUNK_BYTES,
    TMP_SUFFIX,
    VERSION,
    Field,
    Manifest,
    read_manifest,
)
from mudkd.core.store.reader import DEFAULT_RELEASE_BYTES, PLAN_VERIFY_BYTES, HskStore, as_torch, store_nbytes
from mudkd.core.store.writer import StoreWriter, check_chunk_bytes

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_RELEASE_BYTES",
    "FORMAT",
    "LOCK_NAME",
    "MANIFEST_NAME",
    "MAX_CHUNK_BYTES",
    "PLAN_VERIFY_BYTES",
    "TMP_SUFFIX",
    "VERSION",
    "Field",
    "HskStore",
    "Manifest",
    "StoreWriter",
    "as_torch",
    "check_chunk_bytes",
    "fingerprint_files",
    "fingerprint_mismatches",
    "fingerprint_value",
    "read_manifest",
    "serving_mismatches",
    "store_nbytes",
]
