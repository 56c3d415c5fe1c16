"""The fuzz harnesses (fuzz/) in the test suite: the corpus replayed in-process, then a bounded atheris run
of each harness (about 60 s in all; ``WSFAST_FUZZ_SECONDS`` per harness, default 18).

The atheris runs are skipped only when atheris cannot be imported (it has wheels for CPython on Linux;
``make fuzz`` runs the same harnesses longer, ``FUZZ_SECONDS`` each). A failure shows the harness's
report and the input that broke it (also written under the test's temporary directory).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest_client import extensions_disabled

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz"
TARGETS = ("decoder", "protocol", "handshake")


def load_harness():
    if extensions_disabled():
        pytest.skip("the harnesses compare the compiled twin with the pure one")
    sys.path.insert(0, str(FUZZ))
    try:
        import harness
    finally:
        sys.path.remove(str(FUZZ))
    return harness


@pytest.mark.parametrize("target", TARGETS)
def test_corpus_replays(target: str) -> None:
    harness = load_harness()
    files = sorted((FUZZ / "corpus" / target).iterdir())
    assert len(files) >= 50, "run fuzz/make_corpus.py"
    for path in files:
        try:
            harness.TARGETS[target](path.read_bytes())
        except AssertionError as exc:
            raise AssertionError(f"{path.name}: {exc}") from None


@pytest.mark.parametrize("target", TARGETS)
def test_bounded_atheris_run(target: str, tmp_path: Path) -> None:
    if extensions_disabled():
        pytest.skip("the harnesses compare the compiled twin with the pure one")
    if importlib.util.find_spec("atheris") is None:
        pytest.skip("atheris is not installed (pip install atheris; wheels for CPython on Linux)")
    seconds = int(os.environ.get("WSFAST_FUZZ_SECONDS", "18"))
    work = tmp_path / "corpus"
    work.mkdir()
    command = [
        sys.executable,
        str(FUZZ / f"fuzz_{target}.py"),
        str(work),
        str(FUZZ / "corpus" / target),
        f"-max_total_time={seconds}",
        f"-artifact_prefix={tmp_path}/",
        "-rss_limit_mb=2048",
        "-timeout=20",
        "-print_final_stats=1",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120, cwd=tmp_path)
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-")))
    report = result.stderr[-4000:]
    assert result.returncode == 0, f"atheris found a failing input {crashes}:\n{report}"
    assert not crashes, report
    assert "Done" in result.stderr or "stat::number_of_executed_units" in result.stderr, report
