"""The store's on-disk format: the manifest model, compatibility with stores already written, one fingerprint rule.

Every rule of the manifest validator is pinned by a corrupted manifest it must refuse (with the message it gave
before the manifest became a pydantic model), and a manifest written by the writer before that change is kept
here verbatim: it must still load, and today's writer must write the very same bytes for the same data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mudkd.core.store import (
    MANIFEST_NAME,
    HskStore,
    Manifest,
    StoreWriter,
    fingerprint_mismatches,
    fingerprint_value,
    store_nbytes,
)
from mudkd.errors import StoreError

BUDGET = {"layers": [{"student": 1, "teacher": 2}], "keep_tokens": 2, "keep_hidden": 0.5}
FIELDS = {"values": ("float16", (1, 2, 3)), "token_index": ("int16", (1, 2)), "logits": ("float32", (2,))}
FINGERPRINT = {"task": "sst-2", "max_seq_length": "16", "budget": fingerprint_value(BUDGET), "dtype": "float16"}
META = {"budget": BUDGET, "teacher": None, "task": "sst-2"}
NUM_EXAMPLES = 5

# Written by StoreWriter at commit 63ded16 (before the store became a package) for build_store() below.
OLD_MANIFEST = """\
{
 "format": "mudkd-hsk-store",
 "version": 1,
 "fields": {
  "values": {
   "dtype": "float16",
   "shape": [
    1,
    2,
    3
   ]
  },
  "token_index": {
   "dtype": "int16",
   "shape": [
    1,
    2
   ]
  },
  "logits": {
   "dtype": "float32",
   "shape": [
    2
   ]
  }
 },
 "bytes_per_example": 24,
 "num_examples": 5,
 "chunk_size": 2,
 "committed": 5,
 "chunks": [
  {
   "index": 0,
   "start": 0,
   "count": 2,
   "files": {
    "values": {
     "bytes": 24,
     "sha256": "fa4b1402c9de320595a811d4bdf665f9e2f2e09bdd4673fffa4f565fa438e898"
    },
    "token_index": {
     "bytes": 8,
     "sha256": "245bbd9d484dcf27c714e2690cd6544973de5d54aa9cd82eab23d6046a65faa8"
    },
    "logits": {
     "bytes": 16,
     "sha256": "8ce0c1cedf19cf010159e50cfdedc5027f52a78d45d570a488277a35132ff683"
    }
   }
  },
  {
   "index": 1,
   "start": 2,
   "count": 2,
   "files": {
    "values": {
     "bytes": 24,
     "sha256": "2aebe5e7e385e5e45506dc432d74910af7ff397596706fed0be8f80ea601c59b"
    },
    "token_index": {
     "bytes": 8,
     "sha256": "cdb9cfec745b2f8c9ba01af5365ef7269e9ac2f529d331f208b239b429412f82"
    },
    "logits": {
     "bytes": 16,
     "sha256": "1ff5402496aa55156db71a6510433f7ac108498ef4e73ca8caf277dd0b32049c"
    }
   }
  },
  {
   "index": 2,
   "start": 4,
   "count": 1,
   "files": {
    "values": {
     "bytes": 12,
     "sha256": "c3d06dec8e7d930ea76d21efb9b957d95cb9e55bbc2763264dcefd036b680bef"
    },
    "token_index": {
     "bytes": 4,
     "sha256": "41e2b69c47ddd4983742fa7eea3bd772581c87c636ee371a01d10ab5cc63de16"
    },
    "logits": {
     "bytes": 8,
     "sha256": "f8f234b82d077efcc8efb13c429753c59deb01bd711ae35b5a95c05a2251b621"
    }
   }
  }
 ],
 "fingerprint": {
  "task": "sst-2",
  "max_seq_length": "16",
  "budget": "832e61c6e970f4f7cbb3f636aecc05f889081f97e11878b599658a6cdf9e1c77",
  "dtype": "float16"
 },
 "meta": {
  "budget": {
   "layers": [
    {
     "student": 1,
     "teacher": 2
    }
   ],
   "keep_tokens": 2,
   "keep_hidden": 0.5
  },
  "teacher": null,
  "task": "sst-2"
 },
 "complete": true
}
"""


def example_data() -> dict[str, np.ndarray]:
    n = NUM_EXAMPLES
    return {
        "values": (np.arange(n * 6).reshape(n, 1, 2, 3) / 8).astype(np.float16),
        "token_index": np.arange(n * 2).reshape(n, 1, 2).astype(np.int16),
        "logits": (np.arange(n * 2).reshape(n, 2) / 4 - 1).astype(np.float32),
    }


def build_store(directory: Path, *, stop: int = NUM_EXAMPLES) -> Path:
    """Five examples in chunks of two; ``stop`` < 5 leaves a build interrupted after ``stop`` appended examples."""
    data = example_data()
    writer = StoreWriter.create(
        directory, fields=FIELDS, num_examples=NUM_EXAMPLES, fingerprint=FINGERPRINT, meta=META, chunk_size=2
    )
    writer.append({name: array[:3] for name, array in data.items()})
    if stop == NUM_EXAMPLES:
        writer.append({name: array[3:] for name, array in data.items()})
        writer.close()
    else:
        writer.__exit__(RuntimeError, None, None)  # as if the build was killed: the buffered example is lost
    return directory


def test_the_writer_writes_the_manifest_of_older_versions_byte_for_byte(tmp_path):
    store = build_store(tmp_path / "store")
    assert (store / MANIFEST_NAME).read_text() == OLD_MANIFEST


def test_a_manifest_written_by_an_older_version_still_loads(tmp_path):
    store = build_store(tmp_path / "store")
    (store / MANIFEST_NAME).write_text(OLD_MANIFEST)
    opened = HskStore.open(store, expect_fingerprint=FINGERPRINT, expect_dtype="float16")
    assert len(opened) == NUM_EXAMPLES and opened.meta == META and opened.fingerprint == FINGERPRINT
    assert opened.value_dtype == "float16" and opened.bytes_per_example == 24
    for name, array in example_data().items():
        np.testing.assert_array_equal(opened.get(range(NUM_EXAMPLES))[name], array)
    assert store_nbytes(store) == 120


def test_an_interrupted_build_of_an_older_version_resumes(tmp_path):
    store = build_store(tmp_path / "store", stop=3)
    old = json.loads(OLD_MANIFEST)
    old.update(committed=2, complete=False, chunks=old["chunks"][:1])
    (store / MANIFEST_NAME).write_text(json.dumps(old, indent=1) + "\n")  # what the old writer left
    writer = StoreWriter.resume(store, fingerprint=FINGERPRINT, fields=FIELDS)
    assert writer.committed == 2 and not writer.complete
    writer.append({name: array[2:] for name, array in example_data().items()})
    writer.close()
    assert (store / MANIFEST_NAME).read_text() == OLD_MANIFEST


def test_unknown_manifest_keys_are_kept_on_resume(tmp_path):
    store = build_store(tmp_path / "store", stop=3)
    manifest = json.loads((store / MANIFEST_NAME).read_text())
    manifest["note"] = {"written by": "a later version"}
    (store / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1) + "\n")
    writer = StoreWriter.resume(store, fingerprint=FINGERPRINT)
    writer.append({name: array[2:] for name, array in example_data().items()})
    writer.close()
    assert json.loads((store / MANIFEST_NAME).read_text())["note"] == {"written by": "a later version"}


# --------------------------------------------------------------------------------------------------------------------
# Every rule of the manifest refuses what it refused before


def chunk(index: int):
    return lambda manifest: manifest["chunks"][index]


class Replace:
    """An edit's result that replaces the whole manifest document."""

    def __init__(self, document):
        self.document = document


