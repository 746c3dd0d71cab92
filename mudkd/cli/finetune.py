"""``mudkd finetune``: fine-tune the teacher (or any BERT-like classifier) on a task."""

from __future__ import annotations

from mudkd.cli import options as o
from mudkd.cli.stage import build, run_stage

EPILOG = """Examples:

  $ mudkd finetune --model-name-or-path bert-base-uncased --task-name sst-2 --data-dir glue/SST-2 -o models/teacher

  $ mudkd finetune --model-name-or-path MODEL --train-file train.csv --validation-file dev.csv --text-columns text -o t

  $ mudkd finetune recipes/glue_rosita.toml --set finetune.num_train_epochs=3

  $ mudkd finetune recipes/quickstart.toml --dry-run --json
"""


def finetune_cli(
    recipe: o.RecipeArg = None,
    model_name_or_path: o.PretrainedOpt = None,
    task_name: o.TaskOpt = None,
    data_dir: o.DataDirOpt = None,
    train_file: o.TrainFileOpt = None,
    validation_file: o.ValidationFileOpt = None,
    text_columns: o.TextColumnsOpt = None,
    label_column: o.LabelColumnOpt = None,
    max_seq_length: o.MaxSeqOpt = None,
    max_train_samples: o.MaxTrainOpt = None,
    max_eval_samples: o.MaxEvalOpt = None,
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
    """Fine-tune a pretrained BERT on a task, keeping the best checkpoint on dev.

    The result is a save_pretrained directory (model + tokenizer) with metrics.json, metrics.jsonl and the
    resolved recipe. Training uses the transformers Trainer, so `accelerate launch` / `torchrun` scale it out.
    """
    resolved = build(finetune_cli, locals(), stage="finetune")
    from mudkd.core.stages import finetune

    run_stage("finetune", resolved, locals(), plan=finetune.plan, run=finetune.run)
