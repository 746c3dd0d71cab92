"""``python tests/killpoint.py POINT MUDKD-ARGS...``: run mudkd and SIGKILL it at a known point, deterministically.

POINT is where the process kills itself, right after the state a real crash would leave:

- ``checkpoint``: the first Trainer checkpoint is whole (``trainer_state.json`` written);
- ``chunk``: the first store chunk is committed (its files renamed and the manifest written).

The process sends SIGKILL to itself, so nothing runs after that point (no ``finally``, no atexit), exactly like
``kill -9`` from outside; unlike a watcher polling the disk, it cannot miss a short window on a loaded machine.
"""

from __future__ import annotations

import functools
import os
import signal
import sys


def _die_after(owner: type, name: str) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def then_die(*args, **kwargs):
        result = original(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, name, then_die)


def main() -> None:
    point, args = sys.argv[1], sys.argv[2:]
    if point == "checkpoint":
        from transformers import Trainer

        _die_after(Trainer, "_save_checkpoint")
    elif point == "chunk":
        from mudkd.core.store.writer import StoreWriter

        _die_after(StoreWriter, "_flush_chunk")
    else:
        raise SystemExit(f"unknown kill point {point!r}: use checkpoint or chunk")
    from mudkd.cli.app import main as mudkd_main

    sys.argv = ["mudkd", *args]
    mudkd_main()


if __name__ == "__main__":
    main()
