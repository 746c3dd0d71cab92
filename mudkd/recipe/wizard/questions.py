"""The wizard's questions, declared as data, in the order they are asked.

Defaults, bounds and the options of choice questions come from the schema (:mod:`mudkd.recipe.wizard.fields`);
what stays here is the wizard's own: the wording, the sections, the explanations of each option, and defaults the
schema leaves unset (``None``: "the stage decides") but a new recipe needs, such as the pretrained teacher.

The defaults work together on a fresh clone, offline: the ``rt-snippets`` demo task, the MiniLM teacher an installed
package ships (:data:`mudkd.recipe.wizard.models.SUGGESTED_TEACHER`), a student pruned to the paper's fractions
of that teacher, the standard depth mapping ``t_top{teacher depth}``, and teacher-free training when the budget can
be stored (:func:`mudkd.recipe.wizard.checks.store_default`).
"""

from __future__ import annotations

from mudkd.knowledge import HiddenScheme, MagScope, TokenScheme
from mudkd.knowledge.schemes import layer_scheme_name
from mudkd.knowledge.tasks import GLUE, TASK_NAMES, TASK_TITLES
from mudkd.recipe.wizard.checks import (
    budget_mode,
    budget_mode_default,
    columns_ok,
    compresses_tokens,
    compresses_width,
    config_3d_ok,
    data_dir_ok,
    data_file_ok,
    default_output,
    emb_rank_ok,
    hidden_scheme_fits,
    is_custom,
    is_glue,
    is_pruned,
    keep_hidden_answer_ok,
    keep_layers_ok,
    keep_tokens_ok,
    layer_scheme_choice_ok,
    layer_scheme_ok,
    prune_emb_default,
    prune_ffn_default,
    prune_ffn_ok,
    prune_heads_default,
    prune_heads_ok,
    prune_layers_default,
    prune_layers_ok,
    required,
    store_default,
    student_model_ok,
    teacher_facts,
    teacher_ok,
    teacher_reference,
    uses_magnitude_mask,
)
from mudkd.recipe.wizard.fields import Answers, allowed_values, schema_default, schema_field, within
from mudkd.recipe.wizard.question import Choice, Question, titled_choices

TASK_CHOICES = titled_choices(TASK_TITLES, width=12, values=TASK_NAMES)

TASK_TYPE_CHOICES = titled_choices(
    {
        "classification": "labels are classes (accuracy; F1 for two classes)",
        "regression": "labels are numbers (Pearson / Spearman)",
    },
    width=16,
    values=allowed_values(schema_field("task.task_type").annotation),
)

TOKEN_SCHEME_CHOICES = titled_choices(
    {
        TokenScheme.ATTENTION_NO_SEP: "highest [CLS] attention, [SEP] excluded (the paper's best: [SEP] soaks up "
        "attention but carries little)",
        TokenScheme.ATTENTION: "highest [CLS] attention of the teacher, averaged over heads",
        TokenScheme.LEFT_FIRST: "the first k tokens ([CLS] included; padding if the text is shorter)",
    },
    width=18,
    values=TokenScheme,
)

MAG_SCOPE_CHOICES = titled_choices(
    {
        MagScope.EXAMPLE: "the largest values of each example on its own: exact, and can be stored (teacher-free)",
        MagScope.BATCH: "one threshold over the whole batch, as the reference does: cannot be stored",
    },
    width=9,
    values=MagScope,
)

HIDDEN_SCHEME_CHOICES = titled_choices(
    {
        HiddenScheme.IMPORTANCE_MASK_DYNAMIC: "Mag Mask: the largest-magnitude values of each example (the paper's "
        "best)",
        HiddenScheme.UNIFORM_MASK: "evenly spaced dimensions (every 1/rho-th), fixed",
        HiddenScheme.RAND_MASK: "a random subset of dimensions, fixed by the seed",
    },
    width=25,
    values=HiddenScheme,
)


#: The task the wizard suggests: the offline demo, which needs no data download (the schema's default is sst-2).
DEFAULT_TASK = "rt-snippets"


def other_layer_scheme_default(answers: Answers) -> str:
    """``t_top{L_T - 2}`` (t_top10 for BERT-base, as the paper favours), ``t_top6`` when the teacher is unknown."""
    teacher = teacher_facts(answers)
    return layer_scheme_name(max(1, teacher.layers - 2)) if teacher else layer_scheme_name(6)


def glue_dir(answers: Answers) -> str:
    """``glue_data/<GLUE folder of the task>`` (the default task's folder for a task outside GLUE)."""
    default_task = schema_default("task.name")
    return f"glue_data/{GLUE.get(answers.get('task.name', default_task), GLUE[default_task]).folder}"


