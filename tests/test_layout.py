"""The layers hold: imports point one way, web → review/jobs/security → memory → aligner.

``aligner`` never imports the service. Inside ``service``, a module may import modules of a
lower layer and of its own package, never of a higher layer or of a sibling package of its own
layer (the foundation, settings and errors, excepted); no route module imports another; the
store interface never imports an implementation.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# service packages and modules by layer, highest first; the longest prefix decides.
LAYERS = {
    "service.web": 4,
    "service.cli": 4,
    "service.load": 4,
    "service.review": 3,
    "service.jobs": 3,
    "service.security": 3,
    "service.memory": 2,
    "service.documents": 1,
    "service.config": 1,
    "service.errors": 1,
    "aligner": 0,
}


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return [n for n in names if n.split(".")[0] in ("aligner", "service")]


def _unit(module: str) -> str | None:
    """The layered package or module ``module`` belongs to."""
    found = [p for p in LAYERS if module == p or module.startswith(p + ".")]
    return max(found, key=len) if found else None


def _modules(package: str) -> dict[str, Path]:
    return {_module(p): p for p in sorted((ROOT / package).rglob("*.py"))}


def _offences(modules: dict[str, Path]) -> list[str]:
    known = set(_modules("aligner")) | set(_modules("service"))
    out = []
    for name, path in modules.items():
        mine = _unit(name)
        for target in _imports(path):
            if target not in known:  # ``from x import name`` where name is not a module
                continue
            theirs = _unit(target)
            if name.startswith("aligner") and target.startswith("service"):
                out.append(f"{name} -> {target}: aligner never imports the service")
            elif mine is None or theirs is None:
                out.append(f"{name} -> {target}: module outside the layers")
            elif mine != theirs and LAYERS[theirs] >= LAYERS[mine] and LAYERS[mine] > 1:
                out.append(f"{name} -> {target}: {mine} may not import {theirs}")
            elif name.startswith("service.web.routes.") and target.startswith(
                "service.web.routes."
            ) and name != target:
                out.append(f"{name} -> {target}: a route module imports another")
            elif name == "service.memory.store" and target.startswith("service.memory."):
                out.append(f"{name} -> {target}: the store interface imports an implementation")
    return out


def test_imports_point_one_way():
    modules = {**_modules("aligner"), **_modules("service")}
    assert len(modules) > 50  # the walk really saw both packages
    assert _offences(modules) == []


def test_the_check_finds_wrong_imports(tmp_path):
    """Each rule, broken once in a module written for the purpose, is reported."""
    cases = {
        "aligner/read/bad.py": "from service.memory.store import TMStore",
        "service/memory/bad.py": "from service.web.state import ServiceState",
        "service/review/bad.py": "from service.jobs import JobManager",
        "service/web/routes/bad.py": "from service.web.routes.memory import lookup_json",
        "service/memory/store.py": "from service.memory.sqlite import SQLiteStore",
    }
    modules = {}
    for rel, source in cases.items():
        path = tmp_path / rel.replace("/", "_")
        path.write_text(source + "\n", encoding="utf-8")
        modules[rel.removesuffix(".py").replace("/", ".")] = path
    found = _offences(modules)
    assert len(found) == len(cases), found
