"""``mudkd env``: versions, device and threads, for a bug report."""

from __future__ import annotations

from mudkd.cli import common as c
from mudkd.cli import options as o

EPILOG = """Examples:

  $ mudkd env

  $ mudkd env --json
"""


def env_cli(json_: o.JsonOpt = False) -> None:
    """Print mudkd's, Python's and the libraries' versions, the device and the CPU threads (for a bug report)."""
    from mudkd.core.env import describe_environment

    info = describe_environment()
    if json_:
        c.emit_json(info)
        return
    c.print_table("mudkd env", [(key, "-" if value is None else value) for key, value in info.items()])
