"""Builders shared by the tests: tiny BERTs from a config, their tokenizer, small data files, CLI helpers."""

from __future__ import annotations

import itertools
import os
import string
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Hand-written synthetic GLUE-format files (SST-2, CoLA, RTE) in the repository: the fast suite needs nothing else.
FIXTURE_GLUE = REPO_ROOT / "tests" / "data" / "glue"
#: The real GLUE data of the development machine and CI, outside the repository; only ``shared_data`` tests use it.
SHARED_GLUE = REPO_ROOT.parent / "shared" / "data" / "glue"


def on_ci() -> bool:
    """Whether the suite runs under CI (``CI=true``, as ``.ci/run`` sets it)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def require_shared_glue() -> Path:
    """The real GLUE folder; without it a visible skip, or a failure under CI (where it must be present)."""
    if SHARED_GLUE.is_dir():
        return SHARED_GLUE
    message = f"needs the real GLUE data at {SHARED_GLUE} (../shared/data/glue next to the repository)"
    if on_ci():
        pytest.fail(f"{message}; CI=true, so missing shared data is an error, not a skip", pytrace=False)
    pytest.skip(f"shared_data: {message}")


def write_sst2_slice(folder: Path, train_rows: int = 64, dev_rows: int | None = 32) -> Path:
    """An SST-2 folder of ``train_rows`` training and ``dev_rows`` dev rows cycled from the fixture files.

    ``dev_rows=None`` writes no ``dev.tsv``. Returns ``folder``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in (("train", train_rows), ("dev", dev_rows)):
        if rows is None:
            continue
        header, *body = (FIXTURE_GLUE / "SST-2" / f"{split}.tsv").read_text().splitlines(keepends=True)
        (folder / f"{split}.tsv").write_text(header + "".join(itertools.islice(itertools.cycle(body), rows)))
    return folder


def snapshot(root: Path, *, ignore: tuple[str, ...] = ()) -> dict[str, tuple[int, int] | None]:
    """Every file (size, mtime) and directory under ``root``, except paths with a part named in ``ignore``."""
    return {
        str(p.relative_to(root)): ((p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else None)
        for p in sorted(root.rglob("*"))
        if not set(ignore) & set(p.relative_to(root).parts)
    }


def argv(*parts: object) -> list[str]:
    """Command-line words: a string is split on spaces, a list is taken as is, a path or number is one word."""
    words: list[str] = []
    for part in parts:
        if isinstance(part, str):
            words += part.split()
        elif isinstance(part, list | tuple):
            words += [str(word) for word in part]
        else:
            words.append(str(part))
    return words


_WORDS = (
    "the a an and or but not no is are was were be been it this that these those i you he she we they "
    "movie film story plot actor actors acting good great bad awful boring fun funny best worst love hate "
    "very really too so quite more most less some all any of in on at to for with from by as about "
    "there here what which who when where why how one two three man woman people time day year way "
    "make made see saw seen like liked just only also even still well much many can could would should"
).split()


def tiny_vocab() -> list[str]:
    """A small uncased WordPiece vocabulary: specials, common words, letters and their ``##`` pieces."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    return specials + sorted(set(_WORDS)) + chars + [f"##{c}" for c in string.ascii_lowercase + string.digits]


def save_tiny_tokenizer(directory: Path) -> None:
    """Write a BERT tokenizer with :func:`tiny_vocab` into ``directory``."""
    from transformers import BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocab_file = directory / "vocab.txt"
    vocab_file.write_text("\n".join(tiny_vocab()) + "\n")
    vocab = {token: index for index, token in enumerate(tiny_vocab())}
    BertTokenizerFast(vocab=vocab, do_lower_case=True).save_pretrained(directory)


def make_tiny_bert(
    directory: Path | None = None,
    *,
    num_labels: int = 2,
    layers: int = 2,
    hidden: int = 32,
    heads: int = 4,
    intermediate: int = 64,
    seed: int = 0,
):
    """A randomly initialised ``BertForSequenceClassification`` (2 layers, hidden 32 by default).

    If ``directory`` is given, the model and a matching tokenizer are saved there.
    """
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tiny_vocab()),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=128,
        num_labels=num_labels,
    )
    model = BertForSequenceClassification(config).eval()
    if directory is not None:
        model.save_pretrained(directory)
        save_tiny_tokenizer(directory)
    return model


def make_teacher_and_student(root: Path, *, layers: int = 3, seed: int = 1, score_dtype: str = "float32") -> Path:
    """A tiny teacher (``layers`` layers, hidden 32, initialised from ``seed``) in ``root/teacher`` and its
    ROSITA-style pruned student (2 layers, 2 heads, FFN 32, embedding rank 16, from fixed random scores drawn as
    ``score_dtype``) in ``root/student``."""
    import torch
    from transformers import AutoTokenizer

    from mudkd.core.pruning import TaylorScores, prune_bert, save_pruned

    teacher = make_tiny_bert(root / "teacher", layers=layers, seed=seed)
    generator = torch.Generator().manual_seed(0)
    scores = TaylorScores(
        [torch.rand(4, generator=generator, dtype=getattr(torch, score_dtype)) for _ in range(layers)],
        [torch.rand(64, generator=generator, dtype=getattr(torch, score_dtype)) for _ in range(layers)],
        num_batches=1,
        num_examples=1,
        head_size=8,
        hidden_size=32,
    )
    student = prune_bert(teacher, scores, keep_heads=2, num_layers=2, ffn_hidden_dim=32, emb_hidden_dim=16)
    save_pruned(student, AutoTokenizer.from_pretrained(root / "teacher"), root / "student")
    return root


def budget_of(
    *,
    num_student_layers: int,
    num_teacher_layers: int,
    teacher_hidden: int,
    max_seq_length: int,
    seed: int = 42,
    num_labels: int = 2,
    **settings: object,
):
    """:func:`mudkd.knowledge.resolve_budget` of shapes and ``[hsk]`` settings given as keywords.

    The settings are not validated by the schema (``HskConfig.model_construct``), so a test can hand
    resolve_budget the raw values it must refuse; unset settings take the schema's defaults.
    """
    from mudkd.knowledge import ModelShape, resolve_budget
    from mudkd.recipe.schema import HskConfig

    return resolve_budget(
        HskConfig.model_construct(**settings),
        student_layers=num_student_layers,
        teacher=ModelShape(layers=num_teacher_layers, hidden=teacher_hidden, num_labels=num_labels),
        max_seq_length=max_seq_length,
        seed=seed,
    )
