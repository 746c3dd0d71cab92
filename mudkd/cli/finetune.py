"""``mudkd finetune``: fine-tune the teacher (or any BERT-like classifier) on a task."""

from __future__ import annotations

from typing import Annotated

import typer

from mudkd.cli import common as c
from mudkd.recipe import build_recipe

EPILOG = """Examples:

  $ mudkd finetune --model-name-or-path bert-base-uncased --task-name sst-2 --data-dir glue/SST-2 -o models/teacher

  $ mudkd finetune recipes/glue_rosita.toml --set finetune.num_train_epochs=3

  $ mudkd finetune recipes/quickstart.toml --dry-run --json
"""


@c.report_errors
def finetune_cli(
    recipe: c.RecipeArg = None,
    model_name_or_path: Annotated[
        str | None, typer.Option("--model-name-or-path", help="Pretrained model (hub name or directory).")
    ] = None,
    task_name: c.TaskOpt = None,
    data_dir: c.DataDirOpt = None,
    max_seq_length: c.MaxSeqOpt = None,
    max_train_samples: c.MaxTrainOpt = None,
    max_eval_samples: c.MaxEvalOpt = None,
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
    """Fine-tune a pretrained BERT on a task, keeping the best checkpoint on dev.

    The result is a save_pretrained directory (model + tokenizer) with metrics.json, metrics.jsonl and the
    resolved recipe. Training uses the transformers Trainer, so `accelerate launch` / `torchrun` scale it out.
    """
    flags = {
        "teacher.pretrained": model_name_or_path,
        **c.data_flags(task_name, data_dir, max_seq_length, max_train_samples, max_eval_samples),
        **c.training_flags(
            "finetune",
            train_batch_size=train_batch_size,
            learning_rate=learning_rate,
            num_train_epochs=num_train_epochs,
            max_steps=max_steps,
            eval_step=eval_step,
            warmup_proportion=warmup_proportion,
            output_dir=output_dir,
        ),
        **c.run_flags(seed, device, overwrite),
    }
    resolved = build_recipe(recipe, flags=flags, sets=set_)
    from mudkd.core import finetune

    if dry_run:
        c.render_plan(finetune.plan(resolved), json_)
        return
    c.quiet_libraries()
    result = finetune.run(resolved, events=c.make_events(json_), resume=resume)
    c.render_result("finetune", result, json_)
