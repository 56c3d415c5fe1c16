"""The build switch: WSFAST_BUILD_EXTENSION=yes|no|auto, and a failed compile is never silent."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.implementation.name != "cpython", reason="the compile is CPython-only"),
    pytest.mark.skipif(
        not (ROOT / "setup.py").exists() or (shutil.which("cc") is None and shutil.which("gcc") is None),
        reason="needs a source checkout and a C compiler",
    ),
]


def build_wheel(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    source = tmp_path / "src-copy"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.so", "*.c", "*.egg-info", "__pycache__", ".*cache*"
        ),
    )
    environment = dict(os.environ, **env)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(source),
        ],
        capture_output=True,
        text=True,
        env=environment,
    )


def wheel_in(directory: Path) -> Path:
    (wheel,) = directory.glob("wsfast-*.whl")
    return wheel


def test_no_builds_a_pure_wheel(tmp_path: Path) -> None:
    result = build_wheel(tmp_path, WSFAST_BUILD_EXTENSION="no")
    assert result.returncode == 0, result.stderr
    wheel = wheel_in(tmp_path)
    assert wheel.name.endswith("-py3-none-any.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "wsfast/_codec_py.py" in names
    assert not [n for n in names if n.endswith((".so", ".pyd", ".c"))]


def test_yes_builds_the_compiled_modules(tmp_path: Path) -> None:
    result = build_wheel(tmp_path, WSFAST_BUILD_EXTENSION="yes")
    assert result.returncode == 0, result.stderr
    names = zipfile.ZipFile(wheel_in(tmp_path)).namelist()
    for module in ("_codec_c", "_mask_c", "_utf8_c"):
        assert [n for n in names if n.startswith(f"wsfast/{module}.") and n.endswith((".so", ".pyd"))]
    assert "wsfast/_codec_c.pyi" in names
    assert "wsfast/py.typed" in names
    assert not [n for n in names if n.endswith(".c")], "generated C must not ship in wheels"


def test_failed_compile_is_loud(tmp_path: Path) -> None:
    # Force the C compiler to fail: the default (auto) mode on CPython must not fall back to pure.
    result = build_wheel(tmp_path, WSFAST_EXTRA_CFLAGS="-include wsfast-no-such-header.h")
    assert result.returncode != 0
    assert not list(tmp_path.glob("wsfast-*.whl"))


def test_unknown_mode_is_rejected(tmp_path: Path) -> None:
    result = build_wheel(tmp_path, WSFAST_BUILD_EXTENSION="maybe")
    assert result.returncode != 0
    assert "WSFAST_BUILD_EXTENSION" in result.stdout + result.stderr
