"""A BERT whose layers may have different head counts and FFN widths, and a factorised word embedding.

This is the ROSITA6-style student of the paper (method.md §6, §20): every encoder layer keeps its own number of
attention heads (each of the teacher's head size) and its own FFN width, and the word embedding may be factorised
as ``Embedding(V, r)`` followed by ``Linear(r, hidden, bias=False)``.

The module is SELF-CONTAINED: it imports only the standard library, torch and transformers, because a copy of it is
saved beside ``config.json`` in every student directory so that
``AutoModelForSequenceClassification.from_pretrained(directory, trust_remote_code=True)`` works where mudkd is not
installed. Module names and state-dict keys follow Hugging Face's BERT wherever the shapes allow, so a teacher's
state dict maps onto a student key by key.

Conventions kept from HF BERT: post-LayerNorm layers, exact GELU (``hidden_act`` via ``ACT2FN``), scaling
``1/sqrt(attention_head_size)``, classifier ``Linear(dropout(tanh(W_p h_[CLS] + b_p)))`` (no ReLU, method.md Q2),
and ``hidden_states`` = embedding output followed by each layer's output (L+1 tensors, method.md §2).
"""

from __future__ import annotations

import math
import shutil
import warnings
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, PretrainedConfig, PreTrainedModel
from transformers import initialization as hf_init
from transformers.activations import ACT2FN
from transformers.modeling_outputs import BaseModelOutputWithPooling, SequenceClassifierOutput

_MODULE_FILE_NAME = "modeling_pruned_bert.py"

AUTO_MAP = {
    "AutoConfig": "modeling_pruned_bert.PrunedBertConfig",
    "AutoModel": "modeling_pruned_bert.PrunedBertModel",
    "AutoModelForSequenceClassification": "modeling_pruned_bert.PrunedBertForSequenceClassification",
}


class PrunedBertConfig(PretrainedConfig):
    """Configuration of a BERT with per-layer head counts, per-layer FFN widths and a factorised word embedding.

    All ``BertConfig`` fields keep their meaning. ``num_attention_heads`` and ``intermediate_size`` are the uniform
    defaults used when the per-layer lists are not given; when the lists are given, they are set to the lists'
    maxima for tools that read them.

    Args:
        attention_head_size: Size of every attention head. Defaults to ``hidden_size // num_attention_heads``;
            a pruned student keeps its teacher's head size, whatever its head count.
        num_heads_per_layer: Heads of each layer, length ``num_hidden_layers``. A layer with 0 heads keeps only the
            attention-output bias, residual and LayerNorm, exactly like a teacher layer with all heads zeroed.
        intermediate_sizes: FFN width of each layer, length ``num_hidden_layers``.
        emb_hidden_dim: Rank ``r`` of the factorised word embedding, or -1 for an unfactorised ``Embedding(V, hidden)``.
    """

    model_type = "pruned_bert"

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int | None = 0
    classifier_dropout: float | None = None
    attention_head_size: int | None = None
    num_heads_per_layer: list[int] | None = None
    intermediate_sizes: list[int] | None = None
    emb_hidden_dim: int = -1
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.attention_head_size is None:
            self.attention_head_size = self.hidden_size // self.num_attention_heads
        if self.num_heads_per_layer is None:
            self.num_heads_per_layer = [self.num_attention_heads] * self.num_hidden_layers
        if self.intermediate_sizes is None:
            self.intermediate_sizes = [self.intermediate_size] * self.num_hidden_layers
        self.num_heads_per_layer = [int(heads) for heads in self.num_heads_per_layer]
        self.intermediate_sizes = [int(width) for width in self.intermediate_sizes]
        for name, values in (
            ("num_heads_per_layer", self.num_heads_per_layer),
            ("intermediate_sizes", self.intermediate_sizes),
        ):
            if len(values) != self.num_hidden_layers:
                raise ValueError(f"{name} has {len(values)} entries but num_hidden_layers is {self.num_hidden_layers}")
            if any(value < 0 for value in values):
                raise ValueError(f"{name} must not be negative (got {values})")
        if self.num_hidden_layers > 0:
            self.num_attention_heads = max(self.num_heads_per_layer)
            self.intermediate_size = max(self.intermediate_sizes)
        if self.emb_hidden_dim == 0 or self.emb_hidden_dim < -1:
            raise ValueError(f"emb_hidden_dim must be -1 (no factorisation) or >= 1 (got {self.emb_hidden_dim})")
        # Written into config.json so that trust_remote_code loading finds the classes in the copied module file.
        if getattr(self, "auto_map", None) is None:
            self.auto_map = dict(AUTO_MAP)


