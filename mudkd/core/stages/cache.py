"""The teacher-free store: run the teacher once, keep exactly the knowledge a budget needs (method.md §16).

For every training example, in data order, the store keeps the teacher's logits (float32) and the compressed HSK
of :func:`mudkd.core.hsk.pack_targets` (fp16 by default): token indices of the kept tokens, the kept values, and
for the magnitude mask their positions. Students then train from it with ``--hsk-store``/``--logits-store`` and
the teacher is never constructed. A store built for a budget serves any smaller budget of the same schemes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from mudkd.core.batching import example_lengths, hsk_collator, length_sorted_batches
from mudkd.core.data import TaskData, count_train_examples, load_task, tokenizer_fingerprint
from mudkd.core.datacheck import check_data, describe_data
from mudkd.core.events import RunEvents, StagePlan, StageResult
from mudkd.core.hsk import build_targets, pack_targets
from mudkd.core.models import (
    check_positions,
    check_same_tokenizer,
    load_classifier,
    load_tokenizer,
    read_shape,
    teacher_fingerprint,
)
from mudkd.core.outputs import StagingDir, check_output_dir, recipe_inputs
from mudkd.core.ranks import Ranks
from mudkd.core.store import StoreWriter, check_chunk_bytes, fingerprint_files, fingerprint_value
from mudkd.core.training import resolve_device, write_run_files
from mudkd.core.transfer import ORIGINS, add_transfer, transfer_count, transfer_fingerprint
from mudkd.errors import BudgetError, RunError
from mudkd.knowledge import budget_from_recipe, budget_summary
from mudkd.recipe.schema import Recipe

_TORCH_DTYPES = {"float16": torch.float16, "float32": torch.float32}


def run_fingerprint(recipe: Recipe, *, tokenizer: Any, data: TaskData, teacher_path: str | None) -> dict[str, str]:
    """Everything stored knowledge depends on, except the budget (checked separately, since slicing is allowed)."""
    # the whole training data, not the examples this run takes: a store serves any prefix of its examples
    source = fingerprint_files(data.data_files) if data.data_files else data.source_hash
    return expected_fingerprint(
        recipe, tokenizer_key=tokenizer_fingerprint(tokenizer), data_key=source, teacher_path=teacher_path
    )


def expected_fingerprint(
    recipe: Recipe, *, tokenizer_key: str, data_key: str, teacher_path: str | None = None
) -> dict[str, str]:
    """:func:`run_fingerprint` from its parts: a dry run has the tokenizer and data identity, not tokenised data.

    ``data_key`` is :func:`mudkd.core.data.data_identity` of the training data.
    """
    fingerprint = {
        "tokenizer": tokenizer_key,
        "task": recipe.task.name,
        "data": data_key,
        "max_seq_length": str(recipe.task.max_seq_length),
        "max_train_samples": str(recipe.task.max_train_samples),
        "pad_tokens": recipe.hsk.pad_tokens,  # what a token slot past an example's length holds
    }
    if teacher_path:
        fingerprint["teacher"] = teacher_fingerprint(teacher_path)
    transfer = transfer_fingerprint(recipe)
    if transfer:  # only with a transfer set: a store without one keeps exactly the fingerprint it always had
        fingerprint["transfer"] = transfer
    return fingerprint


@dataclass(frozen=True)
class CachePlan(StagePlan):
    """What ``mudkd distill cache`` would do (``--dry-run``): the ``teacher`` that labels the examples once, the
    ``data``, the store's ``output_dir`` and value ``dtype``, and the ``budget`` it stores (with its bytes)."""

    stage: ClassVar[str] = "distill cache"
    teacher: str | None
    data: str
    output_dir: str | None
    dtype: str
    budget: dict[str, Any]


