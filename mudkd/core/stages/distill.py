"""Stages 4 and 5: hidden-state knowledge (HSK) distillation and prediction distillation.

Both stages run on the transformers Trainer (so resume, DDP via ``accelerate launch``/``torchrun``, mixed
precision and TensorBoard come from the library). The teacher's knowledge comes either from the teacher itself,
run in eval mode on every batch ("online"), or from a teacher-free store written once by ``mudkd distill cache``
(:mod:`mudkd.core.stages.cache`); in store mode the teacher is never constructed.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from mudkd.core.batching import hsk_collator, make_collator
from mudkd.core.data import check_task_metric, count_train_examples, load_task
from mudkd.core.datacheck import check_data, describe_data
from mudkd.core.events import RunEvents, StagePlan, StageResult
from mudkd.core.hsk import build_targets, hsk_loss, unpack_targets
from mudkd.core.models import (
    PROJECTION_FILE,
    check_positions,
    check_same_tokenizer,
    load_classifier,
    load_fit_dense,
    load_tokenizer,
    read_config,
    read_shape,
    teacher_fingerprint,
)
from mudkd.core.outputs import check_output_dir, recipe_inputs
from mudkd.core.stages.store_check import open_store, plan_store_check
from mudkd.core.store import fingerprint_mismatches
from mudkd.core.training import TrainerStage, resolve_device, run_trainer_stage, set_seed, with_selection_split
from mudkd.core.transfer import add_transfer, regression_loss
from mudkd.errors import CheckpointError, StoreError
from mudkd.knowledge import KnowledgeBudget, ModelShape, budget_from_recipe, budget_summary, can_serve
from mudkd.knowledge.shapes import model_shape
from mudkd.recipe.schema import Recipe

# ---------------------------------------------------------------------------------------------------------------
# Models, configs and budgets


class HskStudent(nn.Module):
    """The student plus, for a narrower (TinyBERT-style) student, a learned projection to the teacher's width.

    The projection (``fit_dense``, one Linear shared by all hidden states, method.md §7) is trained in the HSK
    stage and saved beside the exported model, not inside it. It starts from ``projection`` (the trained
    ``weight``/``bias`` a checkpoint carries, :func:`mudkd.core.models.load_fit_dense`) when given, else from
    N(0, 0.02) weights and a zero bias.
    """

    def __init__(
        self, student: nn.Module, teacher_hidden: int, mask_mode: str, projection: dict[str, torch.Tensor] | None = None
    ) -> None:
        super().__init__()
        self.student = student
        self.mask_mode = mask_mode
        student_hidden = student.config.hidden_size
        self.projection: nn.Linear | None = None
        if student_hidden != teacher_hidden:
            self.projection = nn.Linear(student_hidden, teacher_hidden)
            if projection is not None:
                self.projection.load_state_dict(projection)
            else:
                nn.init.normal_(self.projection.weight, std=0.02)
                nn.init.zeros_(self.projection.bias)

    def forward(self, input_ids, attention_mask, token_type_ids, targets):  # noqa: ANN001, ANN201
        outputs = self.student(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, output_hidden_states=True
        )
        states = list(outputs.hidden_states)
        if self.projection is not None:
            for layer in {target.student_layer for target in targets}:
                states[layer] = self.projection(states[layer])
        total, per_layer = hsk_loss(states, targets, self.mask_mode)
        return {"loss": total, "per_layer": torch.stack([term.detach() for term in per_layer])}


_NOT_HSK = ("logits", "origin")  # store fields that are not packed HSK


class KnowledgeSource:
    """Where teacher knowledge comes from: the teacher run online, or a teacher-free store (read by index)."""

    def __init__(
        self,
        *,
        teacher: nn.Module | None = None,
        store: Any = None,
        budget: KnowledgeBudget | None = None,
        stored_budget: KnowledgeBudget | None = None,
        sep_token_id: int | None = None,
        exclude_padding: bool = False,
    ) -> None:
        self.teacher, self.store = teacher, store
        self.budget, self.stored_budget = budget, stored_budget
        self.sep_token_id = sep_token_id
        self.exclude_padding = exclude_padding  # hsk.pad_tokens = "exclude" (mudkd.core.hsk.select_tokens)

    @property
    def online(self) -> bool:
        return self.teacher is not None

    def _teacher_outputs(self, inputs: dict[str, torch.Tensor], hidden: bool) -> Any:
        with torch.no_grad():
            return self.teacher(  # type: ignore[misc]
                input_ids=inputs["input_ids"],
                attention_mask=inputs["attention_mask"],
                token_type_ids=inputs.get("token_type_ids"),
                output_hidden_states=hidden,
            )

    def hsk_targets(self, inputs: dict[str, torch.Tensor], index: torch.Tensor) -> list:
        """The HSK targets of one batch (float32, on the batch's device)."""
        assert self.budget is not None
        if self.online:
            outputs = self._teacher_outputs(inputs, hidden=True)
            return build_targets(
                self.teacher,  # type: ignore[arg-type]
                [state.float() for state in outputs.hidden_states],
                inputs["input_ids"],
                inputs["attention_mask"],
                self.budget,
                sep_token_id=self.sep_token_id,  # type: ignore[arg-type]
                exclude_padding=self.exclude_padding,
            )
        arrays, device = self.store.get(index.cpu().numpy()), inputs["input_ids"].device
        packed = {name: torch.from_numpy(a).to(device) for name, a in arrays.items() if name not in _NOT_HSK}
        lengths = inputs["attention_mask"].sum(dim=1) if self.exclude_padding else None
        return unpack_targets(packed, self.budget, stored=self.stored_budget, lengths=lengths)

    def logits(self, inputs: dict[str, torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        """The teacher's logits of one batch, [batch, classes] float32."""
        if self.online:
            return self._teacher_outputs(inputs, hidden=False).logits.float()
        arrays = self.store.get(index.cpu().numpy())
        if "logits" not in arrays:
            raise StoreError("the store holds no teacher logits", hint="rebuild it with 'mudkd distill cache'")
        return torch.from_numpy(arrays["logits"]).to(inputs["input_ids"].device).float()


def hsk_batch_loss(
    model: HskStudent, source: KnowledgeSource, inputs: dict[str, torch.Tensor], index: torch.Tensor
) -> dict[str, torch.Tensor]:
    """One batch's HSK loss: the source's targets for the batch, then the student's forward against them."""
    targets = source.hsk_targets(inputs, index)
    return model(inputs["input_ids"], inputs["attention_mask"], inputs.get("token_type_ids"), targets)


def soft_cross_entropy(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float, reference: bool = False
) -> torch.Tensor:
    """Prediction distillation loss (method.md §13).

    Default: Σ_c −p_T·log p_S averaged over the batch, times τ² (Hinton et al.: keeps gradient scale independent
    of τ). ``reference=True`` reproduces the reference (Q16): the mean over batch **and** classes, no τ².
    """
    target = F.softmax(teacher_logits / temperature, dim=-1)
    log_probs = F.log_softmax(student_logits / temperature, dim=-1)
    if reference:
        return -(target * log_probs).mean()
    return -(target * log_probs).sum(dim=-1).mean() * temperature**2


# ---------------------------------------------------------------------------------------------------------------
# Trainers


def _make_trainer_class() -> type:
    from transformers import Trainer

    class DistillTrainer(Trainer):
        """A Trainer whose training loss is HSK or prediction distillation; evaluation is the student's own."""

        def __init__(
            self,
            *args: Any,
            source: KnowledgeSource,
            stage: str,
            temperature: float = 1.0,
            reference_loss: bool = False,
            **kwargs: Any,
        ) -> None:
            super().__init__(*args, **kwargs)
            self.source, self.stage = source, stage
            self.temperature, self.reference_loss = temperature, reference_loss
            self._terms: dict[str, list[float]] = defaultdict(list)
            self.step_losses: list[float] = []  # every micro-batch's distillation loss, unrounded

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001, ANN201
            inputs = dict(inputs)
            index = inputs.pop("example_index", None)
            if not model.training or index is None:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            labels = inputs.pop("labels")
            if self.stage == "hsk":
                outputs = hsk_batch_loss(model, self.source, inputs, index)
                loss = outputs["loss"]
                for position, term in enumerate(outputs["per_layer"].tolist()):
                    self._terms[f"loss_layer_{self.source.budget.student_layers[position]}"].append(term)
            else:
                logits = model(**inputs).logits
                if logits.shape[-1] == 1:  # regression: the gold label is the target (as TinyBERT, Q16) ...
                    teacher = partial(self.source.logits, inputs, index)  # ... or the teacher's, for unlabelled ones
                    loss = regression_loss(logits.squeeze(-1), labels, teacher)
                else:
                    teacher_logits = self.source.logits(inputs, index)
                    loss = soft_cross_entropy(logits, teacher_logits, self.temperature, self.reference_loss)
                outputs = {"logits": logits}
            self.step_losses.append(float(loss.detach()))
            self._terms[f"{self.stage}_loss"].append(self.step_losses[-1])
            return (loss, outputs) if return_outputs else loss

        def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
            if "loss" in logs and self._terms:
                logs = {**logs, **{name: sum(v) / len(v) for name, v in self._terms.items()}}
                self._terms.clear()
            super().log(logs, *args, **kwargs)

    return DistillTrainer


# ---------------------------------------------------------------------------------------------------------------
# Shared set-up of both stages


def check_stage_output(recipe: Recipe, stage: str, *, resume: bool = False) -> None:
    """Refuse data that is not there (:func:`check_data`) and an output directory the HSK or prediction stage may
    not write (read-only; see mudkd.core.outputs)."""
    check_data(recipe.task)
    stage_config = recipe.hsk if stage == "hsk" else recipe.pred
    store_path = recipe.hsk.hsk_store if stage == "hsk" else recipe.pred.logits_store
    store_flag = "--hsk-store" if stage == "hsk" else "--logits-store"
    inputs = {
        "--teacher-model": recipe.teacher.model,
        "--student-model": recipe.student.model,
        store_flag: store_path,
        **recipe_inputs(recipe),
    }
    check_output_dir(
        stage_config.output_dir,
        overwrite=recipe.output.overwrite,
        resume=resume,
        inputs=inputs,
        command=f"distill {stage}",
    )


def _prepare(recipe: Recipe, stage: str, student_path: str | None, *, resume: bool = False) -> dict[str, Any]:
    """Load the student, tokenizer and data, and check the teacher or store they are distilled from."""
    check_stage_output(recipe, stage, resume=resume)
    store_path = recipe.hsk.hsk_store if stage == "hsk" else recipe.pred.logits_store
    student_config = read_config(student_path, "student")
    check_positions(recipe.task.max_seq_length, student_path, None if store_path else recipe.teacher.model)
    student_tokenizer = load_tokenizer(student_path)  # type: ignore[arg-type]
    data = load_task(recipe.task, student_tokenizer)
    data = with_selection_split(data, recipe.task, student_tokenizer, recipe.training.selection_split)
    data = add_transfer(data, recipe, student_tokenizer)
    store = None
    if store_path:
        store = open_store(store_path, tokenizer=student_tokenizer, recipe=recipe, data=data)
        if recipe.teacher.model:  # optional extra check: the teacher's weights are what the store was built from
            if fingerprint_mismatches(store.fingerprint, {"teacher": teacher_fingerprint(recipe.teacher.model)}):
                raise StoreError(
                    f"{store_path}: the store was built from another teacher",
                    hint="rebuild the store, or drop --teacher-model to trust it",
                )
    else:
        teacher_config = read_config(recipe.teacher.model, "teacher")
        if teacher_config.get("vocab_size") != student_config.get("vocab_size"):
            raise CheckpointError(
                f"teacher and student have different vocabularies ({teacher_config.get('vocab_size')} vs "
                f"{student_config.get('vocab_size')} tokens)",
                hint="distil into a student built from the teacher (mudkd prune) or one with the same vocabulary",
            )
    return {"student_config": student_config, "tokenizer": student_tokenizer, "data": data, "store": store}


def _resolve_stage_budget(recipe: Recipe, student_config: dict[str, Any], store: Any) -> tuple:
    """The wanted budget, and the stored one when training from a store (checked to be servable).

    The teacher's shape and label count come from the store when there is one, else from the teacher's config
    (:mod:`mudkd.knowledge.shapes`), so the budget summary counts the logits a store of it holds, as
    ``mudkd distill cache`` does.
    """
    student = model_shape(student_config, f"{recipe.student.model} (student)")
    if store is not None:
        stored = KnowledgeBudget.from_dict(store.meta["budget"])
        teacher = ModelShape(stored.num_teacher_layers, stored.teacher_hidden, stored.num_labels)
    else:
        teacher = read_shape(recipe.teacher.model, "teacher")
        stored = None
    budget = budget_from_recipe(
        recipe,
        num_student_layers=student.layers,
        num_teacher_layers=teacher.layers,
        teacher_hidden=teacher.hidden,
        num_labels=teacher.num_labels,
    )
    if stored is not None:
        servable, reason = can_serve(stored, budget)
        if not servable:
            raise StoreError(
                f"the store cannot serve this budget: {reason}",
                hint="build a store for this (or a larger) budget with 'mudkd distill cache'",
            )
    return budget, stored


def _value_dtype(recipe: Recipe, store: Any) -> str:
    """The precision the budget summary counts: the store's own when training from one, else ``cache.dtype``."""
    return (store.value_dtype if store is not None else None) or recipe.cache.dtype


@dataclass(frozen=True)
class HskPlan(StagePlan):
    """What ``mudkd distill hsk`` would do (``--dry-run``).

    Attributes:
        teacher: The teacher run online, or None when the store serves the knowledge.
        hsk_store: The teacher-free store it reads, or None.
        student: The student to distil into.
        data: Where the data comes from (:func:`mudkd.core.datacheck.describe_data`).
        output_dir: Where the HSK-distilled student goes.
        budget: The knowledge budget's summary (:func:`mudkd.knowledge.budget_summary`).
    """

    stage: ClassVar[str] = "distill hsk"
    teacher: str | None
    hsk_store: str | None
    student: str | None
    data: str
    output_dir: str | None
    budget: dict[str, Any]


@dataclass(frozen=True)
class PredPlan(StagePlan):
    """What ``mudkd distill pred`` would do (``--dry-run``): the fields of :class:`HskPlan` with ``logits_store``
    for ``hsk_store``, and the training settings (``temperature`` of the prediction loss, peak ``learning_rate``,
    ``epochs``, ``max_steps`` winning over epochs when set) instead of the budget."""

    stage: ClassVar[str] = "distill pred"
    teacher: str | None
    logits_store: str | None
    student: str | None
    data: str
    output_dir: str | None
    temperature: float
    learning_rate: float
    epochs: float
    max_steps: int | None


def plan_hsk(recipe: Recipe, *, resume: bool = False) -> HskPlan:
    """The HSK stage's plan and knowledge budget (validates models, budget and data; writes nothing)."""
    student_config = read_config(recipe.student.model, "student")
    store = None
    if recipe.hsk.hsk_store:
        from mudkd.core.store import PLAN_VERIFY_BYTES, HskStore

        store = HskStore.open(recipe.hsk.hsk_store, verify=False)
        store.verify(PLAN_VERIFY_BYTES)  # a corrupted store fails the dry run as it fails the run
    else:
        read_config(recipe.teacher.model, "teacher")
    check_positions(recipe.task.max_seq_length, recipe.student.model, None if store else recipe.teacher.model)
    check_stage_output(recipe, "hsk", resume=resume)
    if store is not None:  # the training run's own check, on the fingerprint it will compute
        num_examples = plan_store_check(recipe, recipe.hsk.hsk_store, store)  # type: ignore[arg-type]
    budget, _ = _resolve_stage_budget(recipe, student_config, store)
    student_hidden = model_shape(student_config, f"{recipe.student.model} (student)").hidden
    if student_hidden != budget.teacher_hidden:  # refuse a fit_dense of another shape before any work
        load_fit_dense(
            recipe.student.model,  # type: ignore[arg-type]
            student_hidden=student_hidden,
            teacher_hidden=budget.teacher_hidden,
        )
    if store is None:
        num_examples = count_train_examples(recipe)
    return HskPlan(
        teacher=None if store is not None else recipe.teacher.model,
        hsk_store=recipe.hsk.hsk_store,
        student=recipe.student.model,
        data=describe_data(recipe.task),
        output_dir=recipe.hsk.output_dir,
        budget=budget_summary(budget, num_examples, _value_dtype(recipe, store)),
    )


def plan_pred(recipe: Recipe, *, resume: bool = False) -> PredPlan:
    """The prediction stage's plan (validates models and paths; writes nothing)."""
    read_config(recipe.student.model, "student")
    store = None
    if recipe.pred.logits_store:
        from mudkd.core.store import PLAN_VERIFY_BYTES, HskStore

        store = HskStore.open(recipe.pred.logits_store, verify=False)
        store.verify(PLAN_VERIFY_BYTES)
    else:
        read_config(recipe.teacher.model, "teacher")
    check_positions(
        recipe.task.max_seq_length, recipe.student.model, None if recipe.pred.logits_store else recipe.teacher.model
    )
    check_task_metric(recipe.task)
    check_stage_output(recipe, "pred", resume=resume)
    if store is not None:  # the training run's own check, on the fingerprint it will compute
        plan_store_check(recipe, recipe.pred.logits_store, store)  # type: ignore[arg-type]
    stage = recipe.pred
    return PredPlan(
        teacher=None if recipe.pred.logits_store else recipe.teacher.model,
        logits_store=recipe.pred.logits_store,
        student=recipe.student.model,
        data=describe_data(recipe.task),
        output_dir=stage.output_dir,
        temperature=stage.temperature,
        learning_rate=stage.learning_rate,
        epochs=stage.num_train_epochs,
        max_steps=stage.max_steps,
    )


def _load_teacher(recipe: Recipe, device: str) -> nn.Module:
    teacher = load_classifier(recipe.teacher.model)  # type: ignore[arg-type]
    teacher.to(device)
    teacher.train(recipe.hsk.teacher_train_mode)  # eval by default; dropout on only for parity (Q1)
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher


# ---------------------------------------------------------------------------------------------------------------
# Entry points


def run_hsk(recipe: Recipe, *, events: RunEvents | None = None, resume: bool = False) -> StageResult:
    """HSK distillation: the student learns the teacher's hidden states under the recipe's knowledge budget.

    Writes the HSK-distilled student (``save_pretrained`` + tokenizer), ``knowledge_budget.json``, the projection
    of a narrower student (``hsk_projection.safetensors``, beside the model), ``metrics.jsonl`` and run files.
    A narrower student's projection starts from the trained ``fit_dense`` its checkpoint carries (General TinyBERT,
    or a previous HSK run's ``hsk_projection.safetensors``), else fresh; ``details["projection"]`` says which.
    """
    events = events or RunEvents()
    ready = _prepare(recipe, "hsk", recipe.student.model, resume=resume)
    data, store, tokenizer = ready["data"], ready["store"], ready["tokenizer"]
    budget, stored = _resolve_stage_budget(recipe, ready["student_config"], store)
    device = resolve_device(recipe.training)
    set_seed(recipe.training.seed)

    student = load_classifier(recipe.student.model)  # type: ignore[arg-type]
    exclude = recipe.hsk.pad_tokens == "exclude"
    if store is None:
        teacher = _load_teacher(recipe, device)
        check_same_tokenizer(load_tokenizer(recipe.teacher.model), tokenizer)  # type: ignore[arg-type]
        source = KnowledgeSource(
            teacher=teacher, budget=budget, sep_token_id=tokenizer.sep_token_id, exclude_padding=exclude
        )
        events.on_message(f"device: {device}; teacher runs online ({recipe.teacher.model})")
    else:
        source = KnowledgeSource(store=store, budget=budget, stored_budget=stored, exclude_padding=exclude)
        events.on_message(f"device: {device}; teacher-free: HSK read from {recipe.hsk.hsk_store}")
    model, projection_source = _hsk_model(recipe, student, budget)
    if projection_source:
        events.on_message(f"fit_dense: starting from the trained projection in {projection_source}")

    def save(directory: Path) -> None:
        student.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        if model.projection is not None:  # a narrower student's projection lives beside the model, not in it
            from safetensors.torch import save_file

            projection = {k: v.contiguous() for k, v in model.projection.state_dict().items()}
            save_file(projection, directory / PROJECTION_FILE)

    summary = budget_summary(budget, len(data.train), _value_dtype(recipe, store))
    stage = TrainerStage(
        command="distill hsk",
        config=recipe.hsk,
        output_dir=Path(recipe.hsk.output_dir),  # type: ignore[arg-type]
        model=model,
        train_dataset=_with_index(data.train),
        save=save,
        trainer_class=_make_trainer_class(),
        trainer_options={"source": source, "stage": "hsk"},
        files={"knowledge_budget.json": json.dumps(summary, indent=2) + "\n"},
        run_metrics=lambda trainer: {"hsk_loss": _recent_loss(trainer)},
        data_collator=hsk_collator(recipe, tokenizer),
    )
    outcome = run_trainer_stage(recipe, stage, events=events, resume=resume, device=device)
    trainer = outcome.trainer
    details = {
        "steps": trainer.state.global_step,
        "teacher_free": store is not None,
        "train_seconds": outcome.train_seconds,
        "hsk_loss": _recent_loss(trainer),
        "step_losses": trainer.step_losses,
        "budget": summary,
        "projection": None if model.projection is None else (projection_source or "fresh"),
    }
    return StageResult(str(outcome.output_dir), {}, details)


def time_hsk_updates(recipe: Recipe, *, steps: int, repeats: int) -> dict[str, list[float]]:
    """Seconds of ``steps`` HSK updates with the teacher online and from ``hsk.hsk_store``, in interleaved pairs.

    Everything is loaded once (student, data, store, teacher); then each repetition runs the same ``steps``
    batches (the stage's length-grouped or random batches, drawn with the recipe's seed) through a full update
    (targets, student forward and backward, clipping, AdamW) once per source, the order rotating every repetition
    (:func:`mudkd.core.measure.interleaved`), after one untimed warm-up batch per source. Only the updates are
    timed, so the ratio is the speed-up of training itself, not of loading. Writes nothing.

    Returns:
        ``{"online": [seconds per repetition], "store": [...]}``.
    """
    from mudkd.core.measure import interleaved

    tokenizer = load_tokenizer(recipe.student.model)  # type: ignore[arg-type]
    data = add_transfer(load_task(recipe.task, tokenizer), recipe, tokenizer)
    store = open_store(recipe.hsk.hsk_store, tokenizer=tokenizer, recipe=recipe, data=data)  # type: ignore[arg-type]
    budget, stored = _resolve_stage_budget(recipe, read_config(recipe.student.model, "student"), store)
    device = resolve_device(recipe.training)
    set_seed(recipe.training.seed)
    exclude = recipe.hsk.pad_tokens == "exclude"
    sources = {
        "online": KnowledgeSource(
            teacher=_load_teacher(recipe, device),
            budget=budget,
            sep_token_id=tokenizer.sep_token_id,
            exclude_padding=exclude,
        ),
        "store": KnowledgeSource(store=store, budget=budget, stored_budget=stored, exclude_padding=exclude),
    }
    model, _ = _hsk_model(recipe, load_classifier(recipe.student.model), budget)  # type: ignore[arg-type]
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.hsk.learning_rate)
    batches = _first_batches(recipe, data.train, tokenizer, steps + 1)
    batches = [{name: value.to(device) for name, value in batch.items()} for batch in batches]

    def update(source: KnowledgeSource, batch: dict[str, torch.Tensor]) -> None:
        inputs = {name: value for name, value in batch.items() if name not in ("example_index", "labels")}
        hsk_batch_loss(model, source, inputs, batch["example_index"])["loss"].backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for source in sources.values():  # warm-up: first-call allocations and lazy initialisation, untimed
        update(source, batches[0])
    variants = {
        name: lambda source=source: [update(source, batch) for batch in batches[1:]] for name, source in sources.items()
    }
    return interleaved(variants, repeats=repeats)


def _first_batches(recipe: Recipe, train: Any, tokenizer: Any, count: int) -> list[dict[str, torch.Tensor]]:
    """The first ``count`` training batches of the HSK stage's sampler (length-grouped or random, seeded)."""
    from mudkd.core.batching import epoch_seeded_length_sampler, example_lengths

    dataset = _with_index(train)
    size = recipe.hsk.train_batch_size
    seed = recipe.training.seed
    if recipe.training.group_by_length:  # the first epoch's order of the stage's own sampler
        order = list(epoch_seeded_length_sampler(example_lengths(dataset), size, seed))
    else:
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()
    while len(order) < count * size:  # a tiny training set: cycle through it
        order += order[: count * size - len(order)]
    collate = hsk_collator(recipe, tokenizer)
    starts = range(0, count * size, size)
    return [collate([dataset[index] for index in order[start : start + size]]) for start in starts]


def _hsk_model(recipe: Recipe, student: nn.Module, budget: KnowledgeBudget) -> tuple[HskStudent, str | None]:
    """The student wrapped for HSK; a narrower one's projection starts from the checkpoint's trained fit_dense
    when it carries one (method.md §7). Returns the model and where its projection came from (None: fresh)."""
    student_hidden = student.config.hidden_size
    loaded = None
    if student_hidden != budget.teacher_hidden:
        loaded = load_fit_dense(
            recipe.student.model,  # type: ignore[arg-type]
            student_hidden=student_hidden,
            teacher_hidden=budget.teacher_hidden,
        )
    weights, source = loaded if loaded is not None else (None, None)
    return HskStudent(student, budget.teacher_hidden, budget.mask_mode, weights), source


def _recent_loss(trainer: Any) -> float | None:
    """The mean HSK loss of the last 10 updates (the run's final loss, steadier than the last update's)."""
    recent = trainer.step_losses[-10:]
    return sum(recent) / len(recent) if recent else None


def run_pred(recipe: Recipe, *, events: RunEvents | None = None, resume: bool = False) -> StageResult:
    """Prediction distillation: soft cross-entropy to the teacher's logits; the best-on-dev student is kept."""
    events = events or RunEvents()
    ready = _prepare(recipe, "pred", recipe.student.model, resume=resume)
    data, store, tokenizer = ready["data"], ready["store"], ready["tokenizer"]
    device = resolve_device(recipe.training)
    set_seed(recipe.training.seed)
    student = load_classifier(recipe.student.model, num_labels=data.num_labels)  # type: ignore[arg-type]
    if store is None:
        teacher = _load_teacher(recipe, device)
        teacher.eval()
        check_same_tokenizer(load_tokenizer(recipe.teacher.model), tokenizer)  # type: ignore[arg-type]
        if teacher.config.num_labels != data.num_labels:
            raise CheckpointError(
                f"the teacher has {teacher.config.num_labels} labels, task '{recipe.task.name}' has {data.num_labels}",
                hint="use the teacher fine-tuned on this task",
            )
        source = KnowledgeSource(teacher=teacher)
        events.on_message(f"device: {device}; teacher runs online ({recipe.teacher.model})")
    else:
        source = KnowledgeSource(store=store)
        events.on_message(f"device: {device}; teacher-free: logits read from {recipe.pred.logits_store}")

    def save(directory: Path) -> None:
        student.save_pretrained(directory)
        tokenizer.save_pretrained(directory)

    stage = TrainerStage(
        command="distill pred",
        config=recipe.pred,
        output_dir=Path(recipe.pred.output_dir),  # type: ignore[arg-type]
        model=student,
        train_dataset=_with_index(data.train),
        save=save,
        dev=data.dev,
        selection=data.selection,
        metric_names=data.metrics,
        labels=data.labels,
        trainer_class=_make_trainer_class(),
        trainer_options={
            "source": source,
            "stage": "pred",
            "temperature": recipe.pred.temperature,
            "reference_loss": recipe.pred.reference_loss,
        },
        data_collator=make_collator(tokenizer, recipe.training.padding, recipe.task.max_seq_length),
        model_card=True,
    )
    outcome = run_trainer_stage(recipe, stage, events=events, resume=resume, device=device)
    details = {
        "steps": outcome.trainer.state.global_step,
        "teacher_free": store is not None,
        "selection": data.selection,
        "step_losses": outcome.trainer.step_losses,
        **outcome.curve_details(),
    }
    return StageResult(str(outcome.output_dir), outcome.metrics, details)


def _with_index(dataset: Any) -> Any:
    """Add ``example_index`` (the row number), which addresses a teacher-free store."""
    return dataset.add_column("example_index", list(range(len(dataset))))


def evaluate_student(recipe: Recipe, *, events: RunEvents | None = None) -> StageResult:
    """Dev metrics of ``student.model`` as it is, without any training (a sweep's "pruned, untrained" level).

    Every dev split is evaluated in order, ``training.eval_batch_size`` examples at a time; the main split's
    metrics keep plain names, the others get a split prefix (as after training). Writes nothing.
    """
    events = events or RunEvents()
    path = str(recipe.student.model)
    read_config(path, "student")
    check_positions(recipe.task.max_seq_length, path)
    tokenizer = load_tokenizer(path)
    data = load_task(recipe.task, tokenizer)
    device = resolve_device(recipe.training)
    model = load_classifier(path, num_labels=data.num_labels).to(device).eval()
    collate = make_collator(tokenizer, recipe.training.padding, recipe.task.max_seq_length)
    size = recipe.training.eval_batch_size
    from mudkd.core.metrics import compute_metrics

    events.on_message(f"device: {device}; evaluating {path} on dev without training")
    metrics: dict[str, float] = {}
    for name, split in data.dev.items():
        outputs, labels = [], []
        with torch.no_grad():
            for start in range(0, len(split), size):
                batch = collate([split[index] for index in range(start, min(start + size, len(split)))])
                labels.append(batch.pop("labels"))
                inputs = {key: value.to(device) for key, value in batch.items()}
                outputs.append(model(**inputs).logits.float().cpu())
        values = compute_metrics(data.metrics, torch.cat(outputs).numpy(), torch.cat(labels).numpy(), data.labels)
        metrics |= {(key if name == "dev" else f"{name}_{key}"): value for key, value in values.items()}
    return StageResult(path, metrics, {"selection": data.selection, "steps": 0})