class PrunedBertEmbeddings(nn.Module):
    """Word (optionally factorised), position and token-type embeddings, then LayerNorm and dropout."""

    def __init__(self, config: PrunedBertConfig):
        super().__init__()
        factorised = config.emb_hidden_dim > 0
        word_dim = config.emb_hidden_dim if factorised else config.hidden_size
        self.word_embeddings = nn.Embedding(config.vocab_size, word_dim, padding_idx=config.pad_token_id)
        # E ≈ E1 @ Vh[:r]: the projection maps rank-r codes back to the hidden size (method.md §6 step 3).
        self.word_embeddings_proj = nn.Linear(word_dim, config.hidden_size, bias=False) if factorised else None
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.position_ids = nn.Buffer(torch.arange(config.max_position_embeddings).expand((1, -1)), persistent=False)

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Embed token ids.

        Args:
            input_ids: Token ids, [batch, seq].
            token_type_ids: Segment ids, [batch, seq]; zeros when omitted.
            position_ids: Positions, [batch or 1, seq]; ``0..seq-1`` when omitted.

        Returns:
            Embedding output ``H[0]``, [batch, seq, hidden].
        """
        seq_length = input_ids.shape[1]
        if position_ids is None:
            position_ids = self.position_ids[:, :seq_length]
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        words = self.word_embeddings(input_ids)
        if self.word_embeddings_proj is not None:
            words = self.word_embeddings_proj(words)
        embeddings = words + self.token_type_embeddings(token_type_ids) + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeddings))


class PrunedBertSelfAttention(nn.Module):
    """Multi-head self-attention with ``num_attention_heads`` heads of ``attention_head_size`` each.

    The attribute names (``num_attention_heads``, ``attention_head_size``, ``query``, ``key``, ``value``) match
    HF's ``BertSelfAttention`` so that code reading attention scores works on both.
    """

    def __init__(self, config: PrunedBertConfig, layer_idx: int):
        super().__init__()
        self.num_attention_heads = config.num_heads_per_layer[layer_idx]
        self.attention_head_size = config.attention_head_size
        self.all_head_size = self.num_attention_heads * self.attention_head_size
        self.scaling = 1.0 / math.sqrt(self.attention_head_size)
        self.query = nn.Linear(config.hidden_size, self.all_head_size)
        self.key = nn.Linear(config.hidden_size, self.all_head_size)
        self.value = nn.Linear(config.hidden_size, self.all_head_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """Attend.

        Args:
            hidden_states: Layer input, [batch, seq, hidden].
            attention_mask: Additive mask, [batch, 1, 1, seq] (0 at real keys, very negative at padded keys).

        Returns:
            Concatenated head outputs, [batch, seq, heads * head_size].
        """
        batch, seq, _ = hidden_states.shape
        shape = (batch, seq, self.num_attention_heads, self.attention_head_size)
        query = self.query(hidden_states).view(shape).transpose(1, 2)
        key = self.key(hidden_states).view(shape).transpose(1, 2)
        value = self.value(hidden_states).view(shape).transpose(1, 2)
        scores = torch.matmul(query, key.transpose(-1, -2)) * self.scaling  # [batch, heads, seq, seq]
        if attention_mask is not None:
            scores = scores + attention_mask
        probs = self.dropout(torch.softmax(scores, dim=-1))
        context = torch.matmul(probs, value)  # [batch, heads, seq, head_size]
        return context.transpose(1, 2).reshape(batch, seq, self.all_head_size)


class PrunedBertSelfOutput(nn.Module):
    """Attention-output projection ``[heads * head_size] -> hidden``, dropout, residual and LayerNorm."""

    def __init__(self, config: PrunedBertConfig, layer_idx: int):
        super().__init__()
        all_head_size = config.num_heads_per_layer[layer_idx] * config.attention_head_size
        self.dense = nn.Linear(all_head_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        """Project, add the residual and normalise: [batch, seq, heads * head_size] -> [batch, seq, hidden]."""
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class PrunedBertAttention(nn.Module):
    """Self-attention followed by its output block (HF names ``self`` and ``output``)."""

    def __init__(self, config: PrunedBertConfig, layer_idx: int):
        super().__init__()
        self.self = PrunedBertSelfAttention(config, layer_idx)
        self.output = PrunedBertSelfOutput(config, layer_idx)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """[batch, seq, hidden] -> [batch, seq, hidden]."""
        return self.output(self.self(hidden_states, attention_mask), hidden_states)


class PrunedBertIntermediate(nn.Module):
    """FFN input projection ``hidden -> intermediate_sizes[i]`` and activation."""

    def __init__(self, config: PrunedBertConfig, layer_idx: int):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_sizes[layer_idx])
        self.intermediate_act_fn = (
            ACT2FN[config.hidden_act] if isinstance(config.hidden_act, str) else config.hidden_act
        )

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """[batch, seq, hidden] -> [batch, seq, ffn]."""
        return self.intermediate_act_fn(self.dense(hidden_states))


class PrunedBertOutput(nn.Module):
    """FFN output projection ``intermediate_sizes[i] -> hidden``, dropout, residual and LayerNorm."""

    def __init__(self, config: PrunedBertConfig, layer_idx: int):
        super().__init__()
        self.dense = nn.Linear(config.intermediate_sizes[layer_idx], config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        """[batch, seq, ffn] plus residual [batch, seq, hidden] -> [batch, seq, hidden]."""
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class PrunedBertLayer(nn.Module):
    """One post-LayerNorm Transformer layer with its own head count and FFN width."""

    def __init__(self, config: PrunedBertConfig, layer_idx: int):
        super().__init__()
        with warnings.catch_warnings():
            # A layer with 0 heads has empty Q/K/V/O weights, and torch warns that initialising them is a no-op.
            warnings.filterwarnings("ignore", message="Initializing zero-element tensors is a no-op")
            self.attention = PrunedBertAttention(config, layer_idx)
            self.intermediate = PrunedBertIntermediate(config, layer_idx)
            self.output = PrunedBertOutput(config, layer_idx)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """[batch, seq, hidden] -> [batch, seq, hidden]."""
        attention_output = self.attention(hidden_states, attention_mask)
        return self.output(self.intermediate(attention_output), attention_output)


class PrunedBertEncoder(nn.Module):
    """The stack of layers (HF name ``layer``)."""

    def __init__(self, config: PrunedBertConfig):
        super().__init__()
        self.layer = nn.ModuleList([PrunedBertLayer(config, index) for index in range(config.num_hidden_layers)])


class PrunedBertPooler(nn.Module):
    """``tanh(W_p h_[CLS] + b_p)``, as in HF BERT."""

    def __init__(self, config: PrunedBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """[batch, seq, hidden] -> [batch, hidden]."""
        return self.activation(self.dense(hidden_states[:, 0]))


class PrunedBertPreTrainedModel(PreTrainedModel):
    """Weight initialisation and saving shared by the pruned-BERT models."""

    config_class = PrunedBertConfig
    base_model_prefix = "bert"
    supports_gradient_checkpointing = False

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        # Non-persistent buffers are not in the checkpoint, so they must be (re)built here when loading.
        if isinstance(module, PrunedBertEmbeddings):
            hf_init.copy_(module.position_ids, torch.arange(module.position_ids.shape[-1]).expand((1, -1)))

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Save like ``PreTrainedModel.save_pretrained`` and copy this module file beside ``config.json``.

        The copy makes the directory loadable with ``trust_remote_code=True`` where mudkd is not installed.
        """
        result = super().save_pretrained(save_directory, *args, **kwargs)
        target = Path(save_directory) / _MODULE_FILE_NAME
        source = Path(__file__).resolve()
        if not target.exists() or target.resolve() != source:
            shutil.copyfile(source, target)
        return result


