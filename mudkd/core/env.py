"""``mudkd env``: what a bug report needs to know about this machine's mudkd, Python, libraries and device.

Imports torch and transformers at the top: only ``mudkd env`` imports this module, and it reports both.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

import torch
import transformers

import mudkd

#: Optional packages whose version matters to a run (None in the report when not installed).
OPTIONAL = ("onnxruntime", "onnx", "huggingface_hub", "datasets", "accelerate")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def describe_environment() -> dict[str, Any]:
    """mudkd, Python, platform, torch, transformers (and optional packages), the device and CPU threads."""
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    return {
        "mudkd": mudkd.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        **{package: _version(package) for package in OPTIONAL},
        "device": "cuda" if cuda else "mps" if mps else "cpu",
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "hf_hub_offline": os.environ.get("HF_HUB_OFFLINE"),
    }
