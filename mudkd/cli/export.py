"""``mudkd export`` (a student to ONNX) and ``mudkd report`` (its size, FLOPs and speed-up over the teacher)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import typer

from mudkd.cli import common as c
from mudkd.cli import options as o
from mudkd.core.measure import MEASURED, describe
from mudkd.errors import RecipeError
from mudkd.knowledge.summary import format_bytes

EXPORT_EPILOG = """Examples:

  $ mudkd export --student-model models/student -o student.onnx

  $ mudkd export recipes/quickstart.toml --student-model out/final --quantize dynamic -o student-int8.onnx

  $ mudkd export recipes/quickstart.toml --student-model out/final --quantize dynamic --output-dir ship/

  $ mudkd export recipes/quickstart.toml --student-model out/final --format torch --quantize dynamic --output-dir pt/
"""

REPORT_EPILOG = """Examples:

  $ mudkd report --student-model models/student

  $ mudkd report --student-model models/student --teacher-model models/teacher --task-name sst-2 --data-dir glue/SST-2

  $ mudkd report recipes/quickstart.toml --student-model models/student --teacher-model models/teacher --int8

  $ mudkd report --student-model models/student --teacher-model models/teacher --threads 1 --json
"""

TrustRemoteCodeOpt = Annotated[
    bool,
    typer.Option(
        "--trust-remote-code", metavar="", help="Allow Python code shipped in a model directory to run (off: safer)."
    ),
]


class Quantize(str, Enum):
    """``--quantize``: int8 weights, activations quantized per batch (``dynamic``), or fp32 (``none``)."""

    none = "none"
    dynamic = "dynamic"


class Backend(str, Enum):
    """``--format``: ONNX Runtime, or PyTorch (int8 only)."""

    onnx = "onnx"
    torch = "torch"


_INT8 = "Int8"
QuantizeOpt = Annotated[
    Quantize,
    typer.Option("--quantize", help="dynamic: int8 weights, checked against fp32 on dev first.", rich_help_panel=_INT8),
]
MaxMetricDropOpt = Annotated[
    float,
    typer.Option(
        "--max-metric-drop",
        help="Points of the dev metric the int8 model may lose; more is refused (exit 1, nothing written).",
        rich_help_panel=_INT8,
    ),
]


def export_cli(
    recipe: o.RecipeArg = None,
    student_model: o.StudentOpt = None,
    model_path: o.StudentAsModelPathOpt = None,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="The .onnx file to write.", show_default=False)
    ] = None,
    output_dir: o.ExportDirOpt = None,
    format_: Annotated[
        Backend, typer.Option("--format", help="onnx, or torch (int8 state dict + loader; needs --output-dir).")
    ] = Backend.onnx,
    quantize: QuantizeOpt = Quantize.none,
    max_metric_drop: MaxMetricDropOpt = 1.0,
    task_name: o.TaskOpt = None,
    data_dir: o.DataDirOpt = None,
    train_file: o.TrainFileOpt = None,
    validation_file: o.ValidationFileOpt = None,
    max_eval_samples: o.MaxEvalOpt = None,
    set_: o.SetOpt = None,
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset (14-20).")] = 17,
    max_seq_length: Annotated[
        int, typer.Option("--max-seq-length", help="Length of the traced example (axes stay dynamic).")
    ] = 128,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite", metavar="", help="Replace an existing output (only an ONNX file or a folder mudkd wrote)."
        ),
    ] = False,
    trust_remote_code: TrustRemoteCodeOpt = False,
    json_: o.JsonOpt = False,
) -> None:
    """Export a student to ONNX (input_ids, attention_mask, token_type_ids -> logits), optionally int8.

    Batch and sequence axes are dynamic. Before the file is written, onnxruntime must reproduce PyTorch's logits
    within 1e-4 on two other input shapes; with --quantize dynamic the int8 model must also keep the dev metric
    (within --max-metric-drop points) on the task's dev examples, given by a recipe, --task-name or the data
    options. --output-dir writes a folder with a model card, ready for 'mudkd push'. Outputs are written
    atomically and never replaced without --overwrite; --overwrite replaces only what mudkd exported, and the
    output may not be a link or sit inside --student-model.
    """
    c.quiet_libraries()
    _print_export(_export(_student(student_model, model_path), locals()), json_)


def _export(student: str, values: dict[str, Any]) -> dict[str, Any]:
    """Export to the file (``--output``) or the folder (``--output-dir``) the command's values name."""
    output, output_dir, backend = values["output"], values["output_dir"], values["format_"]
    if bool(output) == bool(output_dir):
        raise RecipeError("give exactly one of --output FILE.onnx and --output-dir DIR", hint="e.g. -o student.onnx")
    if backend is Backend.torch and not output_dir:
        raise RecipeError("--format torch writes a folder", hint="pass --output-dir DIR instead of --output")
    options = {name: values[name] for name in ("opset", "max_seq_length", "trust_remote_code", "max_metric_drop")}
    options |= {
        "quantize": values["quantize"].value,
        "task": _task(export_cli, values),
        "overwrite": values["overwrite"],
    }
    if output:
        from mudkd.core.stages.export import export_onnx

        return export_onnx(student, output, **options)
    from mudkd.cli.stage import build
    from mudkd.core.stages.ship import export_folder

    recipe = build(export_cli, values)
    return export_folder(student, output_dir, recipe=recipe, backend=backend.value, **options)


