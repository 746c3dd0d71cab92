"""``mudkd export`` (a student to ONNX) and ``mudkd report`` (its size, FLOPs and speed-up over the teacher)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mudkd.cli import common as c
from mudkd.cli import options as o
from mudkd.core.measure import MEASURED, describe
from mudkd.errors import RecipeError
from mudkd.knowledge.summary import format_bytes

EXPORT_EPILOG = """Examples:

  $ mudkd export --student-model models/student -o student.onnx

  $ mudkd export --student-model models/student --output student.onnx --opset 18 --overwrite --json
"""

REPORT_EPILOG = """Examples:

  $ mudkd report --student-model models/student

  $ mudkd report --student-model models/student --teacher-model models/teacher --task-name sst-2 --data-dir glue/SST-2

  $ mudkd report recipes/quickstart.toml --student-model models/student --teacher-model models/teacher

  $ mudkd report --student-model models/student --teacher-model models/teacher --threads 1 --json
"""

TrustRemoteCodeOpt = Annotated[
    bool,
    typer.Option("--trust-remote-code", help="Allow Python code shipped in a model directory to run (off: safer)."),
]


def export_cli(
    output: Annotated[str, typer.Option("--output", "-o", help="The .onnx file to write.", show_default=False)],
    student_model: o.StudentOpt = None,
    model_path: o.StudentAsModelPathOpt = None,
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset (14-20).")] = 17,
    max_seq_length: Annotated[
        int, typer.Option("--max-seq-length", help="Length of the traced example (axes stay dynamic).")
    ] = 128,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing output file (only an ONNX file mudkd exported).")
    ] = False,
    trust_remote_code: TrustRemoteCodeOpt = False,
    json_: o.JsonOpt = False,
) -> None:
    """Export a student to ONNX: input_ids, attention_mask, token_type_ids -> logits.

    Batch and sequence axes are dynamic. Before the file is written, onnxruntime must reproduce PyTorch's logits
    within 1e-4 on two other input shapes; the file is written atomically and never replaced without --overwrite.
    --overwrite replaces only an ONNX file mudkd exported; the output may not be a link or sit inside --model-path.
    """
    from mudkd.core.stages.export import export_onnx

    c.quiet_libraries()
    student = _student(student_model, model_path)
    options = {"opset": opset, "max_seq_length": max_seq_length, "trust_remote_code": trust_remote_code}
    _print_export(export_onnx(student, output, overwrite=overwrite, **options), json_)


def _print_export(result: dict[str, Any], json_mode: bool) -> None:
    if json_mode:
        c.emit_json(result)
        return
    rows = [(key, value) for key, value in result.items() if key != "check_shapes"]
    rows.append(("checked shapes", ", ".join(f"{b}x{s}" for b, s in result["check_shapes"]) or "not checked"))
    c.print_table("export: done", rows)


def report_cli(
    recipe: o.RecipeArg = None,
    student_model: o.StudentOpt = None,
    model_path: o.StudentAsModelPathOpt = None,
    teacher_model: o.TeacherOpt = None,
    task_name: o.TaskOpt = None,
    data_dir: o.DataDirOpt = None,
    set_: o.SetOpt = None,
    seq_length: Annotated[
        int, typer.Option("--seq-length", help="Tokens per synthetic example (when no data is given).")
    ] = 64,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Examples per timed forward pass.")] = 32,
    examples: Annotated[int, typer.Option("--examples", help="Dev examples timed per pass (with data).")] = 128,
    repeats: Annotated[int, typer.Option("--repeats", help="Timed passes per model (interleaved pairs).")] = 10,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            help="CPU threads while timing (default: torch's). 1 is steadiest on a busy machine.",
            show_default=False,
        ),
    ] = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
    json_: o.JsonOpt = False,
) -> None:
    """Report a student's parameters, weight size and FLOPs, and its CPU speed-up over a teacher.

    With --teacher-model both models are timed side by side in this process (warm-up, then interleaved pairs) and
    the speed-up is the median teacher/student ratio of the pairs with its range and the load average, or "not
    measurable on this machine now" when the pairs straddle 1.0. Given data (a recipe, --task-name or --data-dir),
    the timed input is dev batches padded to their own longest example and FLOPs are counted at the mean real
    length; otherwise a synthetic --seq-length batch, and the output says so.
    """
    from mudkd.core.stages.export import report

    c.quiet_libraries()
    timing = {"seq_length": seq_length, "batch_size": batch_size, "repeats": repeats, "threads": threads}
    student, task = _student(student_model, model_path), _task(report_cli, locals())
    result = report(
        student, teacher_path=teacher_model, task=task, examples=examples, **timing, trust_remote_code=trust_remote_code
    )
    if json_:
        c.emit_json(result)
        return
    _print_report(result)


def _task(command: Any, values: dict[str, Any]) -> Any:
    """The recipe's task when data is given (a recipe, --task-name or --data-dir), else None (synthetic input)."""
    if values.get("recipe") is None and not values.get("task_name") and not values.get("data_dir"):
        return None
    from mudkd.cli.stage import build

    return build(command, values).task


