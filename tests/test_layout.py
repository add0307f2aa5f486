"""The library stands alone: nothing in ``aligner`` imports the service."""

import ast
from pathlib import Path

ALIGNER = Path(__file__).resolve().parents[1] / "aligner"


def test_aligner_never_imports_service():
    offenders = []
    for path in sorted(ALIGNER.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "service"]
    assert offenders == []
    assert len(list(ALIGNER.rglob("*.py"))) > 10  # the walk really saw the package
