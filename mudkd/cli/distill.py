"""``mudkd distill hsk | pred | cache``: knowledge distillation, online or from a teacher-free store."""

from __future__ import annotations

import typer

from mudkd.cli import options as o
from mudkd.cli.stage import build, run_stage

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

HskStoreOpt = o.keyed(str | None, "hsk.hsk_store", "--hsk-store", note="The teacher is never loaded.")
LogitsStoreOpt = o.keyed(str | None, "pred.logits_store", "--logits-store", note="The teacher is never loaded.")
DtypeOpt = o.choice("cache.dtype", "--dtype")
TeacherBatchOpt = o.keyed(int | None, "cache.batch_size", "--teacher-batch-size")
TeacherBatchAliasOpt = o.keyed(int | None, "cache.batch_size", "--batch-size", hidden=True)  # the old spelling


@distill_app.command("hsk", epilog=HSK_EPILOG)
def hsk_cli(
    recipe: o.RecipeArg = None,
    teacher_model: o.TeacherOpt = None,
    student_model: o.StudentOpt = None,
    hsk_store: HskStoreOpt = None,
    task_name: o.TaskOpt = None,
    data_dir: o.DataDirOpt = None,
    train_file: o.TrainFileOpt = None,
    validation_file: o.ValidationFileOpt = None,
    text_columns: o.TextColumnsOpt = None,
    label_column: o.LabelColumnOpt = None,
    max_seq_length: o.MaxSeqOpt = None,
    max_train_samples: o.MaxTrainOpt = None,
    max_eval_samples: o.MaxEvalOpt = None,
    keep_layers: o.KeepLayersOpt = None,
    layer_scheme: o.LayerSchemeOpt = None,
    student_layers: o.StudentLayersOpt = None,
    teacher_layers: o.TeacherLayersOpt = None,
    keep_tokens: o.KeepTokensOpt = None,
    token_scheme: o.TokenSchemeOpt = None,
    att_ttop12: o.AttTtop12Opt = None,
    keep_hidden: o.KeepHiddenOpt = None,
    hidden_scheme: o.HiddenSchemeOpt = None,
    config_3d: o.Config3dOpt = None,
    mag_scope: o.MagScopeOpt = None,
    mask_mode: o.MaskModeOpt = None,
    train_batch_size: o.BatchOpt = None,
    learning_rate: o.LrOpt = None,
    num_train_epochs: o.EpochsOpt = None,
    max_steps: o.MaxStepsOpt = None,
    eval_step: o.EvalStepOpt = None,
    output_dir: o.OutputDirOpt = None,
    seed: o.SeedOpt = None,
    device: o.DeviceOpt = None,
    set_: o.SetOpt = None,
    dry_run: o.DryRunOpt = False,
    json_: o.JsonOpt = False,
    overwrite: o.OverwriteOpt = False,
    resume: o.ResumeOpt = False,
) -> None:
    """Distil the teacher's hidden-state knowledge (HSK) into the student under a knowledge budget.

    Depth (--layer-scheme, --keep-layers), length (--token-scheme, --keep-tokens) and width (--hidden-scheme,
    --keep-hidden) can be compressed alone or jointly (--config-3d). The budget table is printed first.
    """
    resolved = build(hsk_cli, locals(), stage="hsk")
    from mudkd.core.stages import distill

    run_stage("distill hsk", resolved, locals(), plan=distill.plan_hsk, run=distill.run_hsk)


@distill_app.command("pred", epilog=PRED_EPILOG)
def pred_cli(
    recipe: o.RecipeArg = None,
    teacher_model: o.TeacherOpt = None,
    student_model: o.StudentOpt = None,
    logits_store: LogitsStoreOpt = None,
    task_name: o.TaskOpt = None,
    data_dir: o.DataDirOpt = None,
    train_file: o.TrainFileOpt = None,
    validation_file: o.ValidationFileOpt = None,
    text_columns: o.TextColumnsOpt = None,
    label_column: o.LabelColumnOpt = None,
    max_seq_length: o.MaxSeqOpt = None,
    max_train_samples: o.MaxTrainOpt = None,
    max_eval_samples: o.MaxEvalOpt = None,
    temperature: o.TemperatureOpt = None,
    train_batch_size: o.BatchOpt = None,
    learning_rate: o.LrOpt = None,
    num_train_epochs: o.EpochsOpt = None,
    max_steps: o.MaxStepsOpt = None,
    eval_step: o.EvalStepOpt = None,
    warmup_proportion: o.WarmupOpt = None,
    output_dir: o.OutputDirOpt = None,
    seed: o.SeedOpt = None,
    device: o.DeviceOpt = None,
    set_: o.SetOpt = None,
    dry_run: o.DryRunOpt = False,
    json_: o.JsonOpt = False,
    overwrite: o.OverwriteOpt = False,
    resume: o.ResumeOpt = False,
) -> None:
    """Distil the teacher's predictions (soft cross-entropy at --temperature), keeping the best student on dev.

    Regression tasks (STS-B) train on the gold labels with MSE, as the reference does.
    """
    resolved = build(pred_cli, locals(), stage="pred")
    from mudkd.core.stages import distill

    run_stage("distill pred", resolved, locals(), plan=distill.plan_pred, run=distill.run_pred)


@distill_app.command("cache", epilog=CACHE_EPILOG)
def cache_cli(
    recipe: o.RecipeArg = None,
    teacher_model: o.TeacherOpt = None,
    student_model: o.StudentOpt = None,
    task_name: o.TaskOpt = None,
    data_dir: o.DataDirOpt = None,
    train_file: o.TrainFileOpt = None,
    validation_file: o.ValidationFileOpt = None,
    text_columns: o.TextColumnsOpt = None,
    label_column: o.LabelColumnOpt = None,
    max_seq_length: o.MaxSeqOpt = None,
    max_train_samples: o.MaxTrainOpt = None,
    keep_layers: o.KeepLayersOpt = None,
    layer_scheme: o.LayerSchemeOpt = None,
    student_layers: o.StudentLayersOpt = None,
    teacher_layers: o.TeacherLayersOpt = None,
    keep_tokens: o.KeepTokensOpt = None,
    token_scheme: o.TokenSchemeOpt = None,
    att_ttop12: o.AttTtop12Opt = None,
    keep_hidden: o.KeepHiddenOpt = None,
    hidden_scheme: o.HiddenSchemeOpt = None,
    config_3d: o.Config3dOpt = None,
    mask_mode: o.MaskModeOpt = None,
    dtype: DtypeOpt = None,
    teacher_batch_size: TeacherBatchOpt = None,
    batch_size: TeacherBatchAliasOpt = None,
    output_dir: o.OutputDirOpt = None,
    seed: o.SeedOpt = None,
    device: o.DeviceOpt = None,
    set_: o.SetOpt = None,
    dry_run: o.DryRunOpt = False,
    json_: o.JsonOpt = False,
    overwrite: o.OverwriteOpt = False,
    resume: o.ResumeOpt = False,
) -> None:
    """Run the teacher once and store its compressed HSK and logits for every training example.

    Students then train with --hsk-store / --logits-store without loading the teacher. A store built for a budget
    also serves smaller budgets of the same schemes.
    """
    resolved = build(cache_cli, locals(), stage="cache")
    from mudkd.core.stages import cache

    run_stage("distill cache", resolved, locals(), plan=cache.plan, run=cache.run)