def _student(student_model: str | None, model_path: str | None) -> str:
    if not (student_model or model_path):
        raise RecipeError("no student given", hint="pass --student-model DIR (a save_pretrained directory)")
    return student_model or model_path  # type: ignore[return-value]


def _print_report(result: dict[str, Any]) -> None:
    """One table: a column per model (teacher first when present) and the teacher/student ratio."""
    from rich.table import Table

    teacher = result["teacher"]
    at = f"the mean real length, {result['seq_length']}" if result.get("mean_length") else result["seq_length"]
    table = Table(title=f"report: FLOPs per example at {at} tokens", title_justify="left")
    table.add_column("", style="bold")
    if teacher:
        table.add_column("teacher", justify="right")
    table.add_column("student", justify="right")
    if teacher:
        table.add_column("teacher/student", justify="right")

    def row(label: str, student: Any, teacher_value: Any = None, ratio: Any = None) -> None:
        cells = [c.format_value(student)]
        if teacher:
            shown = ratio if isinstance(ratio, str) else f"{ratio:.2f}x" if ratio is not None else "-"
            cells = [c.format_value(teacher_value), *cells, shown]
        table.add_row(label, *cells)

    def ratio(first: Any, second: Any) -> float | None:
        return first / second if first and second else None

    other = teacher or {"params": {}, "flops": {}}
    row("model", result["model_path"], other.get("model_path"))
    row("layers", result["num_layers"], other.get("num_layers"))
    for key in ("total", "embeddings", "encoder", "pooler", "classifier"):
        student, teacher_value = result["params"][key], other["params"].get(key)
        row(f"params {key}", _human(student), _human(teacher_value), ratio(teacher_value, student))
    size, teacher_size = result["size_bytes"], other.get("size_bytes")
    row(
        "weights on disk", format_bytes(size), format_bytes(teacher_size) if teacher_size else "-", result["size_ratio"]
    )
    for key in ("total", "embeddings", "attention", "ffn"):
        student, teacher_value = result["flops"][key], other["flops"].get(key)
        row(f"FLOPs {key}", _human(student), _human(teacher_value), ratio(teacher_value, student))
    latency = result["latency"]
    if latency:
        measured = (result.get("latency_spread") or {}).get("verdict") == MEASURED
        verdict = f"{result['latency_ratio']:.2f}x (below)" if measured else "not measurable (below)"
        row("latency median ms", latency["student_median_ms"], latency["teacher_median_ms"], verdict)
        table.caption = (
            f"input: {result['input']}. Latency: {latency['repeats']} interleaved passes per model on"
            f" {latency['threads']} CPU threads; compare the ratio, not the absolute times."
            f" Teacher/student: {describe(result.get('latency_spread'))}"
        )
        load, cores = latency.get("load_average"), latency.get("cpu_count")
        if load is not None and cores and load > cores and latency["threads"] > 1:
            c.info(f"Warning: load average {load:.1f} exceeds {cores} cores; --threads 1 gives a steadier ratio")
    else:
        table.caption = f"input: {result['input']}"
    c.stdout_console().print(table)


def _human(value: Any, unit: str = "") -> str:
    """A count: ``1234567`` -> ``1.23 M`` (decimal prefixes; bytes use format_bytes); None -> ``-``."""
    if value is None:
        return "-"
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:g} {unit}".rstrip()
