"""The house as the README draws it: its rooms (packages and a few top-level modules), one
floor per line of the README's map, and imports that only go sideways or down.

Read from the source, not by importing it: every ``import`` counts, at module level, in a
function or under ``TYPE_CHECKING`` alike — a dependency the type checker needs is still one
the next engineer has to hold in their head."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = SRC / "rtbridge"
# Test folders that are suites, not mirrors of a source package.
SUITES = {"support", "sip/security", "sip/scenarios"}


def _floors() -> list[list[str]]:
    """The README's map: each line of its ``## Layout`` block that names rooms (two spaces,
    then the rooms, then their description) is one floor, lowest first."""
    text = (ROOT / "README.md").read_text()
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    floors = []
    for line in block.splitlines():
        match = re.match(r"^  (\S+(?: \S+)*?)(?:\s{2,}|$)", line)
        if match and not line.startswith("   "):
            floors.append([_room_name(word) for word in match.group(1).split()])
    return floors


def _room_name(word: str) -> str:
    """``sip/auth/`` → ``sip/auth``; ``numerals.py`` → ``numerals``; ``http/app.py`` →
    ``http/app`` (a module that is a room of its own)."""
    return word.rstrip("/").removesuffix(".py")


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


MODULES = dict(_modules())
FLOORS = _floors()
FLOOR = {room: n for n, rooms in enumerate(FLOORS) for room in rooms}


def _room(module: str) -> str | None:
    """The most specific room of the map that holds ``module`` (None: in none)."""
    parts = module.split(".")[1:]
    for depth in range(len(parts), 0, -1):
        candidate = "/".join(parts[:depth])
        if candidate in FLOOR:
            return candidate
    return None


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def _resolve(name: str) -> str | None:
    """The rtbridge module an imported name lives in (None: not rtbridge's)."""
    parts = name.split(".")
    while parts and ".".join(parts) not in MODULES:
        parts.pop()
    return ".".join(parts) or None


EDGES = {
    module: {
        target
        for name in _imports(path)
        if name.split(".")[0] == "rtbridge" and (target := _resolve(name)) not in (None, module)
    }
    for module, path in MODULES.items()
}
# The package's own __init__ (the version) and __main__ (python -m rtbridge) sit outside
# the map: the first imports nothing, the second only the command.
_OUTSIDE = {"rtbridge", "rtbridge.__main__"}


def test_every_module_is_in_a_room_of_the_map_and_every_room_exists() -> None:
    homeless = [m for m in MODULES if m not in _OUTSIDE and _room(m) is None]
    assert homeless == [], f"modules in no room of the README's map: {homeless}"
    empty = [room for room in FLOOR if not any(_room(m) == room for m in MODULES)]
    assert empty == [], f"rooms in the README's map that hold no module: {empty}"
    assert EDGES["rtbridge"] == set() and EDGES["rtbridge.__main__"] <= {"rtbridge.cli.main"}


def test_no_import_goes_up_a_floor() -> None:
    up = sorted(
        f"{a} ({_room(a)}, floor {FLOOR[room_a]}) imports {b} ({_room(b)}, floor {FLOOR[room_b]})"
        for a, targets in EDGES.items()
        if (room_a := _room(a)) is not None
        for b in targets
        if (room_b := _room(b)) is not None and FLOOR[room_b] > FLOOR[room_a]
    )
    assert up == [], "\n".join(up)


def test_no_import_cycle() -> None:
    """Tarjan's strongly connected components over the module graph: none bigger than one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in EDGES.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in MODULES:
        if module not in index:
            visit(module)
    assert cycles == []


def test_pjsua2_only_in_the_b2bua_room() -> None:
    users = sorted(
        module
        for module, path in MODULES.items()
        if any(name.split(".")[0] in ("pjsua2", "_pjsua2") for name in _imports(path))
    )
    assert users and all(m.startswith("rtbridge.sip.b2bua.") for m in users), users


def test_tests_mirror_the_source() -> None:
    """Every test folder is a source package's (or a named suite): a test is found where the
    code it tests lives."""
    folders = {
        str(p.relative_to(ROOT / "tests"))
        for p in (ROOT / "tests").rglob("*")
        if p.is_dir() and p.name != "__pycache__" and any(p.glob("*.py"))
    }
    strays = sorted(f for f in folders if f not in SUITES and not (PACKAGE / f).is_dir())
    assert strays == [], f"test folders with no source package: {strays}"
