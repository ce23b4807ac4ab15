"""A bulk TCP transfer between two lab hosts runs at the link rate, and the counters agree."""

import pytest

from rnnscope.lab.bulk import measure
from rnnscope.lab.netns import Lab

RATE_BPS = 50e6


def test_two_hosts_at_50mbit_move_a_bulk_transfer_at_50mbit(lab_ready):
    with Lab(2, RATE_BPS) as lab:
        result = measure(lab, lab.hosts[0], lab.hosts[1], seconds=2.0)
    # frames on the sender's interface: what tbf shapes, so the link rate itself
    assert result.wire_bps == pytest.approx(RATE_BPS, rel=0.10)
    # payload: the rate less TCP/IP/Ethernet headers (66 of every 1514 bytes)
    assert result.goodput_bps == pytest.approx(RATE_BPS * 1448 / 1514, rel=0.10)
    assert result.goodput_bps < RATE_BPS * 1.02  # shaped: never faster than the link
    # the same frames, counted by the two ends of the path (through the switch)
    assert result.dst_counters.rx_bytes == pytest.approx(result.src_counters.tx_bytes, rel=0.01)
    assert result.src_counters.tx_bytes >= result.payload_bytes  # headers come on top
