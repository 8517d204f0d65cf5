"""The distribution as a user gets it: the wheel installed into an empty virtual environment with
the core dependencies only (what an exporter host or image installs), and pyproject.toml's
package list, ranges and extras checked against the source tree and constraints.txt."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CONSTRAINTS = ROOT / "constraints.txt"
DISTRIBUTION = "pharos-monitoring"
IMPORT_PACKAGE = "pharos_monitoring"


def test_every_package_folder_is_listed_in_pyproject():
    """A new subpackage must be added to [tool.setuptools] packages, or the wheel lacks it."""
    setuptools = PYPROJECT["tool"]["setuptools"]
    folders = {}
    for package, folder in setuptools["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            folders[".".join((package, *relative.parts))] = init.parent
    listed = set(setuptools["packages"])
    assert sorted(set(folders) - listed) == [], "package folders missing from pyproject.toml's packages"
    assert sorted(listed - set(folders)) == [], "pyproject.toml lists packages without a folder"


def test_constraints_pin_every_dependency_inside_its_range():
    project = PYPROJECT["project"]
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            pins[_normal(requirement.name)] = next(iter(requirement.specifier)).version
    requirements = [Requirement(text) for text in project["dependencies"]]
    requirements += [Requirement(text) for extra in project["optional-dependencies"].values() for text in extra]
    for requirement in requirements:
        if _normal(requirement.name) == DISTRIBUTION:
            continue  # `all` names the other extras
        name = _normal(requirement.name)
        assert name in pins, f"{requirement.name} has no pin in constraints.txt"
        assert requirement.specifier.contains(pins[name]), f"constraints.txt pins {name}=={pins[name]}, outside {requirement}"
        assert not any(spec.operator in ("==", "===") for spec in requirement.specifier), f"{requirement}: exact pins belong in constraints.txt"


def test_extras_layout():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert PYPROJECT["project"]["name"] == DISTRIBUTION
    assert set(extras) == {"stack", "render", "all", "test"}
    assert extras["all"] == [f"{DISTRIBUTION}[stack,render]"]
    core = {_normal(Requirement(text).name) for text in PYPROJECT["project"]["dependencies"]}
    assert core == {"prometheus-client", "requests", "psutil", "pyyaml", "bcrypt", "docker"}


@pytest.fixture(scope="module")
def core_install(tmp_path_factory):
    """The wheel, built from this checkout, installed with its core dependencies in a new venv."""
    work = tmp_path_factory.mktemp("packaging")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q", "-w", str(work / "dist"), str(ROOT)])
    wheels = list((work / "dist").glob("*.whl"))
    assert [wheel.name for wheel in wheels] == ["pharos_monitoring-0.1.0-py3-none-any.whl"]
    _run([sys.executable, "-m", "venv", str(work / "venv")])
    python = work / "venv" / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheels[0]), "-c", str(CONSTRAINTS)])
    return work / "venv"


@pytest.mark.slow
def test_the_wheel_installs_one_import_package(core_install):
    listing = _run([str(core_install / "bin" / "python"), "-c", _TOP_LEVEL_NAMES], cwd=core_install).stdout
    top_level = json.loads(listing)
    assert top_level == [IMPORT_PACKAGE], f"our distribution put {top_level} into site-packages"


@pytest.mark.slow
def test_the_wheel_carries_the_profile_schemas(core_install):
    files = json.loads(_run([str(core_install / "bin" / "python"), "-c", _FILES], cwd=core_install).stdout)
    assert f"{IMPORT_PACKAGE}/exporter/profiles/schemas/pharo-stats.schema.json" in files


@pytest.mark.slow
def test_a_core_install_runs_the_exporter(core_install):
    pharos = str(core_install / "bin" / "pharos")
    assert "exporter" in _run([pharos, "--help"]).stdout
    checked = _run([pharos, "exporter", "--check-config", "--target", "http://127.0.0.1:1/stats"])
    assert "valid" in checked.stdout
    absent = _run([str(core_install / "bin" / "python"), "-c", "import importlib.util as u; print([m for m in ('grafanalib', 'aiosmtpd', 'matplotlib', 'PIL') if u.find_spec(m)])"])
    assert absent.stdout.strip() == "[]", "a core install carries the stack or render libraries"


@pytest.mark.slow
@pytest.mark.parametrize(
    "arguments,extra",
    [
        (["up"], "stack"),
        (["sinks", "--dir", "/nonexistent"], "stack"),
        (["build", "--config", "examples/stack.yml", "--out", "/nonexistent"], "stack"),
        (["dashboards", "build", "--out", "/nonexistent"], "stack"),
        (["dashboards", "render", "--prometheus", "http://127.0.0.1:1", "--out", "/nonexistent"], "render"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else value,
)
def test_a_command_without_its_extra_says_what_to_install(core_install, arguments, extra):
    # Refused before anything starts: `up` must not start half a stack.
    result = subprocess.run([str(core_install / "bin" / "pharos"), *arguments], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"pharos {' '.join(arguments[:2]) if arguments[0] == 'dashboards' else arguments[0]}: needs the '{extra}' extra")
    assert lines[0].endswith(f"pip install '{DISTRIBUTION}[{extra}]'")


_FILES = f"""
import importlib.metadata, json
print(json.dumps(sorted(str(f) for f in importlib.metadata.files({DISTRIBUTION!r}))))
"""

# Top-level names our distribution put into site-packages: its files, less its metadata and the
# console script (installed outside site-packages, as ../../../bin/pharos).
_TOP_LEVEL_NAMES = f"""
import importlib.metadata, json
names = set()
for f in importlib.metadata.files({DISTRIBUTION!r}):
    top = f.parts[0]
    if top != ".." and not top.endswith(".dist-info"):
        names.add(top.removesuffix(".py"))
print(json.dumps(sorted(names)))
"""


def _normal(name: str) -> str:
    return name.lower().replace("_", "-")


def _run(command: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    # Not from the checkout when reading metadata: `python -c` puts the working directory on
    # sys.path, and the checkout's own *.egg-info would answer.
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(command)}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    return result
