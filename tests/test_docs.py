"""The documentation: docs/api.md is what docs/generate.py makes from today's docstrings, and the README
starts with the two set-up commands and shows code that at least compiles."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    not (ROOT / "docs" / "generate.py").exists(), reason="needs the source checkout (docs/)"
)


def test_api_reference_is_up_to_date() -> None:
    environment = {k: v for k, v in os.environ.items() if k != "WSFAST_NO_EXTENSIONS"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        env=environment,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_api_reference_documents_every_public_name() -> None:
    import wsfast

    api = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^### `(?:wsfast\.)?([\w.]+)`", api, re.MULTILINE))
    assert set(wsfast.__all__) <= headings


def test_readme_starts_with_the_two_set_up_commands() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "# wsfast"
    assert lines[2] == "```sh"
    assert lines[3].startswith("make run    # ")
    assert lines[4].startswith("make test   # ")


def test_readme_python_examples_compile() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
    assert len(blocks) >= 3
    for block in blocks:
        if block.lstrip().startswith(">>>"):
            continue
        ast.parse(block)
