"""The domain stays pure: it imports the standard library and itself only (STYLE habit 1)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import flexearn.domain

DOMAIN = Path(flexearn.domain.__file__).parent
FORBIDDEN_STDLIB = {"os", "time", "datetime", "sqlite3", "socket", "subprocess"}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_domain_imports_only_the_standard_library_and_itself() -> None:
    offenders = {}
    for path in DOMAIN.glob("*.py"):
        for name in imported_modules(path):
            top = name.split(".")[0]
            allowed = (
                name.startswith("flexearn.domain")
                or name == "__future__"
                or (top in sys.stdlib_module_names and top not in FORBIDDEN_STDLIB)
            )
            if not allowed:
                offenders.setdefault(path.name, []).append(name)
    assert offenders == {}
    assert len(list(DOMAIN.glob("*.py"))) >= 5  # the check looked at the real package
