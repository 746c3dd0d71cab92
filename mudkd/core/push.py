"""``mudkd push``: upload a folder mudkd made to the Hugging Face Hub (``create_repo`` + ``upload_folder``).

Only a folder mudkd can prove it committed (:func:`mudkd.core.ownership.verify`) whose weights are all finite is
sent: a run that diverged or a folder of someone else's files never leaves the machine. The repository id is
validated before anything else (``huggingface_hub.utils.validate_repo_id``), the token comes from ``hf auth login``
or ``HF_TOKEN`` (``huggingface_hub.get_token``), and a dry run lists the files, their bytes and the card without
touching the network. Hidden files (the marker, locks) stay local.

Offline (``HF_HUB_OFFLINE=1``, or no network) huggingface_hub's own error becomes one ``Error:`` line and a hint,
exit 2: nothing was sent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mudkd.core.models import load_classifier
from mudkd.core.ownership import verify
from mudkd.core.quantize import TORCH_INT8_WEIGHTS, load_quantized
from mudkd.core.training import check_finite_model
from mudkd.errors import CheckpointError, HubError, RecipeError, RunError

# onnx (an optional extra, 'mudkd[onnx]') and huggingface_hub's validation and upload API are imported inside the
# functions that need them.

#: Files a push leaves behind: mudkd's marker and locks, and anything hidden.
IGNORE_PATTERNS = [".*", "**/.*"]


def check_repo_id(repo_id: str) -> None:
    """Refuse a repository id that is not ``name`` or ``owner/name`` in the Hub's alphabet.

    Raises:
        RecipeError: With the Hub's own reason.
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
        if repo_id.count("/") != 1:
            raise HFValidationError("a model repository id is 'owner/name'")
    except HFValidationError as error:
        reason = str(error).splitlines()[0].rstrip(".")
        raise RecipeError(
            f"repository id '{repo_id}' is not valid ({reason})", hint="use OWNER/NAME, e.g. my-org/minilm-student"
        ) from None


def files_to_send(directory: Path) -> list[dict[str, Any]]:
    """``[{"path", "bytes"}]`` of every file a push uploads (hidden files left out), sorted by path."""
    files = []
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            files.append({"path": relative.as_posix(), "bytes": path.stat().st_size})
    return files


def check_pushable(directory: Path) -> dict[str, Any]:
    """Refuse a folder mudkd did not make (or did not finish), or whose weights are not all finite.

    Returns:
        The folder's marker.

    Raises:
        CheckpointError: Not a folder, no (complete) marker, or nothing that looks like a model.
        RunError: A weight is nan or inf (:func:`mudkd.core.training.check_finite_model`).
    """
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: is not a folder", hint="pass a folder mudkd wrote (e.g. out/final)")
    proof = verify(directory)
    if not proof.owned or not proof.marker.get("complete", False):
        why = proof.describe() if not proof.owned else "is not finished"
        raise CheckpointError(
            f"{directory}: {why}; mudkd pushes only its own outputs",
            hint="push a folder written by mudkd finetune, distill, pipeline or export --output-dir "
            "(moved on purpose? `mudkd outputs adopt DIR` first)",
        )
    _check_finite_weights(directory)
    return proof.marker


def _check_finite_weights(directory: Path) -> None:
    """The finite-weights check of every model format a mudkd folder holds (safetensors, int8 PyTorch, ONNX)."""
    what = f"push {directory}"
    if any(directory.glob("*.safetensors")) and (directory / "config.json").is_file():
        check_finite_model(load_classifier(str(directory)), what)
        return

    if (directory / TORCH_INT8_WEIGHTS).is_file():
        model = load_quantized(directory)
        plain = torch.nn.Module()  # the int8 weights as plain float tensors, for the one finite check
        for index, (_, tensor) in enumerate(model.state_dict().items()):
            values = [tensor] if isinstance(tensor, torch.Tensor) else [t for t in tensor if hasattr(t, "dequantize")]
            for part, value in enumerate(values):
                value = value.dequantize() if value.is_quantized else value
                plain.register_buffer(f"t{index}_{part}", value.float() if value.is_floating_point() else value)
        check_finite_model(plain, what)
        return
    for path in sorted(directory.glob("*.onnx")):
        import onnx
        from onnx import numpy_helper

        for initializer in onnx.load(str(path)).graph.initializer:
            array = numpy_helper.to_array(initializer)
            # scalars are graph constants, not weights: the attention mask's fill value is -inf by design
            if array.dtype.kind == "f" and array.size > 1 and not np.isfinite(array).all():
                raise RunError(f"{what}: {path.name} holds a non-finite weight ({initializer.name}); nothing was sent")


