"""The compiled modules under AddressSanitizer and UndefinedBehaviorSanitizer.

A copy of the source tree is built in place with ``-fsanitize=address,undefined`` (``WSFAST_EXTRA_CFLAGS``,
``WSFAST_EXTRA_LDFLAGS`` and ``WSFAST_DEBUG_BUILD``, see setup.py); then the codec tests and the fuzz corpus
run against that build in a subprocess with the ASan runtime preloaded (the interpreter itself is not
instrumented). Any sanitizer report aborts the subprocess and fails the test. About two minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform != "linux" or sys.implementation.name != "cpython", reason="gcc/Linux"),
    pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc"),
    pytest.mark.skipif(bool(os.environ.get("WSFAST_NO_EXTENSIONS")), reason="pure-Python run"),
]

SANITIZE = "-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CODEC_TESTS = [
    "tests/test_codec_decoder.py",
    "tests/test_codec_encoder.py",
    "tests/test_codec_options.py",
    "tests/test_kernels.py",
    "tests/test_differential.py",
    "tests/test_deflate.py",
    "tests/test_fuzz.py::test_corpus_replays",  # (atheris itself is not run under ASan)
]
REPORTS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer", "UndefinedBehaviorSanitizer")


def runtime(name: str) -> str:
    path = subprocess.run(
        ["gcc", f"-print-file-name={name}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if not os.path.isabs(path) or not os.path.exists(path):
        pytest.skip(f"gcc has no {name}")
    return path


def test_codec_tests_and_fuzz_corpus_under_asan_and_ubsan(tmp_path: Path) -> None:
    asan = runtime("libasan.so")
    copy = tmp_path / "wsfast"
    shutil.copytree(
        ROOT,
        copy,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "build",
            "dist",
            "*.so",
            "*.c",
            "*.egg-info",
            "__pycache__",
            ".*cache*",
            "node_modules",
        ),
    )
    build_env = dict(
        os.environ,
        WSFAST_BUILD_EXTENSION="yes",
        WSFAST_DEBUG_BUILD="1",
        WSFAST_EXTRA_CFLAGS=SANITIZE,
        WSFAST_EXTRA_LDFLAGS="-fsanitize=address,undefined",
    )
    build = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=copy,
        env=build_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    built = sorted(p.name for p in (copy / "src" / "wsfast").glob("*_c.*.so"))
    assert len(built) == 3, built

    run_env = dict(
        os.environ,
        PYTHONPATH=str(copy / "src"),
        LD_PRELOAD=asan,
        # Reports also go to files: pytest captures stderr, and a halted process never shows it.
        ASAN_OPTIONS=f"detect_leaks=0:abort_on_error=1:log_path={tmp_path}/asan",
        UBSAN_OPTIONS=f"halt_on_error=1:print_stacktrace=1:log_path={tmp_path}/ubsan",
    )
    run_env.pop("WSFAST_NO_EXTENSIONS", None)
    # The sanitized build must be what the tests import, not the installed one.
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import wsfast._codec_c as c, wsfast._codec_py as p; print(c.__file__, p.__file__)",
        ],
        cwd=copy,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert all(path.startswith(str(copy)) for path in probe.stdout.split()), probe.stdout

    tests = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-x",
            "-p",
            "no:cacheprovider",
            *CODEC_TESTS,
            "-k",
            "not client",
        ],
        cwd=copy,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    logs = "".join(path.read_text(errors="replace") for path in sorted(tmp_path.glob("[au][sb]san.*")))
    output = tests.stdout[-4000:] + tests.stderr[-3000:] + logs[-6000:]
    assert not logs, output
    assert not any(report in tests.stdout + tests.stderr for report in REPORTS), output
    assert tests.returncode == 0, output
    assert " passed" in tests.stdout, output
