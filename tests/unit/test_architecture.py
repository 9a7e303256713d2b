"""The layers import downwards only, and entry points change the clock only through its service.

domain ← adapters ← services ← api ← demo ← console ← cli ← __main__, with `config` (settings,
read once) at the bottom beside the domain, `observability` (metrics, logs, request context)
between the adapters and the services that record into it, `bootstrap` (wiring) between the
services and the entry points, and `console` (the command's parameters, output and errors) just
under the CLI it serves.
The domain imports the standard library and itself only (STYLE habit 1).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import flexearn

PACKAGE = Path(flexearn.__file__).parent
FORBIDDEN_STDLIB = {"os", "time", "datetime", "sqlite3", "socket", "subprocess"}

# What each layer may import of flexearn besides itself.
ALLOWED: dict[str, set[str]] = {
    "domain": set(),
    "config": set(),
    "adapters": {"domain"},
    "observability": {"domain", "adapters", "config"},
    "services": {"domain", "adapters", "config", "observability"},
    "bootstrap": {"domain", "adapters", "config", "services"},
    "api": {"domain", "adapters", "config", "observability", "services", "bootstrap"},
    "demo": {"domain", "adapters", "config", "observability", "services", "bootstrap", "api"},
    "console": {"domain", "adapters", "config", "observability", "services", "bootstrap", "api", "demo"},
    "cli": {
        "domain", "adapters", "config", "observability", "services", "bootstrap", "api", "demo", "console",
    },
    "__main__": {"cli"},
}
ENTRY_POINTS = {"api", "demo", "console", "cli", "__main__"}
# What an entry point may take from the clock adapter: reading time, never moving it (the
# service does, `services/clock.py`: in one place, with its rules).
CLOCK_READS = {"wall_ms", "floor_hour", "ceil_hour", "HOUR_MS", "ClockCache", "ClockState", "REAL"}


def modules() -> Iterator[tuple[Path, str]]:
    """Every module of the package (migrations included) and its layer: its top-level name."""
    for path in sorted(PACKAGE.rglob("*.py")):
        if path != PACKAGE / "__init__.py":
            yield path, path.relative_to(PACKAGE).with_suffix("").parts[0]


def imports(path: Path) -> Iterator[tuple[str, list[str]]]:
    """Each absolute import: the module and the names taken from it (none: the module itself)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, [alias.name for alias in node.names]


def flexearn_layer(module: str, names: list[str]) -> list[str]:
    """The layers an import reaches: `from flexearn import cli` reaches `cli`."""
    parts = module.split(".")
    if parts[0] != "flexearn":
        return []
    return [parts[1]] if len(parts) > 1 else names


def test_every_module_is_in_a_known_layer() -> None:
    layers = {layer for _, layer in modules()}
    assert layers == set(ALLOWED)


def test_nothing_imports_upward() -> None:
    offenders = []
    for path, layer in modules():
        for module, names in imports(path):
            for target in flexearn_layer(module, names):
                if target != layer and target not in ALLOWED[layer]:
                    offenders.append(f"{path.relative_to(PACKAGE)} ({layer}) imports {module} ({target})")
    assert offenders == []


def test_the_domain_imports_only_the_standard_library_and_itself() -> None:
    offenders = []
    for path, layer in modules():
        if layer != "domain":
            continue
        for module, _ in imports(path):
            top = module.split(".")[0]
            allowed = (
                module.startswith("flexearn.domain")
                or module == "__future__"
                or (top in sys.stdlib_module_names and top not in FORBIDDEN_STDLIB)
            )
            if not allowed:
                offenders.append(f"{path.name} imports {module}")
    assert offenders == []


def test_entry_points_move_the_clock_only_through_its_service() -> None:
    offenders = []
    for path, layer in modules():
        if layer not in ENTRY_POINTS:
            continue
        for module, names in imports(path):
            if module == "flexearn.adapters" and "clock" in names:
                offenders.append(f"{path.relative_to(PACKAGE)}: the clock adapter itself")
            elif module == "flexearn.adapters.clock" and not set(names) <= CLOCK_READS:
                offenders.append(f"{path.relative_to(PACKAGE)}: {sorted(set(names) - CLOCK_READS)}")
            elif (
                module == "flexearn.adapters" and "tables" in names
            ) or module == "flexearn.adapters.tables":
                offenders.append(f"{path.relative_to(PACKAGE)}: the tables (writes are the services')")
    assert offenders == []
