"""The search's one teacher-free store: built once (one teacher pass), resumed after a kill, reused on a rerun.

The same rules as a sweep's store (:mod:`mudkd.core.sweep.run`): a finished store of the same budget, task and
teacher is reused; a started build of it resumes; anything else at the path is rebuilt.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from mudkd.core.events import RunEvents
from mudkd.core.outputs import staging_path, write_json_atomic
from mudkd.core.sweep import PlannedStore, describe_budget
from mudkd.errors import StoreError
from mudkd.knowledge import KnowledgeBudget
from mudkd.recipe.schema import Recipe
from mudkd.recipe.sweep import apply_overrides

#: Beside the store: how long its build took (for the compute summary of later reruns).
BUILD_FILE = "store.json"


def store_state(path: Path, budget: KnowledgeBudget, recipe: Recipe) -> str:
    """``complete``, ``partial`` (the same build, resumable), ``stale`` (another build: rebuild) or ``missing``."""
    from mudkd.core.models import teacher_fingerprint
    from mudkd.core.store import MANIFEST_NAME, fingerprint_mismatches

    manifest_file = path / MANIFEST_NAME
    if not manifest_file.is_file() and (staging_path(path) / MANIFEST_NAME).is_file():
        manifest_file = staging_path(path) / MANIFEST_NAME
    if not manifest_file.is_file():
        return "stale" if path.exists() and any(path.iterdir()) else "missing"
    try:
        manifest = json.loads(manifest_file.read_text())
        same_budget = manifest["meta"]["budget"] == json.loads(json.dumps(budget.to_dict()))
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


def ensure_store(store: PlannedStore, recipe: Recipe, output_dir: Path, events: RunEvents) -> dict[str, Any]:
    """Build, resume or reuse the store; returns its plan row with ``action`` and the build's ``seconds``."""
    from mudkd.core import cache

    row = store.row(recipe.cache.dtype)
    if store.given:
        return {**row, "action": "given", "seconds": 0.0}
    build_file = output_dir / BUILD_FILE
    state = store_state(store.path, store.budget, recipe)
    if state == "complete":
        events.on_message(f"reusing the store at {store.path}")
        seconds = json.loads(build_file.read_text()).get("seconds", 0.0) if build_file.is_file() else 0.0
        return {**row, "action": "reused", "seconds": seconds}
    if state == "stale":
        events.on_message(f"the store at {store.path} was built for other settings: rebuilding it")
    events.on_message(f"running the teacher once over the training set ({describe_budget(store.budget)})")
    build = apply_overrides(
        recipe, {**store.overrides, "cache.output_dir": str(store.path), "output.overwrite": True}, where="store"
    )
    started = time.monotonic()
    result = cache.run(build, events=events, resume=state == "partial")
    if KnowledgeBudget.from_dict(result.details["budget"]).to_dict() != store.budget.to_dict():
        raise StoreError(f"{store.path}: the store was built for another budget than planned")
    row = {**row, "action": "resumed" if state == "partial" else "built", "seconds": time.monotonic() - started}
    write_json_atomic(build_file, {"seconds": row["seconds"], "bytes": result.details.get("bytes")})
    return row
