"""``python -m mudkd``."""

from mudkd.cli.app import main

main()
