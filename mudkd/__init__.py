"""mudkd: small, fast BERTs by structured pruning and compressed hidden-state knowledge distillation.

Importing ``mudkd`` is cheap (no torch), yet once it is imported, pruned students load with
``AutoModelForSequenceClassification.from_pretrained(directory)``: the pruned-BERT classes are registered with the
transformers Auto classes (:func:`mudkd.core.modeling_pruned_bert.register`) as soon as ``transformers`` is
imported — right away if it already is, otherwise by a one-shot import hook.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

__version__ = "0.1.0"

_MODELING = "mudkd.core.modeling_pruned_bert"


def _register_pruned_bert(loaded: str) -> None:
    """Register the pruned-BERT classes once ``loaded`` (transformers or the modeling module) finished importing."""
    modeling = sys.modules.get(_MODELING)
    if loaded == "transformers" and modeling is not None and not hasattr(modeling, "register"):
        return  # the modeling module is mid-import (it imports transformers): fire when it finishes instead
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _RegisterOnImport)]
    try:
        from mudkd.core.modeling_pruned_bert import register

        register()
    except Exception:  # an import hook must never break the import it watches; entry points register anyway
        pass


class _RegisterOnImport(importlib.abc.MetaPathFinder):
    """Wraps the loader of ``transformers`` (and of the modeling module) to call :func:`_register_pruned_bert`."""

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name not in ("transformers", _MODELING):
            return None
        try:
            others = [finder for finder in sys.meta_path if finder is not self and hasattr(finder, "find_spec")]
            spec = next(filter(None, (finder.find_spec(name, path, target) for finder in others)), None)
            if spec is None or spec.loader is None:
                return None
            original = spec.loader.exec_module

            def exec_module(module: ModuleType) -> None:
                original(module)
                _register_pruned_bert(name)

            spec.loader.exec_module = exec_module
            return spec
        except Exception:  # fall back to the normal import machinery
            return None


if "transformers" in sys.modules:
    _register_pruned_bert("transformers")
elif not any(isinstance(finder, _RegisterOnImport) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterOnImport())
