"""The atheris entry point shared by ``fuzz_*.py``: instrument wsfast, then fuzz one harness target."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main(target: str) -> None:
    try:
        import atheris
    except ImportError:
        sys.exit("atheris is not installed: pip install atheris (CPython 3.8-3.11 on Linux/macOS)")
    with atheris.instrument_imports(include=["wsfast", "harness"]):
        import harness

        harness.twins()  # imports the pure twin (wsfast imports only the compiled one) while instrumenting
    check = harness.TARGETS[target]
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()