def _extended_attention_mask(attention_mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """Turn a [batch, seq] 1/0 mask into an additive [batch, 1, 1, seq] mask (0 keep, dtype min at padding)."""
    if attention_mask is None:
        return None
    keep = attention_mask[:, None, None, :].to(dtype)
    return (1.0 - keep) * torch.finfo(dtype).min


class PrunedBertModel(PrunedBertPreTrainedModel):
    """The pruned-BERT encoder with its pooler."""

    def __init__(self, config: PrunedBertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = PrunedBertEmbeddings(config)
        self.encoder = PrunedBertEncoder(config)
        self.pooler = PrunedBertPooler(config) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling | tuple:
        """Encode a batch.

        Args:
            input_ids: Token ids, [batch, seq].
            attention_mask: 1 on real tokens and 0 on padding, [batch, seq]; all ones when omitted.
            token_type_ids: Segment ids, [batch, seq].
            position_ids: Positions, [batch or 1, seq].
            output_hidden_states: Also return the L+1 hidden states (default: ``config.output_hidden_states``).
            return_dict: Return a ``ModelOutput`` rather than a tuple (default: ``config.return_dict``).
            **kwargs: Ignored; accepted because HF utilities (e.g. ``Trainer``) pass extra keyword arguments.

        Returns:
            ``last_hidden_state`` [batch, seq, hidden], ``pooler_output`` [batch, hidden] and optionally
            ``hidden_states``, a tuple of L+1 tensors [batch, seq, hidden].
        """
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        if return_dict is None:
            return_dict = self.config.return_dict
        hidden = self.embeddings(input_ids, token_type_ids=token_type_ids, position_ids=position_ids)
        additive_mask = _extended_attention_mask(attention_mask, hidden.dtype)
        all_hidden = [hidden]
        for layer in self.encoder.layer:
            hidden = layer(hidden, additive_mask)
            all_hidden.append(hidden)
        pooled = self.pooler(hidden) if self.pooler is not None else None
        hidden_states = tuple(all_hidden) if output_hidden_states else None
        if not return_dict:
            return tuple(value for value in (hidden, pooled, hidden_states) if value is not None)
        return BaseModelOutputWithPooling(last_hidden_state=hidden, pooler_output=pooled, hidden_states=hidden_states)


class PrunedBertForSequenceClassification(PrunedBertPreTrainedModel):
    """Pruned BERT with HF's sequence-classification head: ``Linear(dropout(pooled))``."""

    def __init__(self, config: PrunedBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = PrunedBertModel(config)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput | tuple:
        """Classify a batch; the loss follows HF (MSE for one label or regression, BCE multi-label, else CE).

        Args:
            input_ids: Token ids, [batch, seq].
            attention_mask: 1 on real tokens and 0 on padding, [batch, seq].
            token_type_ids: Segment ids, [batch, seq].
            position_ids: Positions, [batch or 1, seq].
            labels: Class ids [batch] (int), targets [batch] (float, regression) or [batch, labels] (multi-label).
            output_hidden_states: Also return the L+1 hidden states, each [batch, seq, hidden].
            return_dict: Return a ``SequenceClassifierOutput`` rather than a tuple.
            **kwargs: Ignored; accepted because HF utilities pass extra keyword arguments.

        Returns:
            ``loss`` (when ``labels`` are given), ``logits`` [batch, num_labels] and optionally ``hidden_states``.
        """
        if return_dict is None:
            return_dict = self.config.return_dict
        outputs = self.bert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.classifier(self.dropout(outputs.pooler_output))
        loss = None
        if labels is not None:
            loss = self._loss(logits, labels)
        if not return_dict:
            return tuple(value for value in (loss, logits, outputs.hidden_states) if value is not None)
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The task loss, chosen like HF's ``problem_type`` logic without mutating the config."""
        problem_type = self.config.problem_type
        if problem_type is None:
            if self.num_labels == 1:
                problem_type = "regression"
            elif labels.dtype in (torch.long, torch.int):
                problem_type = "single_label_classification"
            else:
                problem_type = "multi_label_classification"
        if problem_type == "regression":
            if self.num_labels == 1:
                return nn.functional.mse_loss(logits.squeeze(), labels.squeeze().to(logits.dtype))
            return nn.functional.mse_loss(logits, labels.to(logits.dtype))
        if problem_type == "single_label_classification":
            return nn.functional.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1))
        return nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


def register() -> None:
    """Register the config and models with ``AutoConfig``, ``AutoModel`` and ``AutoModelForSequenceClassification``.

    Idempotent: calling it again (or after a remote-code copy of this module registered itself) re-points the Auto
    classes at this module's classes.
    """
    AutoConfig.register(PrunedBertConfig.model_type, PrunedBertConfig, exist_ok=True)
    AutoModel.register(PrunedBertConfig, PrunedBertModel, exist_ok=True)
    AutoModelForSequenceClassification.register(PrunedBertConfig, PrunedBertForSequenceClassification, exist_ok=True)
