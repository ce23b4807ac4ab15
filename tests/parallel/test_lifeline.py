"""A worker dies with the process that started it, and never because of where that process sits."""

import os
import signal
import sys

import pytest

from rnnscope.parallel import lifeline
from rnnscope.train.runfiles import LAUNCHER_PID

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl: Linux only")


class FakeLibc:
    """prctl that records its calls and succeeds (the real one would bind the test process)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def prctl(self, *args) -> int:
        self.calls.append(args)
        return 0


@pytest.fixture
def world(monkeypatch):
    """(libc, kills, set_parent): a fake prctl, the signals sent, and the parent pid to report."""
    libc, kills = FakeLibc(), []
    monkeypatch.setattr(lifeline.ctypes, "CDLL", lambda *a, **k: libc)
    monkeypatch.setattr(lifeline.os, "kill", lambda pid, sig: kills.append((pid, sig)))
    monkeypatch.delenv(LAUNCHER_PID, raising=False)

    def set_parent(pid: int) -> None:
        monkeypatch.setattr(lifeline.os, "getppid", lambda: pid)
    return libc, kills, set_parent


def test_it_asks_for_the_parent_death_signal(world):
    libc, kills, set_parent = world
    set_parent(4321)
    assert lifeline.die_with_parent(parent=4321)
    assert libc.calls == [(lifeline.PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)]
    assert kills == []


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_a_parent_that_is_pid_1_is_not_taken_for_a_dead_one(world, monkeypatch, how):
    """In a container, the launcher (or a calibrating process) is often pid 1."""
    _, kills, set_parent = world
    set_parent(1)
    if how == "environment":
        monkeypatch.setenv(LAUNCHER_PID, "1")
    lifeline.die_with_parent(parent=1 if how == "argument" else None)
    assert kills == []


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_a_parent_gone_before_the_signal_was_asked_for_ends_the_process(world, monkeypatch, how):
    """Reparented already (to init or a subreaper): nobody would send the signal any more."""
    _, kills, set_parent = world
    set_parent(77)  # a subreaper adopted it
    if how == "environment":
        monkeypatch.setenv(LAUNCHER_PID, "4321")
    lifeline.die_with_parent(parent=4321 if how == "argument" else None)
    assert kills == [(os.getpid(), signal.SIGKILL)]


def test_without_an_expected_parent_an_adoption_by_init_ends_the_process(world):
    _, kills, set_parent = world
    set_parent(1)
    lifeline.die_with_parent()
    assert kills == [(os.getpid(), signal.SIGKILL)]