def _print_export(result: dict[str, Any], json_mode: bool) -> None:
    if json_mode:
        c.emit_json(result)
        return
    hidden = {"check_shapes", "quantization", "files"}
    rows = [(key, value) for key, value in result.items() if key not in hidden]
    if result.get("check_shapes") is not None:
        rows.append(("checked shapes", ", ".join(f"{b}x{s}" for b, s in result["check_shapes"]) or "not checked"))
    quantization = result.get("quantization")
    if quantization:
        from mudkd.core.quantize import describe_check

        fp32 = quantization.get("fp32_bytes")
        rows.append(("int8", f"{quantization['backend']} dynamic; {describe_check(quantization['check'])}"))
        if fp32:
            rows.append(("size fp32 -> int8", f"{format_bytes(fp32)} -> {format_bytes(result['bytes'])}"))
        if quantization.get("fused") is not None:
            fused = ", ".join(f"{name} {count}" for name, count in quantization["fused"].items()) or "nothing"
            rows.append(("fused by the optimiser", fused))
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
    int8: Annotated[
        bool,
        typer.Option(
            "--int8",
            metavar="",
            help="Add the int8 student (PyTorch dynamic): size, latency at batch 1 and 32, dev metric (needs data).",
            rich_help_panel=_INT8,
        ),
    ] = False,
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
    if int8:
        result["int8"] = _int8_columns(student, teacher_model, task, examples=examples, **timing)
    if json_:
        c.emit_json(result)
        return
    _print_report(result)


def _int8_columns(student: str, teacher: str | None, task: Any, **timing: Any) -> dict[str, Any]:
    """``report --int8``: teacher / student fp32 / student int8 on the task's dev data."""
    if task is None:
        raise RecipeError("--int8 measures the dev metric and real dev batches", hint="pass a recipe or --task-name")
    from mudkd.core.stages.ship import int8_report

    timing = {key: timing[key] for key in ("examples", "repeats", "threads")}  # batch sizes are 1 and 32
    return int8_report(student, teacher_path=teacher, task=task, **timing)


def _task(command: Any, values: dict[str, Any]) -> Any:
    """The recipe's task when data is given (a recipe, --task-name, --data-dir or a data file), else None."""
    given = ("task_name", "data_dir", "train_file", "validation_file")
    if values.get("recipe") is None and not any(values.get(name) for name in given):
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
        spread = result.get("latency_spread") or {}
        bound = f"{spread['bound'][0]} {spread['bound'][1]:.2f}x" if spread.get("bound") else None
        measured = spread.get("verdict") == MEASURED
        verdict = (
            f"{bound or format(result['latency_ratio'], '.2f') + 'x'} (below)" if measured else "not measurable (below)"
        )
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
    if result.get("int8"):
        _print_int8(result["int8"])


def _print_int8(int8: dict[str, Any]) -> None:
    """Teacher / student fp32 / student int8 side by side, then every latency ratio with its range."""
    from rich.table import Table

    columns = int8["columns"]
    names = [name for name in ("teacher", "student", "student_int8") if name in columns]
    titles = {"teacher": "teacher", "student": "student fp32", "student_int8": "student int8"}
    table = Table(title="report: int8 (PyTorch dynamic quantization)", title_justify="left", caption_justify="left")
    table.add_column("", style="bold")
    for name in names:
        table.add_column(titles[name], justify="right")
    table.add_row(
        "weights on disk", *(format_bytes(columns[n]["size_bytes"]) if columns[n]["size_bytes"] else "-" for n in names)
    )
    for size in ("1", "32"):
        table.add_row(f"latency batch {size} (median ms)", *(f"{columns[n]['latency_ms'][size]:.1f}" for n in names))
    table.add_row(f"dev {int8['metric']}", *(f"{columns[n]['metric']:.4f}" for n in names))
    ratios = [
        f"{pair} at batch {size}: {describe(spread)}"
        for size, pairs in int8["ratios"].items()
        for pair, spread in pairs.items()
    ]
    table.caption = f"input: {int8['input']}; {int8['threads']} CPU threads.\n" + "\n".join(ratios)
    c.stdout_console().print(table)


def _human(value: Any, unit: str = "") -> str:
    """A count: ``1234567`` -> ``1.23 M`` (decimal prefixes; bytes use format_bytes); None -> ``-``."""
    if value is None:
        return "-"
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:g} {unit}".rstrip()
