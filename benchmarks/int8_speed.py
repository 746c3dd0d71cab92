"""Int8 ONNX versus fp32 ONNX of the quickstart's student, measured side by side in one run.

Exports the student (``outputs/quickstart/final`` of ``mudkd pipeline recipes/quickstart.toml``) to fp32 ONNX, then
optimises and quantizes it as ``mudkd export --quantize dynamic`` does (:func:`mudkd.core.quantize.quantize_onnx`),
and reports: the size ratio fp32/int8 on disk; the CPU latency ratio fp32/int8 at batch 1 over real dev examples
(each at its own length, no padding), as the median of interleaved passes with its range and verdict
(:mod:`mudkd.core.measure`); and dev accuracy of both on the whole rt-snippets dev split. Both sessions run on one
thread (the steadiest on a shared machine). With ``--profile``, ONNX Runtime's per-operator profile of one int8 pass
says where the time goes.

Usage:
    python benchmarks/int8_speed.py --student outputs/quickstart/final
    python benchmarks/int8_speed.py --student outputs/quickstart/final --examples 100 --repeats 5 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
ROOT = Path(__file__).resolve().parents[1]


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", default="outputs/quickstart/final", help="the quickstart's student directory")
    parser.add_argument("--recipe", default=str(ROOT / "recipes/quickstart.toml"), help="recipe naming the dev set")
    parser.add_argument("--examples", type=int, default=200, help="dev examples timed per pass (batch 1)")
    parser.add_argument("--wide-examples", type=int, default=256, help="dev examples timed per pass (batch 32)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per model (interleaved pairs)")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    parser.add_argument("--profile", action="store_true", help="per-operator time of one int8 and one fp32 pass")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    return parser.parse_args(argv)


def _profile(path: Path, dev, threads: int) -> dict[str, float]:
    """Share of one pass's operator time per operator type (ONNX Runtime's profiler)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(path.with_suffix("")) + "_profile"  # beside the model, in the temporary folder
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [node.name for node in session.get_inputs()]
    for batch in dev.batches:
        session.run(["logits"], {name: batch[name].numpy() for name in names})
    profile = Path(session.end_profiling())
    events = json.loads(profile.read_text())
    profile.unlink()
    totals: dict[str, float] = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            kind = event.get("args", {}).get("op_name", "?")
            totals[kind] = totals.get(kind, 0.0) + event["dur"]
    whole = sum(totals.values()) or 1.0
    return {kind: round(value / whole, 3) for kind, value in sorted(totals.items(), key=lambda item: -item[1])[:8]}


def _optimise(source: Path, target: Path) -> None:
    """ORT's BERT optimiser alone (what quantize_onnx runs before quantizing), fp32."""
    import warnings

    from onnxruntime.transformers import optimizer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimizer.optimize_model(str(source), model_type="bert", num_heads=0, hidden_size=0).save_model_to_file(
            str(target)
        )


def _one_pass(forward, dev):
    return lambda: [forward(batch) for batch in dev.batches]


def main(argv: list[str] | None = None) -> int:
    """Export, quantize, check and time; print the ratios."""
    args = _parse_args(argv)
    from mudkd.core import quantize as q
    from mudkd.core.measure import describe, interleaved, machine_load, paired_ratios
    from mudkd.core.models import load_classifier
    from mudkd.core.stages.export import export_onnx
    from mudkd.core.training import quiet_libraries
    from mudkd.recipe import build_recipe

    quiet_libraries(verbose=False)
    task = build_recipe(Path(args.recipe)).task
    config = load_classifier(args.student).config
    whole_dev = q.load_dev_set(task, args.student, batch_size=32)
    timed = q.load_dev_set(task, args.student, batch_size=1, examples=args.examples)
    wide = q.load_dev_set(task, args.student, batch_size=32, examples=args.wide_examples)
    with tempfile.TemporaryDirectory() as folder:
        paths = {name: Path(folder, f"{name}.onnx") for name in ("fp32", "fp32_optimised", "int8", "int8_unoptimised")}
        export_onnx(args.student, paths["fp32"])
        found = q.quantize_onnx(paths["fp32"], paths["int8"], config)
        q.quantize_onnx(paths["fp32"], paths["int8_unoptimised"], config, optimise=False)
        _optimise(paths["fp32"], paths["fp32_optimised"])  # the optimiser alone, to separate it from int8
        sizes = {name: path.stat().st_size for name, path in paths.items()}
        forwards = {name: q.onnx_forward(path, threads=args.threads) for name, path in paths.items()}
        logits = {name: q.dev_logits(forward, whole_dev) for name, forward in forwards.items()}
        check = q.compare(logits["fp32"], logits["int8"], whole_dev, max_metric_drop=1.0)
        unoptimised = q.compare(logits["fp32"], logits["int8_unoptimised"], whole_dev, max_metric_drop=1.0)
        latency = {}
        for size, dev in (("1", timed), ("32", wide)):
            load = machine_load()
            seconds = interleaved(
                {name: _one_pass(forward, dev) for name, forward in forwards.items()}, repeats=args.repeats, warmup=1
            )
            load = max(value for value in (load, machine_load(), 0.0) if value is not None)
            latency[size] = {
                "fp32/int8": paired_ratios(seconds["fp32"], seconds["int8"], load=load),
                "fp32_optimised/int8": paired_ratios(seconds["fp32_optimised"], seconds["int8"], load=load),
                "fp32/fp32_optimised": paired_ratios(seconds["fp32"], seconds["fp32_optimised"], load=load),
                "fp32/int8_unoptimised": paired_ratios(seconds["fp32"], seconds["int8_unoptimised"], load=load),
                "int8_unoptimised/int8": paired_ratios(seconds["int8_unoptimised"], seconds["int8"], load=load),
                "median_seconds_per_pass": {name: statistics.median(values) for name, values in seconds.items()},
            }
        profile = {name: _profile(path, timed, args.threads) for name, path in paths.items()} if args.profile else None
    lengths = [int(batch["input_ids"].shape[1]) for batch in timed.batches]
    spread = latency["1"]["fp32/int8"]
    document = {
        "student": args.student,
        "fused": found["fused"],
        "bytes": sizes,
        "size_ratio": sizes["fp32"] / sizes["int8"],
        "latency_ratio": spread["median"],
        "latency_spread": spread,
        "latency": latency,
        "latency_input": f"{len(lengths)} dev examples at batch 1 (mean {sum(lengths) / len(lengths):.1f} tokens); "
        f"{wide.examples} at batch 32 padded per batch",
        "threads": args.threads,
        "dev": {key: check[key] for key in ("examples", "metric", "fp32", "int8", "drop_points", "agreement")}
        | {"max_logit_diff": check["max_logit_diff"], "int8_unoptimised": unoptimised["int8"]},
        "profile": profile,
    }
    if args.json:
        print(json.dumps(document, indent=2))
        return 0
    print(f"student: {args.student}; fused by ORT's BERT optimiser: {found['fused']}")
    print(f"size fp32/int8: {document['size_ratio']:.2f}x ({sizes['fp32']:,} -> {sizes['int8']:,} bytes)")
    print(f"input: {document['latency_input']}; {args.threads} thread(s)")
    for size, ratios in latency.items():
        for pair in [key for key in ratios if "/" in key]:
            print(f"latency {pair} at batch {size}: {describe(ratios[pair])}")
    print(f"dev {check['metric']} on {check['examples']} examples: fp32 {check['fp32']:.4f}, int8 {check['int8']:.4f}")
    if profile:
        print(f"operator time shares: {profile}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
