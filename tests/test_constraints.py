"""constraints.txt pins, exactly, everything pyproject.toml asks for and what that asks for in
turn, each pin within the ranges asking for it; make and the Dockerfile install with it."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


def pins() -> dict[str, Version]:
    out = {}
    for line in (ROOT / "constraints.txt").read_text("utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = PIN.fullmatch(line.strip())
        assert match, f"constraints.txt: not an exact pin: {line!r}"
        name = canonicalize_name(match[1])
        assert name not in out, f"constraints.txt: {name} pinned twice"
        out[name] = Version(match[2])
    return out


def project_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    found = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        found += [Requirement(r) for r in extra]
    return [r for r in found if canonicalize_name(r.name) != "concordia"]


def applies(requirement: Requirement, extras: set[str]) -> bool:
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({"extra": e}) for e in extras | {""})


def test_torch_is_the_local_wheel_version():
    assert pins()["torch"] == Version("2.13.0")
    (torch,) = [r for r in project_requirements() if r.name == "torch"]
    assert str(torch.specifier) == "==2.13.0"


def test_every_requirement_is_pinned_within_its_ranges():
    """From pyproject.toml down through the installed distributions' own requirements: a new
    dependency without `make lock` fails here, and so does a pin outside a range."""
    pinned = pins()
    todo = [(r, set()) for r in project_requirements()]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        requirement, wanted_by = todo.pop()
        if not applies(requirement, wanted_by):
            continue
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{name} (for {requirement}) is not in constraints.txt"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"constraints.txt pins {name}=={pinned[name]}, outside {requirement}"
        )
        key = (name, frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            below = metadata.requires(name) or []
        except metadata.PackageNotFoundError:  # not for this platform
            continue
        todo += [(Requirement(r), set(requirement.extras)) for r in below]


def test_make_and_the_image_install_with_the_pins():
    makefile = (ROOT / "Makefile").read_text("utf-8")
    assert re.search(r"^PINS := constraints\.txt$", makefile, re.M)
    installs = re.findall(r"pip install .*-e .*", makefile)
    project_installs = [line for line in installs if '"$$tmp' not in line]
    assert len(project_installs) == 2  # the run set-up and the test set-up
    assert all("-c $(PINS)" in line for line in project_installs), project_installs
    dockerfile = (ROOT / "Dockerfile").read_text("utf-8")
    assert "pip install -c constraints.txt ." in dockerfile
