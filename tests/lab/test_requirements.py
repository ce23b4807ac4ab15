"""Requirements: one clear line for what is missing; latency only where netem exists."""

import pytest

from rnnscope.lab.netns import Lab
from rnnscope.lab.requirements import Capabilities, LabUnavailable, probe, require
from rnnscope.lab.system import run_cmd

ALL_OK = dict(root=True, ip=True, tc=True, netns=True, veth_bridge=True, tbf=True, netem=True)


def caps(**changes) -> Capabilities:
    return Capabilities(**{**ALL_OK, **changes})


def test_missing_names_the_first_thing_lacking_and_the_fix():
    assert caps().missing(latency=True) is None
    assert "needs root" in caps(root=False, tc=False).missing()
    assert "tc not found" in caps(tc=False).missing()
    assert "ip and tc not found" in caps(ip=False, tc=False).missing()
    assert "tbf probe failed" in caps(tbf=False, problem="tbf probe failed: x").missing()
    no_netem = caps(netem=False, problem="netem probe failed: unknown qdisc")
    assert no_netem.missing() is None
    assert "netem" in no_netem.missing(latency=True) and "--delay-ms" in no_netem.missing(latency=True)
    assert "\n" not in no_netem.missing(latency=True)


def test_probe_matches_what_this_machine_can_do():
    found = probe()
    assert probe() is found  # probed once per process
    if found.missing() is not None:
        with pytest.raises(LabUnavailable, match="lab"):
            require()
    else:
        assert require().tbf


def test_latency_is_refused_without_netem_and_built_with_it(lab_ready):
    if not probe().netem:
        with pytest.raises(LabUnavailable, match="netem"):
            with Lab(2, 10e6, delay_ms=5):
                pass  # never reached: the check comes before anything is built
        return
    with Lab(2, 10e6, delay_ms=5) as lab:
        shown = run_cmd(["tc", "-n", lab.hosts[0].namespace, "qdisc", "show"])
        assert "netem" in shown and "delay 5ms" in shown
