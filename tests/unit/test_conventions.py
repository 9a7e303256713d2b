"""The repository's conventions hold: every dependency pinned in constraints.txt (what ./dev and
CI install from), the licence the metadata names, build output ignored."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_runtime_and_test_dependency_is_pinned_in_the_constraints_file() -> None:
    pinned = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pinned[canonical(name)] = version
    project = PYPROJECT["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    names = {canonical(re.match(r"[A-Za-z0-9_.-]+", spec).group()) for spec in wanted}
    assert names - pinned.keys() == set()
    assert all(re.fullmatch(r"[0-9][0-9A-Za-z.+-]*", v) for v in pinned.values())


def test_the_licence_file_is_the_one_the_metadata_names() -> None:
    assert PYPROJECT["project"]["license"] == "MIT"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n\nCopyright (c) 2026 the flexearn authors\n")


def test_build_output_and_demo_state_are_ignored() -> None:
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert {"build/", "dist/", "*.egg-info/", ".venv/", "*.db", "*.key.json"} <= set(ignored)


def test_dev_and_ci_install_from_the_constraints_file() -> None:
    assert '-c constraints.txt -e "$spec"' in (ROOT / "dev").read_text()
    assert "./dev test" in (ROOT / ".ci" / "run").read_text()
