"""Batches padded to their own longest example, and batches grouped by length (issue 12).

Tokenised splits are stored unpadded (:func:`mudkd.core.data.encode_texts`); every stage pads at batch time with
:class:`PaddingCollator`. With ``training.padding = "longest"`` (the default) a batch is padded to its own longest
example; with ``"max_length"`` every batch is padded to ``task.max_seq_length``, the reference's static padding.
On a CPU time follows tokens, so this (and grouping similar lengths into one batch) is the largest speed lever
of every stage.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

# transformers' LengthGroupedSampler is imported where it is used: its trainer utilities cost ~3 s at import, which
# evaluate and score (collators only) need not pay.

#: The column holding each example's real token count, read by the Trainer's length-grouped sampler.
LENGTH_COLUMN = "length"

_PADDED = {"input_ids": None, "token_type_ids": 0, "attention_mask": 0}  # None: the tokenizer's [PAD] id


@dataclass
class PaddingCollator:
    """Pad a list of tokenised examples into one batch of tensors (a ``DataCollatorWithPadding`` of mudkd's own).

    ``input_ids``/``token_type_ids``/``attention_mask`` are right-padded to the batch's longest example (or to
    ``pad_to`` when that is longer); every other column (``labels``, ``example_index``) passes through stacked,
    except :data:`LENGTH_COLUMN`, which is dropped.

    Attributes:
        pad_token_id: The tokenizer's [PAD] id.
        pad_to: Pad every batch to at least this many tokens (``max_seq_length`` for static padding), or None.
    """

    pad_token_id: int
    pad_to: int | None = None

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        length = max(max(len(feature["input_ids"]) for feature in features), self.pad_to or 0)
        batch: dict[str, torch.Tensor] = {}
        for name, value in _PADDED.items():
            if name not in features[0]:
                continue
            fill = self.pad_token_id if value is None else value
            rows = [_as_list(feature[name]) for feature in features]
            batch[name] = torch.tensor([row + [fill] * (length - len(row)) for row in rows], dtype=torch.long)
        for name in features[0]:
            if name in _PADDED or name == LENGTH_COLUMN:
                continue
            values = [feature[name] for feature in features]
            batch[name] = torch.stack(values) if isinstance(values[0], torch.Tensor) else torch.tensor(values)
        return batch


def _as_list(values: Any) -> list[int]:
    return values.tolist() if isinstance(values, torch.Tensor) else list(values)


def make_collator(tokenizer: Any, padding: str, max_seq_length: int) -> PaddingCollator:
    """The collator of a recipe's ``training.padding`` (``longest`` or ``max_length``)."""
    return PaddingCollator(tokenizer.pad_token_id, max_seq_length if padding == "max_length" else None)


def hsk_collator(recipe: Any, tokenizer: Any) -> PaddingCollator:
    """The collator of the HSK stage and the store's teacher pass.

    ``hsk.pad_tokens = "reference"`` lets padding positions be HSK targets (Q6), which is only defined for batches
    padded to ``task.max_seq_length``, so it implies static padding there.
    """
    padding = "max_length" if recipe.hsk.pad_tokens == "reference" else recipe.training.padding
    return make_collator(tokenizer, padding, recipe.task.max_seq_length)


def example_lengths(dataset: Any) -> list[int]:
    """Real token count of every example of a tokenised (unpadded) split."""
    if LENGTH_COLUMN in dataset.column_names:
        return list(dataset[LENGTH_COLUMN])
    return [len(ids) for ids in dataset["input_ids"]]


def with_lengths(dataset: Any) -> Any:
    """``dataset`` plus a :data:`LENGTH_COLUMN` (so the length-grouped sampler does not read every row)."""
    if dataset is None or LENGTH_COLUMN in dataset.column_names:
        return dataset
    return dataset.add_column(LENGTH_COLUMN, example_lengths(dataset))


def length_sorted_batches(lengths: Sequence[int], start: int, stop: int, batch_size: int) -> Iterator[list[int]]:
    """Batches of the example indices ``start..stop-1``, longest first, each of similar lengths.

    Used by passes whose per-example results do not depend on the batch (the store's teacher pass): sorting a
    window of examples by length before batching wastes almost no compute on padding. The sort is stable, so the
    batches are deterministic.
    """
    order = sorted(range(start, stop), key=lambda index: -lengths[index])
    for first in range(0, len(order), batch_size):
        yield order[first : first + batch_size]


def padded_batches(
    examples: Sequence[dict[str, Any]], batch_size: int, pad_token_id: int
) -> tuple[list[dict[str, torch.Tensor]], int]:
    """``examples`` in their order, cut into batches each padded to its own longest example.

    Returns:
        The batches (``input_ids``, ``token_type_ids``, ``attention_mask``) and their total padded token count:
        the sum over batches of batch size × that batch's longest example.
    """
    collate = PaddingCollator(pad_token_id)
    columns = tuple(_PADDED)
    batches = [
        collate([{name: example[name] for name in columns if name in example} for example in chunk])
        for chunk in (examples[first : first + batch_size] for first in range(0, len(examples), batch_size))
    ]
    return batches, sum(int(batch["input_ids"].numel()) for batch in batches)


def epoch_seeded_length_sampler(lengths: Sequence[int], batch_size: int, seed: int) -> Any:
    """A length-grouped sampler whose order depends only on ``seed`` and the epoch, not on the global RNG.

    The Trainer's own ``LengthGroupedSampler`` draws each epoch's order from the global torch RNG when the epoch's
    iterator is created. A run resumed in epoch e ≥ 2 creates that iterator *before* the Trainer restores the
    checkpoint's RNG state, so it drew another order than the uninterrupted run (which drew it after epoch e − 1's
    dropout): HSK weights after ``--resume`` differed by up to 1e-2 (issue 23). Here epoch e's order is drawn from
    a generator seeded with ``seed + e`` (the Trainer calls ``set_epoch`` before every epoch, through accelerate's
    data loader), so it is the same in a resumed run, and on every DDP rank; epoch 0 is the order
    ``LengthGroupedSampler(generator=torch.Generator().manual_seed(seed))`` draws.

    Args:
        lengths: Real token count of every training example.
        batch_size: Examples per (global) batch, the grouping unit.
        seed: The run's data seed.
    """
    from transformers.trainer_pt_utils import LengthGroupedSampler

    class EpochSeededLengthSampler(LengthGroupedSampler):
        def __init__(self) -> None:
            super().__init__(batch_size, lengths=list(lengths))
            self.seed, self.epoch = seed, 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = int(epoch)

        def __iter__(self) -> Iterator[int]:
            self.generator = torch.Generator().manual_seed(self.seed + self.epoch)
            return super().__iter__()

    return EpochSeededLengthSampler()
