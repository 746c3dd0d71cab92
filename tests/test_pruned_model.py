"""The pruned-BERT model class: HF-compatible names, forward semantics and save/load round trips."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from mudkd.core import modeling_pruned_bert
from mudkd.core.modeling_pruned_bert import (
    PrunedBertConfig,
    PrunedBertForSequenceClassification,
    PrunedBertModel,
    register,
)
from mudkd.core.pruning import TaylorScores, prune_bert, save_pruned
from tests.helpers import make_tiny_bert, save_tiny_tokenizer


def _teacher(layers: int = 3, num_labels: int = 2):
    """A tiny BERT whose weights are large enough that every head and neuron visibly matters."""
    model = make_tiny_bert(layers=layers, hidden=32, heads=4, intermediate=64, num_labels=num_labels, seed=0)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "LayerNorm" not in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return model.eval()


def _uniform_scores(model) -> TaylorScores:
    layers = model.config.num_hidden_layers
    return TaylorScores(
        head_scores=[torch.arange(4, 0, -1, dtype=torch.float64) for _ in range(layers)],
        ffn_scores=[torch.ones(64, dtype=torch.float64) for _ in range(layers)],
        num_batches=1,
        num_examples=1,
        head_size=8,
        hidden_size=32,
    )


def _inputs(vocab: int, batch: int = 3, seq: int = 9, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, vocab, (batch, seq), generator=generator)
    attention_mask = torch.ones(batch, seq, dtype=torch.long)
    attention_mask[1, 6:] = 0
    attention_mask[2, 4:] = 0
    input_ids[attention_mask == 0] = 0
    token_type_ids = torch.zeros(batch, seq, dtype=torch.long)
    token_type_ids[0, 5:] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


def _small_config(**overrides) -> PrunedBertConfig:
    fields = {
        "vocab_size": 50,
        "hidden_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 24,
        "max_position_embeddings": 32,
    }
    return PrunedBertConfig(**{**fields, **overrides})


def test_config_fills_per_layer_defaults_and_auto_map():
    config = _small_config()
    assert config.attention_head_size == 4
    assert config.num_heads_per_layer == [4, 4]
    assert config.intermediate_sizes == [24, 24]
    assert config.emb_hidden_dim == -1
    assert config.auto_map["AutoModelForSequenceClassification"] == (
        "modeling_pruned_bert.PrunedBertForSequenceClassification"
    )
    uneven = _small_config(num_heads_per_layer=[2, 3], intermediate_sizes=[5, 7], attention_head_size=4)
    assert uneven.num_attention_heads == 3
    assert uneven.intermediate_size == 7


@pytest.mark.parametrize(
    "overrides",
    [{"num_heads_per_layer": [4]}, {"intermediate_sizes": [3, 3, 3]}, {"emb_hidden_dim": 0}, {"emb_hidden_dim": -2}],
)
def test_config_rejects_inconsistent_sizes(overrides):
    with pytest.raises(ValueError):
        _small_config(**overrides)


def test_per_layer_shapes_and_hf_state_dict_keys():
    config = _small_config(num_heads_per_layer=[1, 3], intermediate_sizes=[5, 7], emb_hidden_dim=6)
    model = PrunedBertForSequenceClassification(config)
    state = model.state_dict()
    assert state["bert.embeddings.word_embeddings.weight"].shape == (50, 6)
    assert state["bert.embeddings.word_embeddings_proj.weight"].shape == (16, 6)
    assert state["bert.encoder.layer.0.attention.self.query.weight"].shape == (4, 16)
    assert state["bert.encoder.layer.1.attention.self.value.weight"].shape == (12, 16)
    assert state["bert.encoder.layer.1.attention.output.dense.weight"].shape == (16, 12)
    assert state["bert.encoder.layer.0.intermediate.dense.weight"].shape == (5, 16)
    assert state["bert.encoder.layer.1.output.dense.weight"].shape == (16, 7)
    assert state["classifier.weight"].shape == (2, 16)

    # Unfactorised and unpruned, the keys are exactly HF BERT's.
    teacher = _teacher()
    full = PrunedBertForSequenceClassification(
        PrunedBertConfig(**{k: v for k, v in teacher.config.to_dict().items() if k in _BERT_FIELDS})
    )
    assert set(full.state_dict()) == set(teacher.state_dict())


_BERT_FIELDS = {
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
}


def test_self_attention_exposes_the_same_attributes_as_hf_bert():
    teacher = _teacher()
    student = prune_bert(teacher, _uniform_scores(teacher), keep_heads=2, ffn_hidden_dim=16, emb_hidden_dim=-1)
    for model, heads in ((teacher, 4), (student, 2)):
        attention = model.bert.encoder.layer[0].attention.self
        assert attention.num_attention_heads == heads
        assert attention.attention_head_size == 8
        assert attention.query.out_features == heads * 8
        assert attention.key.out_features == heads * 8


def test_forward_outputs_hidden_states_and_losses():
    torch.manual_seed(0)
    model = PrunedBertForSequenceClassification(_small_config(num_labels=3, emb_hidden_dim=4)).eval()
    inputs = _inputs(50)
    labels = torch.tensor([0, 2, 1])
    output = model(**inputs, labels=labels, output_hidden_states=True)
    assert output.logits.shape == (3, 3)
    assert len(output.hidden_states) == 3
    assert all(state.shape == (3, 9, 16) for state in output.hidden_states)
    assert torch.equal(output.hidden_states[-1], model.bert(**inputs).last_hidden_state)
    assert torch.allclose(output.loss, torch.nn.functional.cross_entropy(output.logits, labels))
    as_tuple = model(**inputs, labels=labels, return_dict=False)
    assert torch.equal(as_tuple[1], output.logits)

    regression = PrunedBertForSequenceClassification(_small_config(num_labels=1)).eval()
    targets = torch.tensor([0.5, 1.0, -2.0])
    output = regression(**inputs, labels=targets)
    assert torch.allclose(output.loss, torch.nn.functional.mse_loss(output.logits.squeeze(-1), targets))


def test_padding_does_not_change_real_tokens():
    torch.manual_seed(0)
    model = PrunedBertForSequenceClassification(_small_config()).eval()
    inputs = _inputs(50)
    changed = {key: value.clone() for key, value in inputs.items()}
    changed["input_ids"][changed["attention_mask"] == 0] = 7
    with torch.no_grad():
        assert torch.allclose(model(**inputs).logits, model(**changed).logits, atol=1e-6)
        unmasked = {key: value for key, value in changed.items() if key != "attention_mask"}
        assert not torch.allclose(model(**inputs).logits, model(**unmasked).logits, atol=1e-6)


def test_zero_head_layer_equals_teacher_with_all_heads_zeroed():
    teacher = _teacher()
    full = prune_bert(teacher, _uniform_scores(teacher), keep_heads=4, ffn_hidden_dim=64, emb_hidden_dim=-1)
    config = PrunedBertConfig(**{**full.config.to_dict(), "num_heads_per_layer": [4, 0, 4]})
    student = PrunedBertForSequenceClassification(config).eval()
    state = full.state_dict()
    prefix = "bert.encoder.layer.1.attention."
    for name in ("self.query.weight", "self.query.bias", "self.key.weight", "self.key.bias", "self.value.weight"):
        state[prefix + name] = state[prefix + name][:0]
    state[prefix + "self.value.bias"] = state[prefix + "self.value.bias"][:0]
    state[prefix + "output.dense.weight"] = state[prefix + "output.dense.weight"][:, :0]
    student.load_state_dict(state)

    zeroed = _teacher()
    with torch.no_grad():
        zeroed.bert.encoder.layer[1].attention.output.dense.weight.zero_()
    inputs = _inputs(teacher.config.vocab_size)
    with torch.no_grad():
        expected = zeroed(**inputs).logits
        assert (expected - teacher(**inputs).logits).abs().max() > 1e-2
        assert (student(**inputs).logits - expected).abs().max() <= 1e-5


def _saved_student(tmp_path):
    teacher = _teacher()
    scores = _uniform_scores(teacher)
    scores.head_scores[1] = torch.tensor([0.1, 0.9, 0.5, 0.2], dtype=torch.float64)
    student = prune_bert(teacher, scores, keep_heads=2, num_layers=2, ffn_hidden_dim=40, emb_hidden_dim=12)
    tokenizer_dir = tmp_path / "tokenizer"
    save_tiny_tokenizer(tokenizer_dir)
    from transformers import AutoTokenizer

    directory = save_pruned(student, AutoTokenizer.from_pretrained(tokenizer_dir), tmp_path / "student")
    return student, directory


def test_save_load_round_trip_with_registered_auto_classes(tmp_path):
    student, directory = _saved_student(tmp_path)
    assert {"config.json", "model.safetensors", "modeling_pruned_bert.py", "tokenizer_config.json"} <= {
        path.name for path in directory.iterdir()
    }
    config = json.loads((directory / "config.json").read_text())
    assert config["model_type"] == "pruned_bert"
    assert config["auto_map"]["AutoConfig"] == "modeling_pruned_bert.PrunedBertConfig"
    assert config["num_heads_per_layer"] == [2, 2]
    register()
    register()  # idempotent
    loaded = AutoModelForSequenceClassification.from_pretrained(directory).eval()
    assert isinstance(loaded, PrunedBertForSequenceClassification)
    inputs = _inputs(student.config.vocab_size)
    with torch.no_grad():
        assert torch.equal(loaded(**inputs).logits, student(**inputs).logits)
    from transformers import AutoModel

    base = AutoModel.from_pretrained(directory)
    assert isinstance(base, PrunedBertModel)


_REMOTE_SCRIPT = textwrap.dedent(
    """
    import json, sys

    class BlockMudkd:
        def find_spec(self, name, path=None, target=None):
            if name == "mudkd" or name.startswith("mudkd."):
                raise ImportError("mudkd is blocked in this test")
            return None

    sys.meta_path.insert(0, BlockMudkd())
    try:
        import mudkd  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("mudkd is still importable")

    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification

    directory, tensors_file = sys.argv[1], sys.argv[2]
    model = AutoModelForSequenceClassification.from_pretrained(directory, trust_remote_code=True).eval()
    tensors = load_file(tensors_file)
    logits = model(
        input_ids=tensors["input_ids"],
        attention_mask=tensors["attention_mask"],
        token_type_ids=tensors["token_type_ids"],
    ).logits.detach()
    print(json.dumps({
        "module": type(model).__module__,
        "max_diff": float((logits - tensors["logits"]).abs().max()),
        "mudkd_loaded": any(name.split(".")[0] == "mudkd" for name in sys.modules),
    }))
    """
)


def test_trust_remote_code_load_without_mudkd(tmp_path):
    from safetensors.torch import save_file

    student, directory = _saved_student(tmp_path)
    inputs = _inputs(student.config.vocab_size)
    with torch.no_grad():
        logits = student(**inputs).logits
    tensors_file = tmp_path / "expected.safetensors"
    save_file({**inputs, "logits": logits.contiguous()}, str(tensors_file))
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_MODULES_CACHE": str(tmp_path / "hf_modules"),
        "TOKENIZERS_PARALLELISM": "false",
    }
    completed = subprocess.run(
        [sys.executable, "-I", "-c", _REMOTE_SCRIPT, str(directory), str(tensors_file)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert not result["module"].startswith("mudkd")
    assert not result["mudkd_loaded"]
    assert result["max_diff"] == 0.0


def test_save_pretrained_alone_copies_the_module_file(tmp_path):
    torch.manual_seed(0)
    model = PrunedBertForSequenceClassification(_small_config())
    model.save_pretrained(tmp_path / "plain")
    copied = (tmp_path / "plain" / "modeling_pruned_bert.py").read_text()
    assert copied == Path(modeling_pruned_bert.__file__).read_text()
