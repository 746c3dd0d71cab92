"""The processes of a distributed launch (``torchrun``/``accelerate launch``) for passes mudkd splits by hand.

The Trainer stages get their process group from ``transformers``; the store's teacher pass
(:mod:`mudkd.core.stages.cache`) has no Trainer, so it joins the launch here: a gloo group (the ranks exchange CPU
numpy arrays, whatever device the teacher runs on) when ``WORLD_SIZE > 1``, nothing at all on one process.

Every collective here also carries failures: a rank that failed tells the others, and every rank then raises
(the failing one its own error), so no rank waits forever for a peer that has already stopped.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import torch.distributed as dist

from mudkd.errors import RunError

T = TypeVar("T")


class Ranks:
    """This process's place in the launch: ``rank`` of ``world`` (0 of 1 without a launcher)."""

    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self._created = False
        if self.world > 1:
            if not dist.is_initialized():
                dist.init_process_group("gloo")
                self._created = True

    @property
    def main(self) -> bool:
        return self.rank == 0

    def __enter__(self) -> Ranks:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._created:
            dist.destroy_process_group()
            self._created = False

    def device(self, device: str) -> str:
        """The device of this rank: ``cuda`` means this rank's GPU (``LOCAL_RANK``) under a launch."""
        return f"cuda:{self.local_rank}" if self.world > 1 and device == "cuda" else device

    def together(self, action: Callable[[], T]) -> T:
        """Run ``action`` on this rank, then make every rank fail if any rank failed; return its result."""
        if self.world == 1:
            return action()
        try:
            result, failure = action(), None
        except BaseException as error:  # noqa: BLE001 - re-raised below, after telling the other ranks
            result, failure = None, error
        self._settle(failure)
        return result  # type: ignore[return-value]

    def gather(self, action: Callable[[], T]) -> list[T] | None:
        """Run ``action`` on every rank; rank 0 gets the results in rank order (others None); a failure anywhere
        fails every rank."""
        if self.world == 1:
            return [action()]
        try:
            mine: Any = (action(), None)
        except BaseException as error:  # noqa: BLE001
            mine, failure = (None, _describe(error)), error
        else:
            failure = None
        received: list[Any] | None = [None] * self.world if self.main else None
        dist.gather_object(mine, received, dst=0)
        problem = failure or _first_failure(received)
        self._settle(problem)
        return [value for value, _ in received] if received is not None else None

    def broadcast(self, action: Callable[[], T]) -> T:
        """Run ``action`` on rank 0 alone and give its result to every rank (a failure there fails every rank)."""
        if self.world == 1:
            return action()
        box: list[Any] = [None]
        failure: BaseException | None = None
        if self.main:
            try:
                box[0] = (action(), None)
            except BaseException as error:  # noqa: BLE001
                box[0], failure = (None, _describe(error)), error
        dist.broadcast_object_list(box, src=0)
        value, described = box[0]
        if failure is not None:
            raise failure
        if described is not None:
            raise RunError(f"rank 0 failed: {described}", hint="see rank 0's error above")
        return value

    def _settle(self, failure: BaseException | str | None) -> None:
        """Every rank learns whether any rank failed; raise then (this rank's own error where it has one)."""
        own = failure if isinstance(failure, BaseException) else None
        outcomes: list[Any] = [None] * self.world
        dist.all_gather_object(outcomes, _describe(failure) if failure is not None else None)
        if own is not None:
            raise own
        if isinstance(failure, str):  # rank 0 learned of a peer's failure through a gather
            raise RunError(failure, hint="see that rank's error above")
        for rank, described in enumerate(outcomes):
            if described is not None:
                raise RunError(f"rank {rank} failed: {described}", hint=f"see rank {rank}'s error above")


def _describe(error: BaseException | str) -> str:
    if isinstance(error, str):
        return error
    message = getattr(error, "message", None) or str(error)
    return f"{type(error).__name__}: {message}"


def _first_failure(received: list[Any] | None) -> str | None:
    for rank, (_, described) in enumerate(received or []):
        if described is not None:
            return f"rank {rank} failed: {described}"
    return None