@dataclass(frozen=True)
class PushPlan:
    """What a push would send (:func:`plan`), every check passed.

    Attributes:
        folder: The folder to upload.
        repo_id: The model repository, ``owner/name``.
        made_by_command: The mudkd command that made the folder (from its ownership marker).
        files: ``{"path", "bytes"}`` of every file sent, hidden files left out.
        bytes: Their total size.
        card: The model card (the folder's ``README.md``), or None when it has none.
    """

    folder: str
    repo_id: str
    made_by_command: str | None
    files: list[dict[str, Any]]
    bytes: int
    card: str | None


@dataclass(frozen=True)
class PushResult(PushPlan):
    """What :func:`push` returns; ``to_dict()`` is the ``mudkd push --json`` document.

    Attributes:
        url: The commit's URL, or None for a dry run.
        sent: False for a dry run.
        private: Whether a repository it created is private.
        revision: The branch pushed to (None: the default branch).
    """

    url: str | None = None
    sent: bool = False
    private: bool = False
    revision: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The document: the plan's fields, then ``url``, ``sent``, ``private`` and ``revision``."""
        return asdict(self)


def plan(directory: str | Path, repo_id: str) -> PushPlan:
    """What a push would send, checked: the repository id, the folder's ownership and weights, files and card."""
    folder = Path(directory)
    check_repo_id(repo_id)
    marker = check_pushable(folder)
    files = files_to_send(folder)
    card = folder / "README.md"
    return PushPlan(
        folder=str(folder),
        repo_id=repo_id,
        made_by_command=marker.get("command"),
        files=files,
        bytes=sum(entry["bytes"] for entry in files),
        card=card.read_text(encoding="utf-8") if card.is_file() else None,
    )


def push(
    directory: str | Path, repo_id: str, *, private: bool = False, revision: str | None = None, dry_run: bool = False
) -> PushResult:
    """Upload ``directory`` to the model repository ``repo_id`` (created if missing), or only plan it.

    Args:
        directory: A folder mudkd made.
        repo_id: ``owner/name``.
        private: Create the repository private (an existing repository keeps its visibility).
        revision: The branch to push to (created from the default branch if missing); None: the default branch.
        dry_run: Check and list, send nothing (no network).

    Returns:
        A :class:`PushResult`: :func:`plan`'s fields, plus ``url`` (the commit) and ``sent`` (False for a dry run).

    Raises:
        RecipeError: A bad repository id.
        CheckpointError: A folder mudkd did not make.
        RunError: Non-finite weights.
        HubError: No token, offline, or the Hub refused (nothing was sent, or the Hub's own message says what).
    """
    planned = plan(directory, repo_id)
    if dry_run:
        return PushResult(**asdict(planned), private=private, revision=revision)
    import huggingface_hub
    from huggingface_hub import errors

    token = huggingface_hub.get_token()
    if not token:
        raise HubError(
            "no Hugging Face token: pushing needs one with write access", hint="run 'hf auth login', or set HF_TOKEN"
        )
    try:
        huggingface_hub.create_repo(repo_id, private=private, exist_ok=True, token=token)
        if revision:
            huggingface_hub.create_branch(repo_id, branch=revision, exist_ok=True, token=token)
        commit = huggingface_hub.upload_folder(
            repo_id=repo_id,
            folder_path=str(directory),
            revision=revision,
            token=token,
            ignore_patterns=IGNORE_PATTERNS,
            commit_message=f"mudkd push of {Path(directory).name}",
        )
    except errors.OfflineModeIsEnabled:
        raise HubError(
            "cannot push: the Hugging Face Hub is in offline mode (HF_HUB_OFFLINE is set); nothing was sent",
            hint="unset HF_HUB_OFFLINE on a machine with network, or check what would be sent with --dry-run",
        ) from None
    except errors.HfHubHTTPError as error:
        first = str(error).splitlines()[0][:200]
        hint = "check the token's write access"
        raise HubError(f"the Hub refused the push of {repo_id}: {first}", hint=hint) from None
    except Exception as error:
        if not _network_error(error):
            raise
        raise HubError(
            f"cannot reach the Hugging Face Hub ({type(error).__name__}); nothing was sent",
            hint="check the network (or HF_ENDPOINT), or check what would be sent with --dry-run",
        ) from None
    url = str(getattr(commit, "commit_url", commit))
    return PushResult(**asdict(planned), url=url, sent=True, private=private, revision=revision)


def _network_error(error: BaseException) -> bool:
    """No route to the Hub: DNS, refused connection, timeout (httpx's ``TransportError`` or an ``OSError``)."""
    return isinstance(error, OSError) or any(kind.__name__ == "TransportError" for kind in type(error).__mro__)