def plan(recipe: Recipe, *, resume: bool = False) -> CachePlan:
    """The store's plan and budget table (no weights loaded, nothing written); ``resume`` accepts a started store."""
    teacher = read_shape(recipe.teacher.model, "teacher")
    student = read_shape(recipe.student.model, "student")
    check_positions(recipe.task.max_seq_length, recipe.teacher.model, recipe.student.model)
    check_data(recipe.task)
    check_output_dir(
        recipe.cache.output_dir,
        overwrite=recipe.output.overwrite,
        resume=resume,
        command="distill cache",
        inputs={
            "--teacher-model": recipe.teacher.model,
            "--student-model": recipe.student.model,
            **recipe_inputs(recipe),
        },
        what="store directory",
    )
    budget = budget_from_recipe(
        recipe,
        num_student_layers=student.layers,
        num_teacher_layers=teacher.layers,
        teacher_hidden=teacher.hidden,
        num_labels=teacher.num_labels,
    )
    fields = budget.store_fields(recipe.cache.dtype, with_logits=True)
    check_chunk_bytes(fields, recipe.cache.chunk_size)  # the writer buffers one chunk: refuse one that cannot fit
    if not budget.storable:
        raise BudgetError(
            "a batch-scope magnitude mask depends on the batch and cannot be stored",
            hint="use --set hsk.mag_scope=example (the per-example top-n) for a teacher-free store",
        )
    return CachePlan(
        teacher=recipe.teacher.model,
        data=describe_data(recipe.task),
        output_dir=recipe.cache.output_dir,
        dtype=recipe.cache.dtype,
        budget=budget_summary(budget, _plan_examples(recipe), recipe.cache.dtype),
    )


def _plan_examples(recipe: Recipe) -> int | None:
    """The examples a store of the recipe holds: the training examples, plus its transfer set (if any)."""
    count = count_train_examples(recipe)
    return None if count is None else count + transfer_count(recipe)


def run(recipe: Recipe, *, events: RunEvents | None = None, resume: bool = False) -> StageResult:
    """Run the teacher once over the training set and store its compressed HSK and logits.

    Chunks are written atomically and the store is resumable: rerun with ``resume=True`` after an interruption
    and the teacher continues from the first example not yet committed.

    Under ``torchrun``/``accelerate launch`` every rank runs the teacher on its share of each chunk's batches;
    rank 0 gathers them, writes the chunk in data order and commits the store, the same bytes as one process
    writes (:func:`_write_teacher_pass`).
    """
    events = events or RunEvents()
    with Ranks() as ranks:
        return _run(recipe, events, resume, ranks)


