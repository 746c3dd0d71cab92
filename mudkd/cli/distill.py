"""``mudkd distill hsk | pred | cache``: knowledge distillation, online or from a teacher-free store."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mudkd.cli import common as c
from mudkd.recipe import build_recipe

distill_app = typer.Typer(
    help="Distil a teacher into a student: hidden-state knowledge (hsk), predictions (pred), or store it (cache).",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

HSK_EPILOG = """Examples:

  $ mudkd distill hsk --teacher-model models/teacher --student-model models/pruned --task-name sst-2 --data-dir glue/SST-2 --layer-scheme t_top10 -o models/hsk

  $ mudkd distill hsk recipes/glue_rosita_3d.toml --config-3d 1l_10t_0.1h --dry-run

  $ mudkd distill hsk --hsk-store stores/sst2 --student-model models/pruned --task-name sst-2 --data-dir glue/SST-2 -o models/hsk
"""
PRED_EPILOG = """Examples:

  $ mudkd distill pred --teacher-model models/teacher --student-model models/hsk --task-name sst-2 --data-dir glue/SST-2 -o models/final

  $ mudkd distill pred --logits-store stores/sst2 --student-model models/hsk --task-name sst-2 --data-dir glue/SST-2 -o models/final
"""
CACHE_EPILOG = """Examples:

  $ mudkd distill cache --teacher-model models/teacher --student-model models/pruned --task-name sst-2 --data-dir glue/SST-2 --config-3d 1l_10t_0.1h -o stores/sst2

  $ mudkd distill cache recipes/quickstart.toml --dry-run
