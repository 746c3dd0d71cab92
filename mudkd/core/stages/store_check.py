"""Whether a teacher-free store serves a run: the one check that the HSK and prediction stages, their dry runs and
the sweep's plan make before training (the rule itself: :func:`mudkd.knowledge.serving_mismatches`)."""

from __future__ import annotations

from typing import Any

from mudkd.core.data import TaskData, tokenizer_fingerprint, train_source
from mudkd.core.models import load_tokenizer
from mudkd.core.stages.cache import expected_fingerprint, run_fingerprint
from mudkd.core.store import HskStore, serving_mismatches
from mudkd.core.transfer import transfer_count
from mudkd.errors import StoreError
from mudkd.recipe.schema import Recipe


def open_store(path: str, *, tokenizer: Any, recipe: Recipe, data: TaskData) -> Any:
    """Open a teacher-free store and check it was built for this tokenizer, task, data and length."""
    expected = run_fingerprint(recipe, tokenizer=tokenizer, data=data, teacher_path=None)
    explicit = "dtype" in recipe.cache.model_fields_set  # a store's own dtype is trusted unless the run names one
    store = HskStore.open(path, expect_dtype=recipe.cache.dtype if explicit else None)
    check_store_serves(path, store, expected, len(data.train))
    return store


def check_store_serves(path: str, store: Any, expected: dict[str, str], wanted: int) -> None:
    """Refuse a store that cannot serve a run training on ``wanted`` examples (the rule: ``serving_mismatches``).

    The training run and its dry run both ask this, with the same ``expected`` fingerprint (the dry run builds it
    from the data files and the tokenizer, without tokenising), so they accept and refuse the same stores.
    """
    found = {"pad_tokens": "reference"} | store.fingerprint  # stores from before dynamic padding padded to T (Q6)
    # a run without the store's transfer set reads its prefix, which holds the training examples only
    servable = len(store) if "transfer" in expected else ((store.meta or {}).get("transfer") or {}).get("num_original")
    differ = serving_mismatches(found, len(store) if servable is None else servable, expected, wanted)
    held = f"{len(store):,} examples of task '{found.get('task', '?')}'"
    if len(differ) == 1 and wanted > len(store):  # built for this run, on fewer examples than it asks for
        raise StoreError(
            f"store {path} holds {held}; this run asks for {wanted:,}",
            hint=f"rebuild it with 'mudkd distill cache' for this run, or set task.max_train_samples <= "
            f"{len(store)} (--max-train-samples {len(store)})",
        )
    if differ:
        raise StoreError(
            f"store {path} ({held}) does not match this run: {', '.join(differ)}",
            hint="rebuild it with 'mudkd distill cache' for this run, or pass the settings it was built with",
        )


def plan_store_check(recipe: Recipe, path: str, store: Any) -> int:
    """A dry run's :func:`check_store_serves`: the fingerprint the run will expect, built from the data files and
    the student's tokenizer without tokenising; returns the run's training examples."""
    data_key, count = train_source(recipe.task)
    tokenizer = tokenizer_fingerprint(load_tokenizer(recipe.student.model))  # type: ignore[arg-type]
    count += transfer_count(recipe)
    check_store_serves(path, store, expected_fingerprint(recipe, tokenizer_key=tokenizer, data_key=data_key), count)
    return count
