"""The plan's prediction on the lab's star network: the plan's bytes, the link's real share."""

import pytest

from rnnscope.errors import UserError
from rnnscope.lab.predict import (ALPHA_S, TCP_PAYLOAD_SHARE, TCP_PAYLOAD_SHARE_BIDIRECTIONAL,
                                  frame_payload_bytes, lab_link, predict_step, shape_from_config)
from rnnscope.costs.traffic import data_parallel_traffic
from rnnscope.train.config import load_config


def test_shape_follows_the_task_and_the_model():
    shape = shape_from_config(load_config(None, ["--data.task", "adding", "--model.hidden", "7",
                                                 "--data.seq_len", "9"]))
    assert (shape.input_size, shape.hidden, shape.seq_len, shape.output_size) == (2, 7, 9, 1)


def test_data_parallel_on_two_hosts_sends_two_halves_per_rank():
    cfg = load_config(None, ["--model.hidden", "500"])
    p = predict_step(cfg, "data", 2, 10e6)
    S = 4 * (500 * 1 + 500 * 500 + 500 + 500 + 500 + 1)  # W_ih, W_hh, b_ih, b_hh, readout
    assert p.network_bytes == 2 * S == data_parallel_traffic(shape_from_config(cfg), 2).network_bytes
    assert p.sent_bytes == S and p.messages == 2 and p.network_messages == 4
    beta = 10e6 / 8 * TCP_PAYLOAD_SHARE_BIDIRECTIONAL  # bytes/s: sending while receiving
    assert p.comm_seconds == pytest.approx(2 * (ALPHA_S + S / 2 / beta), rel=1e-5)


def test_comm_time_scales_with_the_link_and_delay_adds_two_hops_per_message():
    cfg = load_config(None, ["--model.hidden", "200"])
    slow, fast = predict_step(cfg, "data", 4, 10e6), predict_step(cfg, "data", 4, 100e6)
    assert slow.network_bytes == fast.network_bytes
    assert slow.comm_seconds / fast.comm_seconds == pytest.approx(10, rel=0.05)
    delayed = predict_step(cfg, "data", 4, 100e6, delay_ms=1.0)
    assert delayed.comm_seconds - fast.comm_seconds == pytest.approx(2 * 3 * 2e-3)  # 2(n-1) msgs


def test_one_way_messages_get_the_whole_link():
    assert lab_link(8e6).bandwidth_Bps == pytest.approx(1e6 * TCP_PAYLOAD_SHARE)
    assert lab_link(8e6, bidirectional=True).bandwidth_Bps < lab_link(8e6).bandwidth_Bps


def test_pipeline_needs_a_layer_per_host():
    with pytest.raises(UserError, match="stages"):
        predict_step(load_config(None, []), "pipeline", 2, 10e6)
    p = predict_step(load_config(None, ["--model.layers", "2", "--data.seq_len", "10"]),
                     "pipeline", 2, 10e6)
    # a message per time step forward and back, and the last stage's broadcast of ŷ
    assert p.network_messages == 2 * 10 + 1


def test_frame_payload_removes_66_bytes_per_packet():
    assert frame_payload_bytes(1514 * 10, 10) == 1448 * 10


def test_a_calibrated_software_cost_keeps_its_alpha_and_is_capped_at_the_link():
    from rnnscope.plan.alphabeta import Link, Regime

    loopback = Link((Regime(1024, 1e-4, 5e6), Regime(float("inf"), 6e-4, 1e9)), "gloo all_reduce")
    link = lab_link(80e6, delay_ms=0.5, bidirectional=True, software=loopback)
    wire = 10e6 * TCP_PAYLOAD_SHARE_BIDIRECTIONAL  # bytes/s
    assert [(r.alpha_s, r.bandwidth_Bps) for r in link.regimes] == [
        (pytest.approx(1e-4 + 1e-3), 5e6), (pytest.approx(6e-4 + 1e-3), pytest.approx(wire))]
    cfg = load_config(None, ["--model.hidden", "64"])
    plain = predict_step(cfg, "tensor", 2, 1e9)
    slow_software = predict_step(cfg, "tensor", 2, 1e9, software={
        op: Link.simple(1e-3, 1e12) for op in ("send", "all_reduce", "all_gather")})
    assert slow_software.comm_seconds > plain.comm_seconds  # 1 ms a message instead of 0.1
    assert slow_software.network_bytes == plain.network_bytes


def test_a_gated_cell_passes_through_to_the_plan(tmp_path):
    """`rnnscope lab --model.cell gru`: the config is accepted for every strategy, and the plan
    all-reduces 3·H rows per recurrent gradient (the model splits send h_t as for Elman)."""
    from rnnscope.lab.sweep import LabPlan, check_plan
    gru = ["--model.cell", "gru", "--model.hidden", "500", "--model.layers", "2",
           "--data.seq_len", "10"]
    check_plan(LabPlan(hosts=2, rates_bps=[10e6], strategies=["data", "pipeline", "hidden_split"],
                       config_path=None, overrides=gru, out_dir=tmp_path))
    p = predict_step(load_config(None, gru), "data", 2, 10e6)
    layer0, layer1 = 3 * (500 * 1 + 500 * 500 + 2 * 500), 3 * (500 * 500 + 500 * 500 + 2 * 500)
    assert p.sent_bytes == 4 * (layer0 + layer1 + 500 + 1)
    elman = ["--model.hidden", "500", "--model.layers", "2", "--data.seq_len", "10"]
    for strategy in ("pipeline", "hidden_split"):
        gated, plain = (predict_step(load_config(None, c), strategy, 2, 10e6) for c in (gru, elman))
        assert (gated.network_bytes, gated.network_messages) == (plain.network_bytes,
                                                                 plain.network_messages)
