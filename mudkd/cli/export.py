"""``mudkd export`` (a student to ONNX) and ``mudkd report`` (its size, FLOPs and speed-up over the teacher)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mudkd.cli import common as c

EXPORT_EPILOG = """Examples:

  $ mudkd export --model-path models/student -o student.onnx

  $ mudkd export --model-path models/student --output student.onnx --opset 18 --overwrite --json
"""

REPORT_EPILOG = """Examples:

  $ mudkd report --model-path models/student

  $ mudkd report --model-path models/student --teacher-model models/teacher --seq-length 128

  $ mudkd report --model-path models/student --teacher-model models/teacher --batch-size 8 --json
"""

ModelPathOpt = Annotated[
    str, typer.Option("--model-path", help="Student directory (save_pretrained; BERT or pruned BERT).", show_default=False)
]
TrustRemoteCodeOpt = Annotated[
    bool,
    typer.Option("--trust-remote-code", help="Allow Python code shipped in a model directory to run (off: safer)."),
]


@c.report_errors
def export_cli(
    model_path: ModelPathOpt,
    output: Annotated[str, typer.Option("--output", "-o", help="The .onnx file to write.", show_default=False)],
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset (14-20).")] = 17,
    max_seq_length: Annotated[
        int, typer.Option("--max-seq-length", help="Length of the traced example (axes stay dynamic).")
    ] = 128,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")] = False,
    trust_remote_code: TrustRemoteCodeOpt = False,
    json_: c.JsonOpt = False,
) -> None:
    """Export a student to ONNX: input_ids, attention_mask, token_type_ids -> logits.

    Batch and sequence axes are dynamic. Before the file is written, onnxruntime must reproduce PyTorch's logits
    within 1e-4 on two other input shapes; the file is written atomically and never replaced without --overwrite.
    """
    from mudkd.core.export import export_onnx

    c.quiet_libraries()
    result = export_onnx(
        model_path,
        output,
        opset=opset,
        max_seq_length=max_seq_length,
        overwrite=overwrite,
        trust_remote_code=trust_remote_code,
    )
    if json_:
        c.emit_json(result)
        return
    rows = [(key, value) for key, value in result.items() if key != "check_shapes"]
    rows.append(("checked shapes", ", ".join(f"{b}x{s}" for b, s in result["check_shapes"]) or "not checked"))
    c.print_table("export: done", rows)


@c.report_errors
def report_cli(
    model_path: ModelPathOpt,
    teacher_model: c.TeacherOpt = None,
    seq_length: Annotated[int, typer.Option("--seq-length", help="Tokens per example (FLOPs and latency).")] = 64,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Examples per timed forward pass.")] = 32,
    repeats: Annotated[int, typer.Option("--repeats", help="Timed forward passes per model.")] = 10,
    trust_remote_code: TrustRemoteCodeOpt = False,
    json_: c.JsonOpt = False,
) -> None:
    """Report a student's parameters, weight size and FLOPs, and its CPU speed-up over a teacher.

    With --teacher-model both models are timed side by side in this process (warm-up, interleaved repetitions,
    medians) and the speed-up is given as the ratio teacher/student, which depends far less on the machine than
    the absolute times do.
    """
    from mudkd.core.export import report

    c.quiet_libraries()
    result = report(
        model_path,
        teacher_path=teacher_model,
        seq_length=seq_length,
        batch_size=batch_size,
        repeats=repeats,
        trust_remote_code=trust_remote_code,
    )
    if json_:
        c.emit_json(result)
        return
    _print_report(result)


def _print_report(result: dict[str, Any]) -> None:
    """One table: a column per model (teacher first when present) and the teacher/student ratio."""
    from rich.table import Table

    teacher = result["teacher"]
    table = Table(title=f"report: FLOPs per example at {result['seq_length']} tokens", title_justify="left")
    table.add_column("", style="bold")
    if teacher:
        table.add_column("teacher", justify="right")
    table.add_column("student", justify="right")
    if teacher:
        table.add_column("teacher/student", justify="right")

    def row(label: str, student: Any, teacher_value: Any = None, ratio: Any = None) -> None:
        cells = [c.format_value(student)]
        if teacher:
            cells = [c.format_value(teacher_value), *cells, f"{ratio:.2f}x" if ratio is not None else "-"]
        table.add_row(label, *cells)

    def ratio(first: Any, second: Any) -> float | None:
        return first / second if first and second else None

    other = teacher or {"params": {}, "flops": {}}
    row("model", result["model_path"], other.get("model_path"))
    row("layers", result["num_layers"], other.get("num_layers"))
    for key in ("total", "embeddings", "encoder", "pooler", "classifier"):
        row(f"params {key}", result["params"][key], other["params"].get(key), ratio(other["params"].get(key), result["params"][key]))
    size = result["size_bytes"]
    row("weights on disk (MB)", size / 1e6 if size else "-", (other.get("size_bytes") or 0) / 1e6 or "-", result["size_ratio"])
    for key in ("total", "embeddings", "attention", "ffn"):
        row(f"GFLOPs {key}", result["flops"][key] / 1e9, other["flops"].get(key, 0) / 1e9, ratio(other["flops"].get(key), result["flops"][key]))
    latency = result["latency"]
    if latency:
        row(
            "latency median ms",
            latency["student_median_ms"],
            latency["teacher_median_ms"],
            result["latency_ratio"],
        )
    if latency:
        table.caption = (
            f"latency: {latency['repeats']} interleaved repeats of {latency['batch_size']} x {latency['seq_length']}"
            f" tokens on {latency['threads']} CPU threads; compare the ratio, not the absolute times"
        )
    c.stdout_console().print(table)
