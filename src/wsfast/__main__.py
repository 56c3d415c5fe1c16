"""``python -m wsfast``: the command-line interface (see :mod:`wsfast.cli`)."""

import sys

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
