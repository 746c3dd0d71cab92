"""Facts about models read from disk without loading weights: configs, tokenizer agreement, weight fingerprints.

Plans and budget checks need a model's shape before anything heavy runs; the store needs a fingerprint of the
teacher's weights. Both live here, beneath the stages that use them (distill, cache, sweep, pipeline).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mudkd.core.data import tokenizer_fingerprint
from mudkd.core.store import fingerprint_files
from mudkd.errors import CheckpointError
from mudkd.knowledge.shapes import ModelShape, model_shape


def read_config(path: str | None, role: str) -> dict[str, Any]:
    """A model's ``config.json`` as a dict, without loading weights (for plans and budget checks)."""
    if not path:
        raise CheckpointError(f"no {role} model given", hint=f"pass --{role}-model DIR")
    config_file = Path(path) / "config.json"
    if not Path(path).exists() and path.count("/") == 1 and not path.startswith((".", "~")):
        return _hub_config(path, role)  # a hub name such as huawei-noah/TinyBERT_General_4L_312D
    if not config_file.is_file():
        raise CheckpointError(
            f"{path}: {role} is not a model directory (no config.json)",
            hint="pass a directory written by save_pretrained (mudkd finetune / prune / distill)",
        )
    try:
        return json.loads(config_file.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{config_file}: malformed config.json ({error})") from None


def read_shape(path: str | None, role: str) -> ModelShape:
    """A model's depth, width and label count from its config, without loading weights (see
    :mod:`mudkd.knowledge.shapes` for the rules)."""
    return model_shape(read_config(path, role), f"{path} ({role})")


def _hub_config(name: str, role: str) -> dict[str, Any]:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(name).to_dict()
    except (OSError, ValueError) as error:
        raise CheckpointError(
            f"{name}: {role} model not found locally or on the hub ({str(error).splitlines()[0][:120]})",
            hint="check the name and your network, or pass a local directory",
        ) from None


def check_same_tokenizer(teacher_tokenizer: Any, student_tokenizer: Any) -> None:
    """Teacher and student must split text identically: the HSK is compared token by token."""
    if tokenizer_fingerprint(teacher_tokenizer) != tokenizer_fingerprint(student_tokenizer):
        raise CheckpointError(
            f"teacher and student use different tokenizers (vocabularies of {len(teacher_tokenizer)} and "
            f"{len(student_tokenizer)} tokens)",
            hint="distil into a student built from the teacher (mudkd prune) or one with the same vocabulary",
        )


def teacher_fingerprint(teacher_path: str) -> str:
    """A hash of the teacher's weight files (and config), streamed from disk."""
    directory = Path(teacher_path)
    files = sorted(p for p in directory.iterdir() if p.suffix in {".safetensors", ".bin"} or p.name == "config.json")
    return fingerprint_files(files)
