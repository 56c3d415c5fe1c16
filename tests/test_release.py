"""The release configuration, checked here because it only runs on GitHub: the cibuildwheel matrix
([tool.cibuildwheel] in pyproject.toml), the workflow files (actionlint, and the release plan of issue 9),
and the free-threading declaration of the compiled modules."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"

pytestmark = pytest.mark.skipif(
    not (ROOT / "setup.py").exists() or not WORKFLOWS.is_dir(),
    reason="needs the source checkout (the sdist has no .github/)",
)

PYTHONS = ("cp310", "cp311", "cp312", "cp313", "cp314", "cp314t")
# The intended matrix: every CPython of PYTHONS on every platform below, and nothing else (no PyPy, no
# GraalPy, no 32-bit, no CPython newer than 3.14 until it is added on purpose).
INTENDED = {
    "linux": {
        f"{python}-{libc}_{arch}"
        for python in PYTHONS
        for libc in ("manylinux", "musllinux")
        for arch in ("x86_64", "aarch64")
    },
    "macos": {f"{python}-macosx_{arch}" for python in PYTHONS for arch in ("x86_64", "arm64")},
    "windows": {f"{python}-win_{arch}" for python in PYTHONS for arch in ("amd64", "arm64")},
}
# release.yml's runners and the architecture each one builds natively.
RUNNERS = {
    "ubuntu-latest": "x86_64",
    "ubuntu-24.04-arm": "aarch64",
    "macos-15-intel": "x86_64",
    "macos-14": "arm64",
    "windows-latest": "AMD64",
    "windows-11-arm": "ARM64",
}


def pyproject() -> dict[str, Any]:
    with open(ROOT / "pyproject.toml", "rb") as file:
        return tomllib.load(file)


def tool_path(name: str) -> str | None:
    """A console script installed next to this interpreter (the test extra), else one on PATH."""
    here = Path(sys.executable).parent
    return shutil.which(name, path=os.pathsep.join([str(here), os.environ.get("PATH", "")]))


class TestCibuildwheel:
    @pytest.mark.parametrize("platform", sorted(INTENDED))
    def test_build_identifiers_are_the_intended_matrix(self, platform: str) -> None:
        pytest.importorskip("cibuildwheel", reason="cibuildwheel comes with the test extra")
        # Only pyproject.toml decides: no CIBW_* variable of the calling environment may leak in.
        environment = {k: v for k, v in os.environ.items() if not k.startswith("CIBW_")}
        result = subprocess.run(
            [sys.executable, "-m", "cibuildwheel", "--print-build-identifiers", "--platform", platform],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=environment,
        )
        assert result.returncode == 0, result.stderr
        identifiers = result.stdout.split()
        assert len(identifiers) == len(set(identifiers))
        assert set(identifiers) == INTENDED[platform]

    def test_every_platform_makes_the_compile_mandatory(self) -> None:
        config = pyproject()["tool"]["cibuildwheel"]
        # A table per platform replaces the global environment, so each one must say it again.
        for table in (config, config["linux"], config["macos"], config["windows"]):
            assert table["environment"]["WSFAST_BUILD_EXTENSION"] == "yes"
        assert config["linux"]["environment"]["WSFAST_EXTRA_LDFLAGS"] == "-s"
        assert config["macos"]["environment"]["WSFAST_EXTRA_LDFLAGS"] == "-Wl,-S,-x"
        for override in config.get("overrides", []):
            assert "environment" not in override or override["environment"]["WSFAST_BUILD_EXTENSION"] == "yes"

    def test_the_wheel_test_requires_the_compiled_twins_first(self) -> None:
        config = pyproject()["tool"]["cibuildwheel"]
        first, *rest = config["test-command"]
        assert first == "python tests/wheel_check.py cython"
        assert any(command.startswith("python -m pytest tests") for command in rest)
        assert {"tests", "compliance", "pyproject.toml"} <= set(config["test-sources"])
        (free_threaded,) = [o for o in config["overrides"] if o["select"] == "cp314t-*"]
        assert free_threaded["test-environment"] == {"PYTHON_GIL": "0"}


class TestFreeThreading:
    @pytest.mark.parametrize("module", ["_codec_c", "_mask_c", "_utf8_c"])
    def test_compiled_modules_declare_free_threading_support(self, module: str) -> None:
        # Cython 3.1+: the module-level directive sets Py_mod_gil = Py_MOD_GIL_NOT_USED; without it the
        # free-threaded interpreter re-enables the GIL on import (tests/wheel_check.py checks that part).
        first_line = (ROOT / "src" / "wsfast" / f"{module}.pyx").read_text().splitlines()[0]
        assert re.fullmatch(r"# cython: .*\bfreethreading_compatible=True\b.*", first_line), first_line

    @pytest.mark.skipif(sys.implementation.name != "cpython", reason="compiled twins are CPython-only")
    def test_importing_the_compiled_twins_leaves_the_gil_as_it_was(self) -> None:
        code = (
            "import sys, wsfast._codec_c, wsfast._mask_c, wsfast._utf8_c\n"
            "print(getattr(sys, '_is_gil_enabled', lambda: True)())\n"
        )
        environment = {k: v for k, v in os.environ.items() if k not in ("PYTHON_GIL", "WSFAST_NO_EXTENSIONS")}
        result = subprocess.run(
            [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, env=environment
        )
        if result.returncode != 0 and "No module named 'wsfast._" in result.stderr:
            pytest.skip("the compiled twins are not built")
        assert result.returncode == 0, result.stderr
        import sysconfig

        free_threaded = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
        assert result.stdout.strip() == str(not free_threaded)


class TestWorkflows:
    def test_workflows_match_the_github_workflow_schema(self, tmp_path: Path) -> None:
        # check-jsonschema ships SchemaStore's GitHub workflow schema: no network needed.
        checker = tool_path("check-jsonschema")
        if checker is None:
            pytest.fail("check-jsonschema is missing: install the test extra (pip install -e '.[test]')")
        files = sorted(WORKFLOWS.glob("*.y*ml"))
        assert {f.name for f in files} >= {"ci.yml", "release.yml"}
        command = [checker, "--builtin-schema", "vendor.github-workflows"]
        result = subprocess.run([*command, *map(str, files)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        # The check is real: a job without runs-on, with an unknown key, is rejected.
        broken = tmp_path / "broken.yml"
        broken.write_text("on: push\njobs:\n  build:\n    runs_on: ubuntu-latest\n    steps: []\n")
        result = subprocess.run([*command, str(broken)], capture_output=True, text=True)
        assert result.returncode != 0

    def test_actionlint_finds_nothing(self) -> None:
        # actionlint checks more than the schema (expressions, runner labels, shell scripts). Upstream
        # publishes no wheel a registry-only machine can install, so it runs where it is on PATH (the
        # lint job of ci.yml installs it); the schema check above always runs.
        actionlint = tool_path("actionlint")
        if actionlint is None:
            pytest.skip("actionlint is not installed (ci.yml's lint job runs it)")
        for path in sorted(WORKFLOWS.glob("*.y*ml")):
            result = subprocess.run(
                [actionlint, "-no-color", str(path.relative_to(ROOT))],
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            assert result.returncode == 0, f"actionlint on {path.name}:\n{result.stdout}{result.stderr}"
            assert result.stdout == "", result.stdout

    def test_release_builds_the_sdist_and_pure_wheel_first(self) -> None:
        text = (WORKFLOWS / "release.yml").read_text()
        assert re.search(r"on:\n  push:\n    tags: \[\"v\*\"\]", text)
        dist = job(text, "dist")
        assert "python -m build --sdist" in dist
        assert "python -m build --wheel" in dist
        assert 'WSFAST_BUILD_EXTENSION: "no"' in dist
        assert "py3-none-any.whl" in dist
        assert 'wheel_check.py" python' in dist

    def test_release_builds_wheels_from_the_sdist_on_every_runner(self) -> None:
        wheels = job((WORKFLOWS / "release.yml").read_text(), "wheels")
        assert "needs: dist" in wheels
        runners = dict(re.findall(r"- \{ os: ([\w.-]+), archs: (\w+) \}", wheels))
        assert runners == RUNNERS
        assert "python -m cibuildwheel --output-dir wheelhouse dist/wsfast-*.tar.gz" in wheels
        assert "CIBW_ARCHS: ${{ matrix.archs }}" in wheels

    def test_release_publishes_with_trusted_publishing_and_attestations(self) -> None:
        text = (WORKFLOWS / "release.yml").read_text()
        publish = job(text, "publish")
        assert "needs: [dist, wheels]" in publish
        assert "id-token: write" in publish
        assert "attestations: write" in publish
        assert "uses: actions/attest-build-provenance@v" in publish
        assert "uses: pypa/gh-action-pypi-publish@release/v1" in publish
        assert "password" not in publish, "trusted publishing needs no token"
        # Only the publish job may mint an OIDC token.
        assert text.count("id-token: write") == 1

    def test_actions_are_pinned_at_least_by_major_version(self) -> None:
        for path in WORKFLOWS.glob("*.y*ml"):
            for action in re.findall(r"uses: ([^\s#]+)", path.read_text()):
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@(v\d+(\.\d+)*|release/v\d+|[0-9a-f]{40})", action), (
                    f"{path.name}: {action}"
                )

    def test_ci_covers_the_pythons_both_implementations_autobahn_and_pypy(self) -> None:
        text = (WORKFLOWS / "ci.yml").read_text()
        assert 'python: ["3.10", "3.11", "3.12", "3.13", "3.14", "3.14t"]' in text
        assert "make lint" in job(text, "lint")
        test = job(text, "test")
        assert "wsfast.implementation != 'cython'" in test
        assert 'WSFAST_NO_EXTENSIONS: "1"' in test
        assert "PYTHON_GIL:" in test
        assert "python compliance/run_autobahn.py" in job(text, "autobahn")
        assert "implementation != 'python'" in job(text, "pypy")

    def test_the_lint_target_runs_stubtest_and_mypy_strict(self) -> None:
        makefile = (ROOT / "Makefile").read_text()
        lint = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
        assert "mypy --strict src/wsfast" in lint
        assert "-m mypy.stubtest --allowlist stubtest-allowlist.txt wsfast._codec_c wsfast._mask_c" in lint


def job(workflow: str, name: str) -> str:
    """The text of one job of a workflow file (from ``  name:`` to the next job at the same indent)."""
    match = re.search(rf"^  {re.escape(name)}:\n(.*?)(?=^  [\w-]+:\n|\Z)", workflow, re.MULTILINE | re.DOTALL)
    assert match, f"no job {name!r}"
    return match.group(1)
