"""Fixtures of the lab tests: skip without root/tc, and prove that no lab outlives its test."""

from __future__ import annotations

import os
import subprocess

import pytest

from rnnscope.lab.requirements import probe
from rnnscope.lab.system import OWNER_DIR, PREFIX_RE


def lab_names() -> set[str]:
    """Lab-prefixed names seen by `ip netns list` and by `ip link` in this namespace."""
    names = set()
    for argv in (["ip", "netns", "list"], ["ip", "-o", "link", "show"]):
        out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            for token in line.replace(":", " ").replace("@", " ").split():
                if PREFIX_RE.match(token):
                    names.add(token)
    return names


@pytest.fixture(name="lab_names")
def lab_names_fixture():
    """The `lab_names` function, for tests (a fixture, so no test imports this conftest)."""
    return lab_names


@pytest.fixture
def lab_ready() -> None:
    """Skip (saying what is missing) unless this machine can build a lab."""
    missing = probe().missing()
    if missing is not None:
        pytest.skip(missing)


def owned_elsewhere(name: str) -> bool:
    """Whether `name` belongs to a lab that another live process (a concurrent run) holds."""
    try:
        pid = int((OWNER_DIR / PREFIX_RE.match(name).group(0)).read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return pid != os.getpid()


@pytest.fixture(autouse=True)
def no_lab_left_behind(request: pytest.FixtureRequest):
    """After every lab test, passed or failed: nothing new of any lab remains (checked, then removed).

    Names that a live process other than this one holds are a concurrent run's, not leftovers.
    """
    if probe().missing() is not None:
        yield
        return
    before = lab_names()
    try:
        yield
    finally:
        left = {name for name in lab_names() - before if not owned_elsewhere(name)}
        # remove them whatever happens, so one failing test cannot leak into the next
        for name in left:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
        assert not left, f"lab left behind: {sorted(left)}"
