"""The star network: built as drawn, shaped both ways, and gone after every kind of exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from rnnscope.errors import UserError
from rnnscope.lab import system
from rnnscope.lab.netns import SUBNET, Lab, tbf_args


def test_lab_refuses_bad_sizes_before_touching_anything():
    with pytest.raises(UserError, match="--hosts must be between 2 and 64, got 1"):
        Lab(1, 10e6)
    with pytest.raises(UserError, match="--delay-ms must be ≥ 0, got -1"):
        Lab(2, 10e6, delay_ms=-1)


def test_tbf_burst_is_a_few_frames_and_queue_about_100ms():
    args = tbf_args(100e6)
    burst, limit = int(args[args.index("burst") + 1]), int(args[args.index("limit") + 1])
    assert args[:3] == ["tbf", "rate", "100000000bit"]
    assert 4 * 1500 <= burst <= 8 * 1500  # 0.5 ms at 100 Mbit/s = 6.25 kB
    assert limit == int(100e6 / 8 * 0.1)


def test_lab_builds_a_shaped_star_inside_its_own_namespaces(lab_ready):
    with Lab(3, 20e6) as lab:
        assert lab.prefix in lab.switch and all(lab.prefix in n for n in lab.names())
        assert set(lab.names()) <= set(system.list_namespaces())
        # nothing of the lab in the machine's own namespace: the veths live inside the lab
        assert not [n for n in system.list_root_links() if n.startswith(lab.prefix)]
        assert [h.address for h in lab.hosts] == [f"{SUBNET}.{i}" for i in (1, 2, 3)]
        for host in lab.hosts:
            addrs = system.run_cmd(["ip", "-n", host.namespace, "-o", "addr", "show", host.ifname])
            assert f"{host.address}/24" in addrs
            host_qdisc = system.run_cmd(["tc", "-n", host.namespace, "qdisc", "show",
                                         "dev", host.ifname])
            assert "tbf" in host_qdisc and "rate 20Mbit" in host_qdisc
        switch_qdiscs = system.run_cmd(["tc", "-n", lab.switch, "qdisc", "show"])
        assert switch_qdiscs.count("rate 20Mbit") == 3  # one per switch port: the receive side
        bridge_ports = system.run_cmd(["ip", "-n", lab.switch, "-o", "link", "show",
                                       "master", lab.bridge])
        assert bridge_ports.count(f"{lab.prefix}p") == 3
        assert lab.counters(lab.hosts[0]).tx_packets >= 0
    assert not (set(lab.names()) & set(system.list_namespaces()))


def test_error_inside_the_lab_tears_it_down(lab_ready):
    with pytest.raises(RuntimeError, match="boom"):
        with Lab(2, 10e6) as lab:
            names = lab.names()
            raise RuntimeError("boom")
    assert not (set(names) & set(system.list_namespaces()))


def test_failure_half_way_through_build_removes_what_was_made(lab_ready, monkeypatch):
    calls = []

    def failing_shape(self, namespace, ifname):
        calls.append(ifname)
        if len(calls) == 3:  # host 1's first link end: host 0 is complete by now
            raise system.LabError("injected tc failure")

    monkeypatch.setattr(Lab, "_shape", failing_shape)
    lab = Lab(2, 10e6)
    with pytest.raises(system.LabError, match="injected"):
        with lab:
            pass
    assert not [n for n in system.list_namespaces() if n.startswith(lab.prefix)]


SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    # a test run started in the background (`cmd &` without job control, nohup) hands its
    # children SIGINT ignored, and Python then never turns it into KeyboardInterrupt
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from rnnscope.lab.netns import Lab
    with Lab(2, 10e6) as lab:
        lab.popen(lab.hosts[0], ["sleep", "60"])  # a process inside the lab, as a worker would be
        print(lab.prefix, flush=True)
        if sys.argv[1] == "crash":
            os._exit(3)  # no finally runs: what a SIGKILL or a power cut leaves
        time.sleep(60)
""")


def start_lab_process(mode: str) -> tuple[subprocess.Popen, str]:
    """A separate python that builds a lab, prints its prefix and waits (or crashes)."""
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    prefix = proc.stdout.readline().strip()
    assert system.PREFIX_RE.match(prefix), proc.stderr.read()
    return proc, prefix


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_signal_tears_the_lab_down(lab_ready, lab_names, signame):
    import signal

    proc, prefix = start_lab_process("wait")
    try:
        assert any(n.startswith(prefix) for n in lab_names())
        proc.send_signal(getattr(signal, signame))
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert not [n for n in lab_names() if n.startswith(prefix)]


def test_cleanup_removes_a_crashed_lab_and_spares_a_live_one(lab_ready, lab_names):
    proc, prefix = start_lab_process("crash")
    proc.wait(timeout=30)
    assert proc.returncode == 3
    crashed = sorted(n for n in lab_names() if n.startswith(prefix))
    assert crashed == [f"{prefix}h0", f"{prefix}h1", f"{prefix}sw"]
    with Lab(2, 10e6) as live:
        removed, spared = system.cleanup_leftovers()
        assert set(crashed) <= set(removed)
        assert live.prefix in spared
        assert set(live.names()) <= set(system.list_namespaces())
    assert not [n for n in lab_names() if n.startswith(prefix)]
