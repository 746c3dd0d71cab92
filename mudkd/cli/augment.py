"""``mudkd augment``: a transfer set for distillation — augmented training examples and unlabelled text."""

from __future__ import annotations

from mudkd.cli import options as o
from mudkd.cli.stage import build, run_stage

EPILOG = """Examples:

  $ mudkd augment --teacher-model models/teacher --task-name sst-2 --data-dir glue/SST-2 -o augmented/sst2

  $ mudkd augment recipes/quickstart.toml --set augment.unlabeled_rest=true --num-per-example 0 -o transfer/rt

  $ mudkd augment --teacher-model models/teacher --task-name rte --data-dir RTE --mlm-model bert-base-uncased -o aug/rte
"""

POpt = o.keyed(float | None, "augment.p", "--p")
TopKOpt = o.keyed(int | None, "augment.top_k", "--top-k")
NumPerExampleOpt = o.keyed(int | None, "augment.num_per_example", "--num-per-example")
MlmModelOpt = o.keyed(str | None, "augment.mlm_model", "--mlm-model")
VectorsFileOpt = o.keyed(str | None, "augment.vectors_file", "--vectors-file")
UnlabeledFileOpt = o.keyed(
    str | None, "augment.unlabeled_file", "--unlabeled-file", note="(--text-columns names a column)"
)
AugmentOutputOpt = o.output_dir("augment.output_dir")


def augment_cli(
    recipe: o.RecipeArg = None,
    teacher_model: o.TeacherOpt = None,
    task_name: o.TaskOpt = None,
    data_dir: o.DataDirOpt = None,
    train_file: o.TrainFileOpt = None,
    validation_file: o.ValidationFileOpt = None,
    text_columns: o.TextColumnsOpt = None,
    label_column: o.LabelColumnOpt = None,
    max_train_samples: o.MaxTrainOpt = None,
    p: POpt = None,
    top_k: TopKOpt = None,
    num_per_example: NumPerExampleOpt = None,
    mlm_model: MlmModelOpt = None,
    vectors_file: VectorsFileOpt = None,
    unlabeled_file: UnlabeledFileOpt = None,
    output_dir: AugmentOutputOpt = None,
    seed: o.SeedOpt = None,
    device: o.DeviceOpt = None,
    set_: o.SetOpt = None,
    dry_run: o.DryRunOpt = False,
    json_: o.JsonOpt = False,
    overwrite: o.OverwriteOpt = False,
) -> None:
    """Write a transfer set: TinyBERT-style augmented copies of the training data, plus unlabelled text.

    Each word is replaced with probability --p by one of its --top-k candidates (a masked LM's predictions for
    single-piece words with --mlm-model, else its nearest GloVe neighbours); --num-per-example draws per example,
    duplicates dropped, deterministic by --seed. `distill cache` then labels the transfer set once with the
    teacher (--set augment.transfer_set=DIR), and `distill hsk`/`pred` train on the union from the store.
    """
    resolved = build(augment_cli, locals(), stage="augment")
    from mudkd.core.stages import augment

    run_stage("augment", resolved, locals(), plan=augment.plan, run=augment.run)
