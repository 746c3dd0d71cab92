"""A planned teacher-free store built (one teacher pass), resumed after a kill, or reused on a rerun.

Shared by ``mudkd sweep`` and ``mudkd search``: a finished store of the same budget, task and teacher is reused; a
started build of it resumes; anything else at the path is rebuilt. A build records its seconds and bytes beside
the store (``<store>.json``), so a rerun that reuses it can still report what it cost.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from mudkd.core.events import RunEvents
from mudkd.core.models import teacher_fingerprint
from mudkd.core.outputs import staging_path, write_json_atomic
from mudkd.core.store import MANIFEST_NAME, fingerprint_mismatches
from mudkd.core.sweep.plan import PlannedStore, describe_budget
from mudkd.errors import StoreError
from mudkd.knowledge import KnowledgeBudget
from mudkd.recipe.overrides import apply_overrides
from mudkd.recipe.schema import Recipe

# The cache stage (torch, ~2-5 s at import) is imported where a store is built: checking stores stays torch-free.


def build_file(store_path: Path) -> Path:
    """Beside the store: how long its build took and its size (``store`` → ``store.json``)."""
    return store_path.with_name(f"{store_path.name}.json")


def store_state(path: Path, budget: KnowledgeBudget, recipe: Recipe) -> str:
    """``complete``, ``partial`` (the same build, resumable), ``stale`` (another build: rebuild) or ``missing``.

    ``recipe`` is the recipe the store is built from (task, teacher and dtype are compared with the manifest).
    """
    manifest_file = path / MANIFEST_NAME
    if not manifest_file.is_file() and (staging_path(path) / MANIFEST_NAME).is_file():
        manifest_file = staging_path(path) / MANIFEST_NAME  # an interrupted build, resumable
    if not manifest_file.is_file():
        return "stale" if path.exists() and any(path.iterdir()) else "missing"
    try:
        manifest = json.loads(manifest_file.read_text())
        same_budget = json.dumps(manifest["meta"]["budget"], sort_keys=True) == json.dumps(
            json.loads(json.dumps(budget.to_dict())), sort_keys=True
        )
        fingerprint = manifest["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        return "stale"
    expected = {
        "task": recipe.task.name,
        "max_seq_length": str(recipe.task.max_seq_length),
        "max_train_samples": str(recipe.task.max_train_samples),
        "dtype": recipe.cache.dtype,
        "teacher": teacher_fingerprint(recipe.teacher.model),  # type: ignore[arg-type]
    }
    if not same_budget or fingerprint_mismatches(fingerprint, expected):
        return "stale"
    return "complete" if manifest.get("complete") else "partial"


def ensure_store(store: PlannedStore, base: Recipe, events: RunEvents) -> dict[str, Any]:
    """Build the store (one teacher pass), resume a partial build, or reuse a finished one.

    Args:
        store: The planned store (:attr:`mudkd.core.sweep.SweepPlan.stores`).
        base: The recipe the store is built from (the store's overrides are applied to it).
        events: Progress receiver (the teacher pass's events too).

    Returns:
        The store's plan row with ``action`` (``given``, ``reused``, ``resumed`` or ``built``), ``seconds`` spent
        now, and ``build_seconds``/``bytes`` of the build (recorded beside the store; 0 and None when unknown).

    Raises:
        StoreError: The built store holds another budget than planned.
    """
    from mudkd.core.stages import cache

    row = store.row(base.cache.dtype)
    if store.given:
        return {**row, "action": "given", "seconds": 0.0, "build_seconds": 0.0}
    recipe = apply_overrides(
        base, {**store.overrides, "cache.output_dir": str(store.path), "output.overwrite": True}, where="store"
    )
    state = store_state(store.path, store.budget, recipe)
    record = build_file(store.path)
    if state == "complete":
        events.on_message(f"{store.name}: reusing the store at {store.path}")
        built = _read_build(record)
        recorded = {"bytes": built["bytes"]} if built["bytes"] is not None else {}
        return {**row, "action": "reused", "seconds": 0.0, "build_seconds": built["seconds"], **recorded}
    if state == "stale":
        events.on_message(f"{store.name}: the store at {store.path} was built for other settings: rebuilding it")
    events.on_message(f"{store.name}: running the teacher once over the training set ({describe_budget(store.budget)})")
    started = time.monotonic()
    result = cache.run(recipe, events=events, resume=state == "partial")
    if KnowledgeBudget.from_dict(result.details["budget"]).to_dict() != store.budget.to_dict():
        raise StoreError(f"{store.path}: the store was built for another budget than planned")
    seconds = time.monotonic() - started
    built = {"seconds": seconds, "bytes": result.details.get("bytes")}
    write_json_atomic(record, built)
    action = "resumed" if state == "partial" else "built"
    return {**row, "action": action, "seconds": seconds, "build_seconds": seconds, "bytes": built["bytes"]}


def _read_build(path: Path) -> dict[str, Any]:
    """The recorded build's ``seconds`` and ``bytes`` (0 and None when it was not recorded or is unreadable)."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        document = {}
    if not isinstance(document, dict):
        document = {}
    seconds = document.get("seconds")
    return {"seconds": float(seconds) if isinstance(seconds, int | float) else 0.0, "bytes": document.get("bytes")}