CORRUPTIONS = {
    # case: (edit of the manifest dict, or a replacement document; fragments of the message)
    "not-an-object": (lambda m: Replace([m]), ["malformed: not a JSON object"]),
    "foreign-format": (lambda m: m.update(format="other"), ["has format 'other', not 'mudkd-hsk-store'"]),
    "no-format": (lambda m: m.pop("format"), ["has format None, not 'mudkd-hsk-store'"]),
    "version-string": (lambda m: m.update(version="1"), ["malformed: version is not an integer"]),
    "version-bool": (lambda m: m.update(version=True), ["malformed: version is not an integer"]),
    "version-newer": (lambda m: m.update(version=2), ["store format version 2 is not supported (expected 1)"]),
    "version-older": (lambda m: m.update(version=0), ["store format version 0 is not supported (expected 1)"]),
    "no-fields": (lambda m: m.pop("fields"), ["malformed: fields must be a non-empty mapping"]),
    "empty-fields": (lambda m: m.update(fields={}), ["malformed: fields must be a non-empty mapping"]),
    "field-name": (
        lambda m: m["fields"].update({"bad/name": m["fields"].pop("logits")}),
        ["malformed: field name 'bad/name' is invalid"],
    ),
    "field-spec": (
        lambda m: m["fields"].update(logits={"dtype": "float32"}),
        ["field 'logits' must be (dtype, shape)"],
    ),
    "field-dtype-unknown": (
        lambda m: m["fields"]["logits"].update(dtype="float99"),
        ["field 'logits' has an unknown dtype 'float99'"],
    ),
    "field-dtype-object": (
        lambda m: m["fields"]["logits"].update(dtype="object"),
        ["field 'logits' has dtype object which cannot be stored"],
    ),
    "field-shape-zero": (
        lambda m: m["fields"]["logits"].update(shape=[0]),
        ["field 'logits' has shape [0]; expected a list of positive integers"],
    ),
    "field-shape-float": (
        lambda m: m["fields"]["logits"].update(shape=[2.0]),
        ["field 'logits' has shape [2.0]; expected a list of positive integers"],
    ),
    "fingerprint-list": (lambda m: m.update(fingerprint=["sst-2"]), ["malformed: fingerprint must be a dict"]),
    "fingerprint-missing": (lambda m: m.pop("fingerprint"), ["malformed: fingerprint must be a dict"]),
    "fingerprint-int": (
        lambda m: m["fingerprint"].update(max_seq_length=16),
        ["fingerprint entry 'max_seq_length' must map a str to a str, got int"],
    ),
    "num-examples-negative": (lambda m: m.update(num_examples=-1), ["num_examples is not a non-negative integer"]),
    "num-examples-float": (lambda m: m.update(num_examples=5.0), ["num_examples is not a non-negative integer"]),
    "num-examples-missing": (lambda m: m.pop("num_examples"), ["num_examples is not a non-negative integer"]),
    "chunk-size-zero": (lambda m: m.update(chunk_size=0), ["chunk_size is not a positive integer"]),
    "chunk-size-string": (lambda m: m.update(chunk_size="2"), ["chunk_size is not a positive integer"]),
    "committed-negative": (lambda m: m.update(committed=-1), ["committed is not an integer in [0, num_examples]"]),
    "committed-too-many": (lambda m: m.update(committed=6), ["committed is not an integer in [0, num_examples]"]),
    "committed-bool": (lambda m: m.update(committed=True), ["committed is not an integer in [0, num_examples]"]),
    "complete-string": (lambda m: m.update(complete="yes"), ["complete is not true/false"]),
    "complete-int": (lambda m: m.update(complete=1), ["complete is not true/false"]),
    "complete-early": (lambda m: m.update(committed=4), ["marked complete but committed < num_examples"]),
    "chunks-not-list": (lambda m: m.update(chunks={}), ["chunks is not a list"]),
    "chunks-missing": (lambda m: m.pop("chunks"), ["chunks is not a list"]),
    "chunk-not-object": (lambda m: m["chunks"].insert(1, 3), ["chunk 1 has a wrong index or start"]),
    "chunk-index": (lambda m: chunk(1)(m).update(index=2), ["chunk 1 has a wrong index or start"]),
    "chunk-start": (lambda m: chunk(2)(m).update(start=3), ["chunk 2 has a wrong index or start"]),
    "chunk-no-index": (lambda m: chunk(0)(m).pop("index"), ["chunk 0 has a wrong index or start"]),
    "chunk-count": (lambda m: chunk(2)(m).update(count=2), ["chunk 2 has a wrong count"]),
    "chunk-count-string": (lambda m: chunk(0)(m).update(count="2"), ["chunk 0 has a wrong count"]),
    "chunk-extra": (
        lambda m: m["chunks"].append({**m["chunks"][2], "index": 3, "start": 6, "count": 0}),
        ["chunk 3 has a wrong count"],
    ),
    "chunk-files-missing-field": (
        lambda m: chunk(0)(m)["files"].pop("logits"),
        ["chunk 0 does not list one file per field"],
    ),
    "chunk-files-not-object": (lambda m: chunk(1)(m).update(files=[]), ["chunk 1 does not list one file per field"]),
    "chunk-file-bytes": (
        lambda m: chunk(1)(m)["files"]["logits"].update(bytes=15),
        ["chunk 1 field 'logits' has a wrong size or checksum entry"],
    ),
    "chunk-file-sha": (
        lambda m: chunk(1)(m)["files"]["values"].update(sha256="A" * 64),
        ["chunk 1 field 'values' has a wrong size or checksum entry"],
    ),
    "chunk-file-no-sha": (
        lambda m: chunk(2)(m)["files"]["token_index"].pop("sha256"),
        ["chunk 2 field 'token_index' has a wrong size or checksum entry"],
    ),
    "chunk-file-not-object": (
        lambda m: chunk(0)(m)["files"].update(values="x"),
        ["chunk 0 field 'values' has a wrong size or checksum entry"],
    ),
    "committed-not-the-chunks": (
        lambda m: m.update(committed=4, complete=False),
        ["committed does not equal the examples in the listed chunks"],
    ),
    "meta-budget": (
        lambda m: m["meta"]["budget"].update(keep_tokens=1),
        ["contradicts itself: meta.budget does not match fingerprint.budget"],
    ),
    "meta-budget-not-json": (
        lambda m: m["fingerprint"].update(budget="0" * 64),
        ["contradicts itself: meta.budget does not match fingerprint.budget"],
    ),
    "meta-task": (lambda m: m["meta"].update(task="cola"), ["contradicts itself: meta.task is 'cola'"]),
    "meta-dtype": (
        lambda m: m["meta"].update(dtype="float32"),
        ["contradicts itself: meta.dtype is 'float32' but fingerprint.dtype is 'float16'"],
    ),
    # A rule the hand-written validator did not have: the manifest's own byte count agrees with its fields.
    "bytes-per-example": (lambda m: m.update(bytes_per_example=23), ["bytes_per_example is 23, the fields take 24"]),
    "bytes-per-example-string": (lambda m: m.update(bytes_per_example="24"), ["bytes_per_example is not an integer"]),
    "values-dtype": (
        lambda m: m["fingerprint"].update(dtype="float32"),
        ["contradicts itself: the values field is float16 but fingerprint.dtype is 'float32'"],
    ),
}


