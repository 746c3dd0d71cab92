"""``mudkd augment``: write a transfer set — augmented training examples and unlabelled text (issue 19).

TinyBERT's augmentation (:mod:`mudkd.core.augment`) runs over the task's training examples (and, with
``augment.augment_unlabeled``, over the unlabelled texts); the unlabelled texts of ``augment.unlabeled_file`` and,
with ``augment.unlabeled_rest``, the training examples beyond ``task.max_train_samples`` are added as they are.
The result is a directory (never inside the data folder; staged and committed like every output) holding
``transfer.jsonl`` and ``transfer.json`` (:mod:`mudkd.core.transfer`), which ``distill cache`` labels once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mudkd.core.augment import (
    Augmenter,
    MaskedLM,
    cached_neighbours,
    load_package_vectors,
    load_text_vectors,
    piece_counter,
    word_splitter,
)
from mudkd.core.data import cache_root, data_identity, load_raw, selection_carve
from mudkd.core.datacheck import check_data, describe_data
from mudkd.core.events import RunEvents, StageResult
from mudkd.core.outputs import StagingDir, check_output_dir, recipe_inputs
from mudkd.core.transfer import FORMAT, SUMMARY_FILE, TRANSFER_FILE, read_unlabeled
from mudkd.errors import DataError, RecipeError
from mudkd.recipe.schema import Recipe

_PROGRESS_EVERY = 50  # examples between progress events


def tokenizer_source(recipe: Recipe) -> str:
    """The model whose tokenizer decides what a single-piece word is: the teacher (fine-tuned, else pretrained),
    else the student."""
    source = recipe.teacher.model or recipe.teacher.pretrained or recipe.student.model
    if not source:
        raise RecipeError(
            "augment needs the teacher's tokenizer (which words are one wordpiece)",
            hint="pass --teacher-model DIR (or set teacher.pretrained)",
        )
    return source


def _texts(recipe: Recipe) -> tuple[list[tuple[str, str | None]], list[tuple[str, str | None]], str]:
    """The training examples to augment, the unlabelled texts, and the identity of the training data."""
    splits, _, _, _, files = load_raw(recipe.task)
    train = splits["train"]
    pairs = list(zip(train["text_a"], train.get("text_b") or [None] * len(train["text_a"]), strict=True))
    limit = recipe.task.max_train_samples or len(pairs)
    # the selection split (training.selection_split) is the file's tail: never transfer text, or the checkpoint
    # would be chosen on examples the student was taught the teacher's answers for
    carved, _ = selection_carve(len(pairs), limit, recipe.training.selection_split)
    labelled, rest = pairs[:limit], pairs[limit : len(pairs) - carved]
    config = recipe.augment
    unlabeled: list[tuple[str, str | None]] = []
    if config.unlabeled_rest:
        if not rest:
            raise DataError(
                f"augment.unlabeled_rest: every one of the {len(pairs):,} training examples is already trained on",
                hint="set task.max_train_samples below the training set's size, or unset augment.unlabeled_rest",
            )
        unlabeled += rest
    if config.unlabeled_file:
        unlabeled += read_unlabeled(config.unlabeled_file, recipe.task.text_columns)
    return labelled, unlabeled, data_identity(files, train)


def plan(recipe: Recipe, *, resume: bool = False) -> dict[str, Any]:
    """Check everything ``run`` needs (data, unlabelled file, vectors, output) and describe it; writes nothing."""
    config = recipe.augment
    check_data(recipe.task)
    tokenizer_source(recipe)
    if config.num_per_example == 0 and not (config.unlabeled_file or config.unlabeled_rest):
        raise RecipeError(
            "augment: nothing to write (augment.num_per_example = 0 and no unlabelled text)",
            hint="set augment.num_per_example > 0, or give --unlabeled-file / augment.unlabeled_rest",
        )
    if config.num_per_example and config.p == 0:
        raise RecipeError(
            "augment.p = 0 replaces no word: every augmented example would be a duplicate",
            hint="set augment.p in (0, 1] (TinyBERT: 0.4)",
        )
    if config.num_per_example:
        if config.vectors_file:
            if not Path(config.vectors_file).is_file():
                raise DataError(f"{config.vectors_file}: vectors file not found", hint="check augment.vectors_file")
        else:
            from mudkd.core.augment import glove_package_files

            glove_package_files()
    inputs = {
        "--teacher-model": recipe.teacher.model,
        "--unlabeled-file": config.unlabeled_file,
        "--vectors-file": config.vectors_file,
        **recipe_inputs(recipe),
    }
    check_output_dir(config.output_dir, overwrite=recipe.output.overwrite, inputs=inputs, what="transfer set")
    labelled, unlabeled, _ = _texts(recipe)
    return {
        "stage": "augment",
        "data": describe_data(recipe.task),
        "output_dir": config.output_dir,
        "training_examples": len(labelled),
        "unlabeled_examples": len(unlabeled),
        "draws_per_example": config.num_per_example,
        "p": config.p,
        "top_k": config.top_k,
        "candidates": f"masked LM {config.mlm_model} + GloVe" if config.mlm_model else "GloVe neighbours",
        "transfer_examples_at_most": len(unlabeled)
        + config.num_per_example * (len(labelled) + (len(unlabeled) if config.augment_unlabeled else 0)),
    }


def run(recipe: Recipe, *, events: RunEvents | None = None, resume: bool = False) -> StageResult:
    """Write the transfer set: augmented examples (streamed to ``transfer.jsonl``) and unlabelled texts."""
    events = events or RunEvents()
    plan(recipe)
    config = recipe.augment
    started = time.monotonic()
    labelled, unlabeled, identity = _texts(recipe)
    sources = labelled + (unlabeled if config.augment_unlabeled else [])
    augmenter = _augmenter(recipe, sources, events) if config.num_per_example else None
    output = Path(config.output_dir)  # type: ignore[arg-type]
    counts = {"augmented": 0, "unlabeled": 0}
    with StagingDir(output, command="augment", recipe=recipe) as staging:
        events.on_start("augment", len(sources) if augmenter else 0)
        with (staging.path / TRANSFER_FILE).open("w", encoding="utf-8") as handle:
            for line, origin in _lines(augmenter, sources, unlabeled, events):
                handle.write(line)
                counts[origin] += 1
        events.on_end("augment")
        summary = {
            "format": FORMAT,
            "version": 1,
            "task": recipe.task.name,
            "data": identity,
            "num_original": len(labelled),
            **counts,
            "settings": config.model_dump(include={"p", "top_k", "num_per_example", "mlm_model", "vectors_file"})
            | {"seed": recipe.training.seed},
            "seconds": time.monotonic() - started,
        }
        (staging.path / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        from mudkd.core.training import write_run_files

        write_run_files(staging.path, recipe, metrics=None, device="cpu")
        final = staging.commit()
    return StageResult(
        str(final), {}, {key: summary[key] for key in ("num_original", "augmented", "unlabeled", "seconds")}
    )


def _augmenter(recipe: Recipe, sources: list[tuple[str, str | None]], events: RunEvents) -> Augmenter:
    """The sampler: the teacher's word splitting, the data vocabulary's neighbours (cached), the masked LM."""
    from mudkd.core.models import load_tokenizer

    config = recipe.augment
    tokenizer = load_tokenizer(tokenizer_source(recipe))
    split = word_splitter(tokenizer)
    vocabulary = {word for a, b in sources for text in (a, b) if text for word in split(text)}
    vectors = load_text_vectors(config.vectors_file) if config.vectors_file else load_package_vectors()
    events.on_message(f"augment: nearest GloVe neighbours of {len(vocabulary):,} words ({vectors.identity})")
    neighbours, cached = cached_neighbours(vectors, vocabulary, config.top_k, cache_root() / "augment")
    if cached:
        events.on_message("augment: neighbours read from the cache")
    masked_lm = None
    if config.mlm_model:
        from mudkd.core.training import resolve_device

        masked_lm = MaskedLM(config.mlm_model, device=resolve_device(recipe.training), batch_size=config.mlm_batch_size)
    return Augmenter(
        split_words=split,
        count_pieces=piece_counter(tokenizer),
        neighbours=neighbours,
        p=config.p,
        top_k=config.top_k,
        num_per_example=config.num_per_example,
        seed=recipe.training.seed,
        masked_lm=masked_lm,
    )


def _lines(
    augmenter: Augmenter | None,
    sources: list[tuple[str, str | None]],
    unlabeled: list[tuple[str, str | None]],
    events: RunEvents,
) -> Iterator[tuple[str, str]]:
    """The transfer file's lines in order: every source's augmented versions, then the unlabelled texts."""
    if augmenter is not None:
        for index, (text_a, text_b) in enumerate(sources):
            for new_a, new_b in augmenter.augment(index, text_a, text_b):
                yield _line(new_a, new_b, "augmented", index), "augmented"
            if (index + 1) % _PROGRESS_EVERY == 0 or index + 1 == len(sources):
                events.on_step(index + 1, {"examples": float(index + 1)})
    for text_a, text_b in unlabeled:
        yield _line(text_a, text_b, "unlabeled", None), "unlabeled"


def _line(text_a: str, text_b: str | None, origin: str, source: int | None) -> str:
    record: dict[str, Any] = {"text_a": text_a}
    if text_b is not None:
        record["text_b"] = text_b
    record |= {"origin": origin, "source": source}
    return json.dumps(record, ensure_ascii=False) + "\n"