"""

KeepLayersOpt = Annotated[
    int | None,
    typer.Option("--keep-layers", help="K: top student layers with HSK (embeddings count).", rich_help_panel="Budget"),
]
LayerSchemeOpt = Annotated[
    str | None,
    typer.Option("--layer-scheme", help="Depth mapping t_topN (t_top8/10/12 in the paper).", rich_help_panel="Budget"),
]
StudentLayersOpt = Annotated[
    str | None, typer.Option("--student-layers", help="Explicit student layers, e.g. 0,3,6.", rich_help_panel="Budget")
]
TeacherLayersOpt = Annotated[
    str | None, typer.Option("--teacher-layers", help="Explicit teacher layers, e.g. 0,6,12.", rich_help_panel="Budget")
]
KeepTokensOpt = Annotated[
    int | None, typer.Option("--keep-tokens", help="k: tokens per example with HSK.", rich_help_panel="Budget")
]
TokenSchemeOpt = Annotated[
    str | None,
    typer.Option("--token-scheme", help="left_first | attention | attention_no_sep.", rich_help_panel="Budget"),
]
AttOpt = Annotated[
    str | None,
    typer.Option(
        "--att-ttop12",
        help="true|false: rank tokens with the g(l; teacher depth) layer's attention.",
        rich_help_panel="Budget",
    ),
]
KeepHiddenOpt = Annotated[
    float | None,
    typer.Option("--keep-hidden", help="rho: kept fraction of the width, in (0, 1].", rich_help_panel="Budget"),
]
HiddenSchemeOpt = Annotated[
    str | None,
    typer.Option(
        "--hidden-scheme", help="rand_mask | uniform_mask | importance_mask_dynamic.", rich_help_panel="Budget"
    ),
]
Config3dOpt = Annotated[
    str | None, typer.Option("--config-3d", help="K, k and rho at once: 1l_10t_0.1h.", rich_help_panel="Budget")
]
MagScopeOpt = Annotated[
    str | None, typer.Option("--mag-scope", help="example (storable) | batch (reference).", rich_help_panel="Budget")
]
MaskModeOpt = Annotated[
    str | None, typer.Option("--mask-mode", help="both | teacher_only (reference).", rich_help_panel="Budget")
]


def _int_list(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        from mudkd.errors import RecipeError

        raise RecipeError(f"'{text}' is not a comma-separated list of layer numbers", hint="e.g. 0,3,6") from None


def _bool(text: str | None) -> bool | None:
    if text is None:
        return None
    lowered = text.lower()
    if lowered not in {"true", "false", "1", "0", "yes", "no"}:
        from mudkd.errors import RecipeError

        raise RecipeError(f"--att-ttop12 takes true or false (got '{text}')")
    return lowered in {"true", "1", "yes"}


def budget_flags(**values: Any) -> dict[str, Any]:
    """Dotted ``hsk.*`` recipe keys from the budget flags."""
    values["student_layers"] = _int_list(values["student_layers"])
    values["teacher_layers"] = _int_list(values["teacher_layers"])
    values["att_ttop12"] = _bool(values["att_ttop12"])
    return {f"hsk.{name}": value for name, value in values.items()}


def render_budget(budget: dict[str, Any]) -> None:
    """The knowledge-budget table: layer pairs, tokens, width, elements, fraction of full HSK and bytes."""
    from rich.table import Table

    table = Table(title="Knowledge budget", title_justify="left")
    for column in ("student layer", "teacher layer", "ranking attention (layer)"):
        table.add_column(column, justify="right")
    for layer in budget["layers"]:
        table.add_row(str(layer["student"]), str(layer["teacher"]), str(layer["attention"] + 1))
    c.stdout_console().print(table)
    width = budget.get("kept_width")
    rows = [
        ("tokens kept", f"{budget['keep_tokens']} of {budget['max_seq_length']} ({budget['token_scheme']})"),
        (
            "width kept",
            f"{budget['keep_hidden']:.3g} ({budget['hidden_scheme']}"
            + (f", {width} dims)" if width else ", per-example top values)"),
        ),
        ("HSK elements per example", budget["elements_per_example"]),
        ("fraction of full HSK", f"{budget['hsk_fraction']:.4%}"),
        (
            f"bytes per example stored ({budget.get('value_dtype', 'float16')} + indices + logits)",
            budget["bytes_per_example"],
        ),
    ]
    if budget.get("train_set_bytes"):
        rows.append(
            (f"store for {budget['num_train_examples']:,} training examples", _human(budget["train_set_bytes"]))
        )
    c.print_table("Budget summary", rows)


def _human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000:
            return f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} PB"


def _finish(stage: str, plan_or_result: Any, json_mode: bool, dry_run: bool) -> None:
    if dry_run:
        if json_mode:
            c.emit_json({"dry_run": True, **plan_or_result})
            return
        if "budget" in plan_or_result:
            render_budget(plan_or_result["budget"])
        c.render_plan({k: v for k, v in plan_or_result.items() if k != "budget"}, False)
        return
    if not json_mode and "budget" in plan_or_result.details:
        render_budget(plan_or_result.details["budget"])
    c.render_result(stage, plan_or_result, json_mode)


def _common_flags(
    teacher_model: str | None,
    student_model: str | None,
    task_name: str | None,
    data_dir: str | None,
    max_seq_length: int | None,
    max_train_samples: int | None,
    max_eval_samples: int | None,
    seed: int | None,
    device: str | None,
    overwrite: bool,
) -> dict[str, Any]:
    return {
        "teacher.model": teacher_model,
        "student.model": student_model,
        **c.data_flags(task_name, data_dir, max_seq_length, max_train_samples, max_eval_samples),
        **c.run_flags(seed, device, overwrite),
    }


@distill_app.command("hsk", epilog=HSK_EPILOG)
@c.report_errors
def hsk_cli(
    recipe: c.RecipeArg = None,
    teacher_model: c.TeacherOpt = None,
    student_model: c.StudentOpt = None,
    hsk_store: Annotated[
        str | None, typer.Option("--hsk-store", help="Train from this store; the teacher is never loaded.")
    ] = None,
    task_name: c.TaskOpt = None,
    data_dir: c.DataDirOpt = None,
    max_seq_length: c.MaxSeqOpt = None,
    max_train_samples: c.MaxTrainOpt = None,
    max_eval_samples: c.MaxEvalOpt = None,
    keep_layers: KeepLayersOpt = None,
    layer_scheme: LayerSchemeOpt = None,
    student_layers: StudentLayersOpt = None,
    teacher_layers: TeacherLayersOpt = None,
    keep_tokens: KeepTokensOpt = None,
    token_scheme: TokenSchemeOpt = None,
    att_ttop12: AttOpt = None,
    keep_hidden: KeepHiddenOpt = None,
    hidden_scheme: HiddenSchemeOpt = None,
    config_3d: Config3dOpt = None,
    mag_scope: MagScopeOpt = None,
    mask_mode: MaskModeOpt = None,
    train_batch_size: c.BatchOpt = None,
    learning_rate: c.LrOpt = None,
    num_train_epochs: c.EpochsOpt = None,
    max_steps: c.MaxStepsOpt = None,
    eval_step: c.EvalStepOpt = None,
    output_dir: c.OutputDirOpt = None,
    seed: c.SeedOpt = None,
    device: c.DeviceOpt = None,
    set_: c.SetOpt = None,
    dry_run: c.DryRunOpt = False,
    json_: c.JsonOpt = False,
    overwrite: c.OverwriteOpt = False,
    resume: c.ResumeOpt = False,
) -> None:
    """Distil the teacher's hidden-state knowledge (HSK) into the student under a knowledge budget.

    Depth (--layer-scheme, --keep-layers), length (--token-scheme, --keep-tokens) and width (--hidden-scheme,
    --keep-hidden) can be compressed alone or jointly (--config-3d). The budget table is printed first.
    """
    flags = {
        **_common_flags(
            teacher_model,
            student_model,
            task_name,
            data_dir,
            max_seq_length,
            max_train_samples,
            max_eval_samples,
            seed,
            device,
            overwrite,
        ),
        **budget_flags(
            keep_layers=keep_layers,
            layer_scheme=layer_scheme,
            student_layers=student_layers,
            teacher_layers=teacher_layers,
            keep_tokens=keep_tokens,
            token_scheme=token_scheme,
            att_ttop12=att_ttop12,
            keep_hidden=keep_hidden,
            hidden_scheme=hidden_scheme,
            config_3d=config_3d,
            mag_scope=mag_scope,
            mask_mode=mask_mode,
        ),
        **c.training_flags(
            "hsk",
            train_batch_size=train_batch_size,
            learning_rate=learning_rate,
            num_train_epochs=num_train_epochs,
            max_steps=max_steps,
            eval_step=eval_step,
            output_dir=output_dir,
            hsk_store=hsk_store,
        ),
    }
    resolved = build_recipe(recipe, flags=flags, sets=set_)
    from mudkd.core import distill

    plan = distill.plan_hsk(resolved)
    if dry_run:
        _finish("distill hsk", plan, json_, True)
        return
    if not json_:
        render_budget(plan["budget"])
    c.quiet_libraries()
    result = distill.run_hsk(resolved, events=c.make_events(json_), resume=resume)
    c.render_result("distill hsk", result, json_)


@distill_app.command("pred", epilog=PRED_EPILOG)
@c.report_errors
def pred_cli(
    recipe: c.RecipeArg = None,
    teacher_model: c.TeacherOpt = None,
    student_model: c.StudentOpt = None,
    logits_store: Annotated[
        str | None,
        typer.Option("--logits-store", help="Train from stored teacher logits; the teacher is never loaded."),
    ] = None,
    task_name: c.TaskOpt = None,
    data_dir: c.DataDirOpt = None,
    max_seq_length: c.MaxSeqOpt = None,
    max_train_samples: c.MaxTrainOpt = None,
    max_eval_samples: c.MaxEvalOpt = None,
    temperature: Annotated[float | None, typer.Option("--temperature", help="Softmax temperature.")] = None,
    train_batch_size: c.BatchOpt = None,
    learning_rate: c.LrOpt = None,
    num_train_epochs: c.EpochsOpt = None,
    max_steps: c.MaxStepsOpt = None,
    eval_step: c.EvalStepOpt = None,
    warmup_proportion: c.WarmupOpt = None,
    output_dir: c.OutputDirOpt = None,
    seed: c.SeedOpt = None,
    device: c.DeviceOpt = None,
    set_: c.SetOpt = None,
    dry_run: c.DryRunOpt = False,
    json_: c.JsonOpt = False,
    overwrite: c.OverwriteOpt = False,
    resume: c.ResumeOpt = False,
) -> None:
    """Distil the teacher's predictions (soft cross-entropy at --temperature), keeping the best student on dev.

    Regression tasks (STS-B) train on the gold labels with MSE, as the reference does.
    """
    flags = {
        **_common_flags(
            teacher_model,
            student_model,
            task_name,
            data_dir,
            max_seq_length,
            max_train_samples,
            max_eval_samples,
            seed,
            device,
            overwrite,
        ),
        **c.training_flags(
            "pred",
            train_batch_size=train_batch_size,
            learning_rate=learning_rate,
            num_train_epochs=num_train_epochs,
            max_steps=max_steps,
            eval_step=eval_step,
            warmup_proportion=warmup_proportion,
            output_dir=output_dir,
            temperature=temperature,
            logits_store=logits_store,
        ),
    }
    resolved = build_recipe(recipe, flags=flags, sets=set_)
    from mudkd.core import distill

    if dry_run:
        _finish("distill pred", distill.plan_pred(resolved), json_, True)
        return
    c.quiet_libraries()
    result = distill.run_pred(resolved, events=c.make_events(json_), resume=resume)
    c.render_result("distill pred", result, json_)


@distill_app.command("cache", epilog=CACHE_EPILOG)
@c.report_errors
def cache_cli(
    recipe: c.RecipeArg = None,
    teacher_model: c.TeacherOpt = None,
    student_model: c.StudentOpt = None,
    task_name: c.TaskOpt = None,
    data_dir: c.DataDirOpt = None,
    max_seq_length: c.MaxSeqOpt = None,
    max_train_samples: c.MaxTrainOpt = None,
    keep_layers: KeepLayersOpt = None,
    layer_scheme: LayerSchemeOpt = None,
    student_layers: StudentLayersOpt = None,
    teacher_layers: TeacherLayersOpt = None,
    keep_tokens: KeepTokensOpt = None,
    token_scheme: TokenSchemeOpt = None,
    att_ttop12: AttOpt = None,
    keep_hidden: KeepHiddenOpt = None,
    hidden_scheme: HiddenSchemeOpt = None,
    config_3d: Config3dOpt = None,
    mask_mode: MaskModeOpt = None,
    dtype: Annotated[str | None, typer.Option("--dtype", help="float16 (default) or float32 stored values.")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Teacher batch size.")] = None,
    output_dir: c.OutputDirOpt = None,
    seed: c.SeedOpt = None,
    device: c.DeviceOpt = None,
    set_: c.SetOpt = None,
    dry_run: c.DryRunOpt = False,
    json_: c.JsonOpt = False,
    overwrite: c.OverwriteOpt = False,
    resume: c.ResumeOpt = False,
) -> None:
    """Run the teacher once and store its compressed HSK and logits for every training example.

    Students then train with --hsk-store / --logits-store without loading the teacher. A store built for a budget
    also serves smaller budgets of the same schemes.
    """
    flags = {
        **_common_flags(
            teacher_model,
            student_model,
            task_name,
            data_dir,
            max_seq_length,
            max_train_samples,
            None,
            seed,
            device,
            overwrite,
        ),
        **budget_flags(
            keep_layers=keep_layers,
            layer_scheme=layer_scheme,
            student_layers=student_layers,
            teacher_layers=teacher_layers,
            keep_tokens=keep_tokens,
            token_scheme=token_scheme,
            att_ttop12=att_ttop12,
            keep_hidden=keep_hidden,
            hidden_scheme=hidden_scheme,
            config_3d=config_3d,
            mag_scope=None,
            mask_mode=mask_mode,
        ),
        "cache.output_dir": output_dir,
        "cache.dtype": dtype,
        "cache.batch_size": batch_size,
    }
    resolved = build_recipe(recipe, flags=flags, sets=set_)
    from mudkd.core import cache

    plan = cache.plan(resolved, resume=resume)
    if dry_run:
        _finish("distill cache", plan, json_, True)
        return
    if not json_:
        render_budget(plan["budget"])
    c.quiet_libraries()
    result = cache.run(resolved, events=c.make_events(json_), resume=resume)
    c.render_result("distill cache", result, json_)