QUESTIONS: tuple[Question, ...] = (
    # -- task -----------------------------------------------------------------------------------------------------
    Question(
        key="task.name",
        kind="select",
        message="Task?",
        section="Task",
        default=DEFAULT_TASK,
        choices=TASK_CHOICES,
    ),
    Question(
        key="task.data_dir",
        kind="text",
        message="GLUE task directory (TSV files)?",
        section="Task",
        default=glue_dir,
        validator=data_dir_ok,
        when=is_glue,
    ),
    Question(
        key="task.train_file",
        kind="text",
        message="Training file?",
        section="Task",
        default="data/train.csv",
        validator=data_file_ok,
        when=is_custom,
    ),
    Question(
        key="task.validation_file",
        kind="text",
        message="Dev file (same columns)?",
        section="Task",
        default="data/dev.csv",
        validator=data_file_ok,
        when=is_custom,
    ),
    Question(
        key="task.text_columns",
        kind="text",
        message="Text column(s), comma-separated (two for sentence pairs)?",
        section="Task",
        default=["sentence"],
        validator=columns_ok,
        when=is_custom,
        split=True,
    ),
    Question(
        key="task.label_column",
        kind="text",
        message="Label column?",
        section="Task",
        default=schema_default("task.label_column"),
        validator=required,
        when=is_custom,
    ),
    Question(
        key="task.task_type",
        kind="select",
        message="Labels are?",
        section="Task",
        default=schema_default("task.task_type"),
        choices=TASK_TYPE_CHOICES,
        when=is_custom,
    ),
    Question(
        key="task.max_seq_length",
        kind="int",
        message="Max sequence length (tokens per example)?",
        section="Task",
        default=schema_default("task.max_seq_length"),
        validator=within("task.max_seq_length"),
    ),
    Question(
        key="task.max_train_samples",
        kind="int",
        message="Train on the first N examples only (blank: all; e.g. 2000 for a quick try)?",
        section="Task",
        validator=within("task.max_train_samples"),
        optional=True,
    ),
    # -- teacher --------------------------------------------------------------------------------------------------
    Question(
        key="teacher.pretrained",
        kind="text",
        message="Pretrained teacher to fine-tune (package:NAME, directory or hub name)?",
        section="Teacher",
        default=lambda a: teacher_reference(a),
        validator=teacher_ok,
    ),
    # -- student --------------------------------------------------------------------------------------------------
    Question(
        key="student_kind",
        kind="select",
        message="Student?",
        section="Student",
        default=lambda a: "pretrained" if a.get("student.model") else "pruned",
        choices=(
            Choice(
                "pruned",
                "pruned      ROSITA-style: prune the fine-tuned teacher (fewer layers, heads, FFN neurons; "
                "low-rank word embedding)",
            ),
            Choice(
                "pretrained",
                "pretrained  TinyBERT-style: an existing smaller BERT, its hidden states projected to the "
                "teacher's width",
            ),
        ),
        help_key="student.model",
    ),
    Question(
        key="prune.num_layers",
        kind="int",
        message="Encoder layers to keep (the bottom N)?",
        section="Student",
        default=prune_layers_default,
        validator=prune_layers_ok,
        when=is_pruned,
    ),
    Question(
        key="prune.keep_heads",
        kind="int",
        message="Attention heads kept per layer?",
        section="Student",
        default=prune_heads_default,
        validator=prune_heads_ok,
        when=is_pruned,
    ),
    Question(
        key="prune.ffn_hidden_dim",
        kind="int",
        message="FFN neurons kept per layer?",
        section="Student",
        default=prune_ffn_default,
        validator=prune_ffn_ok,
        when=is_pruned,
    ),
    Question(
        key="prune.emb_hidden_dim",
        kind="int",
        message="Word-embedding rank (-1 keeps it whole)?",
        section="Student",
        default=prune_emb_default,
        validator=emb_rank_ok,
        when=is_pruned,
    ),
    Question(
        key="student.model",
        kind="text",
        message="Smaller BERT (directory or hub name)?",
        section="Student",
        default="huawei-noah/TinyBERT_General_4L_312D",
        validator=student_model_ok,
        when=lambda a: not is_pruned(a),
    ),
    # -- training -------------------------------------------------------------------------------------------------
    Question(
        key="finetune.num_train_epochs",
        kind="float",
        message="Epochs to fine-tune the teacher?",
        section="Training",
        default=schema_default("finetune.num_train_epochs"),
        validator=within("finetune.num_train_epochs"),
    ),
    Question(
        key="hsk.num_train_epochs",
        kind="float",
        message="Epochs of HSK distillation?",
        section="Training",
        default=schema_default("hsk.num_train_epochs"),
        validator=within("hsk.num_train_epochs"),
    ),
    Question(
        key="pred.num_train_epochs",
        kind="float",
        message="Epochs of prediction distillation?",
        section="Training",
        default=schema_default("pred.num_train_epochs"),
        validator=within("pred.num_train_epochs"),
    ),
    Question(
        key="batch_size",
        kind="int",
        message="Training batch size (every stage)?",
        section="Training",
        default=schema_default("finetune.train_batch_size"),
        validator=within("finetune.train_batch_size"),
        help_key="finetune.train_batch_size",
    ),
    # -- knowledge budget -----------------------------------------------------------------------------------------
    Question(
        key="budget_mode",
        kind="select",
        message="How much of the teacher's hidden-state knowledge (HSK) does the student learn from?",
        section="Knowledge budget",
        default=budget_mode_default,
        choices=(
            Choice("full", "full    all layers, tokens and hidden units (the paper's full-HSK baseline)"),
            Choice(
                "3d",
                "3d      one string {K}l_{k}t_{rho}h sets depth, length and width at once "
                "(1l_10t_0.1h: about 0.1% of HSK, on par with full HSK in the paper)",
            ),
            Choice("custom", "custom  choose each dimension: layers (depth), tokens (length), hidden units (width)"),
        ),
    ),
    Question(
        key="hsk.config_3d",
        kind="text",
        message="3D budget {layers}l_{tokens}t_{width}h?",
        section="Knowledge budget",
        default="1l_10t_0.1h",
        validator=config_3d_ok,
        when=lambda a: budget_mode(a) == "3d",
    ),
    Question(
        key="layer_scheme",
        kind="select",
        message="Depth mapping: which teacher layer does each student layer learn from?",
        section="Knowledge budget",
        default="standard",
        choices=(
            Choice(
                "standard",
                "standard  t_top<teacher depth>: student layer l learns teacher layer round(l*L_T/L_S); the top "
                "student layer learns the teacher's last, g(l, L_T)",
            ),
            Choice(
                "t_top10",
                "t_top10   the top student layer learns teacher layer 10 (the paper: more stable and effective "
                "than standard)",
            ),
            Choice("t_top8", "t_top8    the top student layer learns teacher layer 8 (the README's 3D setting)"),
            Choice("other", "other     type t_topN, N up to the teacher's depth"),
        ),
        validator=layer_scheme_choice_ok,
        when=lambda a: budget_mode(a) != "full",
        help_key="hsk.layer_scheme",
    ),
    Question(
        key="layer_scheme_other",
        kind="text",
        message="Depth scheme t_topN?",
        section="Knowledge budget",
        default=other_layer_scheme_default,
        validator=layer_scheme_ok,
        when=lambda a: budget_mode(a) != "full" and a.get("layer_scheme") == "other",
        help_key="hsk.layer_scheme",
    ),
    Question(
        key="hsk.keep_layers",
        kind="int",
        message="Top K student layers that get HSK (blank: all + embeddings)?",
        section="Knowledge budget",
        validator=keep_layers_ok,
        when=lambda a: budget_mode(a) == "custom",
        optional=True,
    ),
    Question(
        key="hsk.keep_tokens",
        kind="int",
        message="Tokens per example that get HSK (blank: all)?",
        section="Knowledge budget",
        validator=keep_tokens_ok,
        when=lambda a: budget_mode(a) == "custom",
        optional=True,
    ),
    Question(
        key="hsk.token_scheme",
        kind="select",
        message="Which tokens?",
        section="Knowledge budget",
        default=schema_default("hsk.token_scheme"),
        choices=TOKEN_SCHEME_CHOICES,
        when=compresses_tokens,
    ),
    Question(
        key="hsk.keep_hidden",
        kind="float",
        message="Fraction of the hidden width that gets HSK, in (0, 1]?",
        section="Knowledge budget",
        default=schema_default("hsk.keep_hidden"),
        validator=keep_hidden_answer_ok,
        when=lambda a: budget_mode(a) == "custom",
    ),
    Question(
        key="hsk.hidden_scheme",
        kind="select",
        message="Which hidden units?",
        section="Knowledge budget",
        default=schema_default("hsk.hidden_scheme"),
        choices=HIDDEN_SCHEME_CHOICES,
        validator=hidden_scheme_fits,
        when=compresses_width,
    ),
    Question(
        key="hsk.mag_scope",
        kind="select",
        message="Largest values per example or per batch?",
        section="Knowledge budget",
        default=schema_default("hsk.mag_scope"),
        choices=MAG_SCOPE_CHOICES,
        when=uses_magnitude_mask,
    ),
    # -- output ---------------------------------------------------------------------------------------------------
    Question(
        key="output.dir",
        kind="text",
        message="Output directory (one subdirectory per stage)?",
        section="Output",
        default=default_output,
        validator=required,
    ),
    Question(
        key="use_store",
        kind="confirm",
        message="Teacher-free: store the teacher's compressed HSK and logits once, then train the student "
        "without loading the teacher?",
        section="Output",
        default=store_default,
        help_key="hsk.hsk_store",
    ),
    Question(
        key="augment.enabled",
        kind="confirm",
        message="Feed the student: augment the training data (TinyBERT), label it once into the store, and train "
        "the HSK stage as long as the reference (epochs over the enlarged set)?",
        section="Output",
        default=False,
        when=lambda a: bool(a.get("use_store")),
    ),
)

QUESTION_KEYS = tuple(question.key for question in QUESTIONS)
#: The questions by answer key.
QUESTIONS_BY_KEY: dict[str, Question] = {question.key: question for question in QUESTIONS}
