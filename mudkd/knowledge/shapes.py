"""The model facts a budget needs — depth, width and the number of teacher logits — read from a config dict.

A budget is resolved before any weights are loaded, from the teachers' and students' ``config.json``
(:func:`mudkd.core.models.read_config`) or from a store's metadata. The rules live here once:

* shape: ``num_hidden_layers`` and ``hidden_size`` of a BERT config;
* logits per example (:func:`config_num_labels`): transformers' own rule — ``PretrainedConfig.num_labels`` is
  ``len(id2label)`` — with an explicit ``num_labels`` key or the library default of 2 when a config has no
  ``id2label``. This is what ``mudkd distill cache`` stores beside the HSK, so every budget summary counts it;
* before the teacher is fine-tuned (the wizard, the pipeline's early check), :func:`task_num_labels` gives the
  number of labels fine-tuning will give it: one per class, 1 for a regression task (``mudkd finetune`` builds the
  teacher with ``num_labels = len(classes)``, or 1 for regression).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mudkd.errors import CheckpointError
from mudkd.knowledge.tasks import GLUE

#: transformers' default number of labels of a config that names none.
DEFAULT_NUM_LABELS = 2


@dataclass(frozen=True)
class ModelShape:
    """What a budget needs of one model.

    Attributes:
        layers: Transformer layers (``num_hidden_layers``); hidden states are ``layers + 1`` with the embeddings.
        hidden: Width (``hidden_size``).
        num_labels: Classifier outputs (see :func:`config_num_labels`).
    """

    layers: int
    hidden: int
    num_labels: int


def config_num_labels(config: Mapping[str, Any]) -> int:
    """Outputs of a classifier config: ``len(id2label)``, else ``num_labels``, else 2 (transformers' rule)."""
    id2label = config.get("id2label")
    if isinstance(id2label, Mapping) and id2label:
        return len(id2label)
    value = config.get("num_labels")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return DEFAULT_NUM_LABELS


def model_shape(config: Mapping[str, Any], where: str = "model") -> ModelShape:
    """The shape of a BERT-like model from its config dict.

    Args:
        config: ``config.json`` as a dict.
        where: The model (path or role) for the message.

    Raises:
        CheckpointError: The config lacks ``num_hidden_layers`` or ``hidden_size``, or they are not integers.
    """
    try:
        layers, hidden = config["num_hidden_layers"], config["hidden_size"]
    except KeyError as error:
        raise CheckpointError(
            f"{where}: config.json has no {error.args[0]}", hint="pass a BERT-like model (save_pretrained directory)"
        ) from None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (layers, hidden)):
        raise CheckpointError(f"{where}: config.json num_hidden_layers/hidden_size are not integers")
    return ModelShape(layers=layers, hidden=hidden, num_labels=config_num_labels(config))


def task_num_labels(task_name: str, task_type: str = "classification") -> int:
    """Outputs a teacher fine-tuned on a task will have: its classes, or 1 for regression.

    A custom classification task's classes are only known from its data; 2 is assumed.
    """
    if task_name in GLUE:
        return GLUE[task_name].num_labels
    return 1 if task_type == "regression" else DEFAULT_NUM_LABELS
