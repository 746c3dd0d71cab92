"""Builders shared by the tests: tiny BERTs from a config, their tokenizer, small data files."""

from __future__ import annotations

import string
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_GLUE = REPO_ROOT.parent / "shared" / "data" / "glue"

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


def make_teacher_and_student(root: Path) -> Path:
    """A tiny teacher (3 layers, hidden 32) in ``root/teacher`` and its ROSITA-style pruned student (2 layers,
    2 heads, FFN 32, embedding rank 16, from fixed random scores) in ``root/student``."""
    import torch
    from transformers import AutoTokenizer

    from mudkd.core.pruning import TaylorScores, prune_bert, save_pruned

    teacher = make_tiny_bert(root / "teacher", layers=3, seed=1)
    generator = torch.Generator().manual_seed(0)
    scores = TaylorScores(
        [torch.rand(4, generator=generator) for _ in range(3)],
        [torch.rand(64, generator=generator) for _ in range(3)],
        num_batches=1,
        num_examples=1,
        head_size=8,
        hidden_size=32,
    )
    student = prune_bert(teacher, scores, keep_heads=2, num_layers=2, ffn_hidden_dim=32, emb_hidden_dim=16)
    save_pruned(student, AutoTokenizer.from_pretrained(root / "teacher"), root / "student")
    return root