def _run(recipe: Recipe, events: RunEvents, resume: bool, ranks: Ranks) -> StageResult:
    def load() -> tuple[Any, ...]:
        plan(recipe, resume=resume)
        device = ranks.device(resolve_device(recipe.training))
        tokenizer = load_tokenizer(recipe.teacher.model)  # type: ignore[arg-type]
        check_same_tokenizer(tokenizer, load_tokenizer(recipe.student.model))  # type: ignore[arg-type]
        data = add_transfer(load_task(recipe.task, tokenizer), recipe, tokenizer)
        teacher = load_classifier(recipe.teacher.model).to(device).eval()  # type: ignore[arg-type]
        return device, tokenizer, data, teacher

    device, tokenizer, data, teacher = ranks.together(load)
    output = Path(recipe.cache.output_dir)  # type: ignore[arg-type]
    budget = budget_from_recipe(
        recipe,
        num_student_layers=read_shape(recipe.student.model, "student").layers,
        num_teacher_layers=teacher.config.num_hidden_layers,
        teacher_hidden=teacher.config.hidden_size,
        num_labels=teacher.config.num_labels,
    )
    dtype = recipe.cache.dtype
    fields: dict[str, Any] = budget.store_fields(dtype, with_logits=True)
    fingerprint = run_fingerprint(recipe, tokenizer=tokenizer, data=data, teacher_path=recipe.teacher.model)
    fingerprint["budget"] = fingerprint_value(budget.to_dict())
    fingerprint["dtype"] = dtype
    meta = {"budget": budget.to_dict(), "teacher": recipe.teacher.model, "task": recipe.task.name}
    if data.origin is not None:  # a transfer set: every example's origin is stored (never without one)
        fields["origin"] = ("uint8", (1,))
        counts = {name: int((data.origin == code).sum()) for name, code in ORIGINS.items()}
        meta["transfer"] = {"num_original": counts.pop("original"), **counts}

    # The store is built in <output>.partial (resumable chunk by chunk) and committed in one rename, like every
    # output; the store's own fingerprint, not the recipe, decides whether a partial build can be resumed.
    # Rank 0 alone stages, writes and commits; it tells the other ranks where the build starts.
    staging = StagingDir(output, command="distill cache", resume=resume, recipe=recipe, check_settings=False)
    opened: dict[str, StoreWriter] = {}
    with ExitStack() as stack:

        def open_store() -> tuple[int, int]:
            stack.enter_context(staging)
            if resume and (staging.path / "manifest.json").is_file():
                writer = StoreWriter.resume(staging.path, fingerprint=fingerprint, fields=fields)
                events.on_message(f"resuming the store at example {writer.committed} of {len(data.train)}")
            else:
                writer = StoreWriter.create(
                    staging.path,
                    fields=fields,
                    num_examples=len(data.train),
                    fingerprint=fingerprint,
                    meta=meta,
                    chunk_size=recipe.cache.chunk_size,
                )
            opened["writer"] = writer
            return writer.committed, writer.chunk_size

        start, window_size = ranks.broadcast(open_store)
        batch_size = recipe.cache.batch_size
        total_batches = sum(
            -(-(min(first + window_size, len(data.train)) - first) // batch_size)
            for first in range(start, len(data.train), window_size)
        )
        events.on_start("distill cache", total_batches)
        started = time.monotonic()
        collator = hsk_collator(recipe, tokenizer)
        exclude = recipe.hsk.pad_tokens == "exclude"
        _write_teacher_pass(
            (opened.get("writer"), window_size, ranks),
            teacher,
            (collator, exclude, tokenizer.sep_token_id),
            data,
            budget,
            dtype,
            start,
            batch_size,
            device,
            events,
        )
        elapsed = time.monotonic() - started
        events.on_end("distill cache")

        def commit() -> Path:
            write_run_files(staging.path, recipe, metrics=None, device=device)
            return staging.commit()

        output = ranks.together(lambda: commit() if ranks.main else output)
    from mudkd.core.store import store_nbytes

    nbytes = store_nbytes(output)
    details = {
        "num_examples": len(data.train),
        "bytes": nbytes,
        "bytes_per_example": nbytes / max(len(data.train), 1),
        "examples_per_second": (len(data.train) - start) / max(elapsed, 1e-9),
        "budget": budget_summary(budget, len(data.train), dtype),
    }
    return StageResult(str(output), {}, details)


def _write_teacher_pass(
    target: tuple[StoreWriter | None, int, Ranks],
    teacher: Any,
    batching: tuple[Any, bool, int],
    data: TaskData,
    budget: Any,
    dtype: str,
    start: int,
    batch_size: int,
    device: str,
    events: RunEvents,
) -> None:
    """Run the teacher over the training examples from ``start`` on and append their packed knowledge.

    The examples go in windows of one store chunk (resuming starts at a chunk, so a resumed build batches exactly
    as an uninterrupted one and writes the same bits); inside a window they are
    batched longest first, so a batch is padded to little more than its own examples (``batching`` is the
    collator, the ``exclude_padding`` rule and the [SEP] id). Under ``exclude_padding`` an example's knowledge does
    not depend on its batch, and the window's arrays are put back in data order before they are appended.

    ``target`` is the writer (rank 0's; None on the other ranks), the window size and the launch's ranks: under
    a launch the window's batches go round-robin to the ranks (the same batches, so the same values, as on one
    process), rank 0 gathers them and alone appends the window and closes the writer.
    """
    writer, window_size, ranks = target
    collator, exclude_padding, sep_token_id = batching
    lengths = example_lengths(data.train)
    batch_number = 0
    run_batch = partial(
        _teacher_batch,
        teacher,
        collator,
        data,
        device=device,
        budget=budget,
        dtype=dtype,
        exclude_padding=exclude_padding,
        sep_token_id=sep_token_id,
    )
    with torch.no_grad():
        for first in range(start, len(data.train), window_size):
            stop = min(first + window_size, len(data.train))
            window = list(
                length_sorted_batches(lengths, first, stop, batch_size)
                if exclude_padding
                else ([*range(b, min(b + batch_size, stop))] for b in range(first, stop, batch_size))
            )
            gathered = ranks.gather(partial(_share, window, first, batch_number, ranks, events, run_batch))
            batch_number += len(window)
            ranks.together(partial(_append, writer, gathered))
    ranks.together(lambda: writer.close() if writer is not None else None)


def _share(
    window: list[list[int]],
    first: int,
    done_before: int,
    ranks: Ranks,
    events: RunEvents,
    run_batch: Callable[[list[int]], dict[str, np.ndarray]],
) -> list[tuple[list[int], dict[str, np.ndarray]]]:
    """This rank's batches of a window (every ``world``-th, from its rank on), each with its example indices."""
    done_examples = np.cumsum([len(indices) for indices in window])
    pieces = []
    for number, indices in enumerate(window[ranks.rank :: ranks.world]):
        pieces.append((indices, run_batch(indices)))
        done = min((number + 1) * ranks.world, len(window))  # on one process: exactly the batches done
        events.on_step(done_before + done, {"examples": float(first + done_examples[done - 1])})
    return pieces


def _append(writer: StoreWriter | None, gathered: list[Any] | None) -> None:
    """Rank 0: put the window's gathered batches back in data order and append them (other ranks: nothing)."""
    if writer is None or gathered is None:
        return
    pieces = [piece for share in gathered for piece in share]
    order = np.argsort(np.concatenate([np.asarray(p[0]) for p in pieces]), kind="stable")
    writer.append({name: np.concatenate([p[1][name] for p in pieces])[order] for name in pieces[0][1]})


def _teacher_batch(
    teacher: Any,
    collator: Any,
    data: TaskData,
    indices: list[int],
    *,
    device: str,
    budget: Any,
    dtype: str,
    exclude_padding: bool,
    sep_token_id: int,
) -> dict[str, np.ndarray]:
    """The packed knowledge and logits of one batch of training examples (numpy, on the CPU)."""
    rows = data.train[indices]
    batch = collator([{name: rows[name][i] for name in _COLUMNS} for i in range(len(indices))])
    inputs = {name: tensor.to(device) for name, tensor in batch.items()}
    arrays = store_arrays(
        teacher, inputs, budget=budget, dtype=dtype, exclude_padding=exclude_padding, sep_token_id=sep_token_id
    )
    if data.origin is not None:
        arrays["origin"] = data.origin[np.asarray(indices)][:, None]
    if not all(np.isfinite(a).all() for a in arrays.values() if a.dtype.kind == "f"):
        raise RunError(
            f"distill cache: the teacher gave non-finite values for examples among {min(indices)}..{max(indices)}",
            hint="check the teacher (mudkd finetune); nothing was committed",
        )
    return arrays


def store_arrays(
    teacher: Any,
    inputs: dict[str, torch.Tensor],
    *,
    budget: Any,
    dtype: str,
    exclude_padding: bool,
    sep_token_id: int,
) -> dict[str, np.ndarray]:
    """One teacher forward pass over a padded batch, turned into the store's arrays: the packed knowledge of
    ``budget`` in ``dtype`` and the logits (float32). The one definition of what a store row holds; the store
    build and ``benchmarks/distill_speed.py`` both call it."""
    outputs = teacher(**inputs, output_hidden_states=True)
    targets = build_targets(
        teacher,
        [s.float() for s in outputs.hidden_states],
        inputs["input_ids"],
        inputs["attention_mask"],
        budget,
        sep_token_id=sep_token_id,
        exclude_padding=exclude_padding,
    )
    packed = pack_targets(targets, budget, value_dtype=_TORCH_DTYPES[dtype])
    arrays = {name: tensor.cpu().numpy() for name, tensor in packed.items()}
    arrays["logits"] = outputs.logits.float().cpu().numpy().astype(np.float32)
    return arrays


_COLUMNS = ("input_ids", "token_type_ids", "attention_mask")