@pytest.mark.parametrize(("edit", "fragments"), CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_a_corrupted_manifest_is_refused_naming_the_store(tmp_path, edit, fragments):
    store = tmp_path / "store"
    store.mkdir()
    manifest = json.loads(OLD_MANIFEST)
    edited = edit(manifest)
    document = edited.document if isinstance(edited, Replace) else manifest
    (store / MANIFEST_NAME).write_text(json.dumps(document, indent=1) + "\n")
    for read in (store_nbytes, HskStore.open, lambda path: StoreWriter.resume(path, fingerprint=FINGERPRINT)):
        with pytest.raises(StoreError) as caught:
            read(store)
        message = caught.value.message
        assert message.startswith(f"HSK store {store}: "), message
        assert all(fragment in message for fragment in fragments), (fragments, message)
        assert caught.value.hint and "\n" not in message + caught.value.hint


def test_the_manifest_model_round_trips_the_old_text():
    manifest = Manifest.from_document(json.loads(OLD_MANIFEST), "HSK store x")
    assert manifest.to_json_text() == OLD_MANIFEST
    assert manifest.value_dtype == "float16" and manifest.nbytes == 120 and manifest.fields["logits"].nbytes == 8
    document = json.loads(OLD_MANIFEST)
    del document["bytes_per_example"]  # filled in from the fields when absent
    assert Manifest.from_document(document, "HSK store x").bytes_per_example == 24


# --------------------------------------------------------------------------------------------------------------------
# One fingerprint rule


def test_fingerprint_mismatches_compares_the_keys_the_run_names():
    stored = {"task": "sst-2", "max_seq_length": "64", "budget": "b" * 64, "teacher": "t" * 64}
    assert fingerprint_mismatches(stored, {"task": "sst-2", "max_seq_length": "64"}) == []
    assert fingerprint_mismatches(stored, {"max_seq_length": "128", "task": "cola"}) == [
        "max_seq_length (store 64, run 128)",
        "task (store sst-2, run cola)",
    ]
    # A key the store lacks disagrees; long values are shortened.
    assert fingerprint_mismatches(stored, {"data": "d" * 64}) == ["data (store absent, run dddddddddddd…)"]
    # Keys only the store has count only when resuming the very same build.
    assert fingerprint_mismatches(stored, {"task": "sst-2"}, exact=True) == [
        "budget (store bbbbbbbbbbbb…, run absent)",
        "max_seq_length (store 64, run absent)",
        "teacher (store tttttttttttt…, run absent)",
    ]
    assert fingerprint_mismatches(stored, dict(stored), exact=True) == []


def test_open_and_resume_use_the_one_rule(tmp_path):
    store = build_store(tmp_path / "store")
    run = {"task": "sst-2", "max_seq_length": "16"}  # what a teacher-free run can recompute: no budget, no dtype
    assert HskStore.open(store, expect_fingerprint=run).fingerprint == FINGERPRINT
    with pytest.raises(StoreError, match=r"does not match this run: data \(store absent, run d+…\)"):
        HskStore.open(store, expect_fingerprint={**run, "data": "d" * 64})
    with pytest.raises(StoreError, match=r"cannot resume: budget \(store [0-9a-f]+…, run absent\), dtype"):
        StoreWriter.resume(store, fingerprint=run)
    assert StoreWriter.resume(store, fingerprint=FINGERPRINT).complete


def test_distill_and_sweep_compare_fingerprints_only_through_the_rule():
    """No hand-written comparison of fingerprint entries is left outside the store package."""
    root = Path(__file__).resolve().parents[1] / "mudkd"
    for path in root.rglob("*.py"):
        if "store" in path.relative_to(root).parts:
            continue
        text = path.read_text(encoding="utf-8")
        for pattern in ('fingerprint.get("', "fingerprint.get('", "fingerprint[key]"):
            assert pattern not in text, f"{path}: {pattern} (use mudkd.core.store.fingerprint_mismatches)"
