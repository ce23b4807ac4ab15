"""Truncated BPTT windows: which steps each update covers."""

from __future__ import annotations

from rnnscope.train.tbptt import Window, tbptt_windows


def test_full_bptt_is_one_window():
    assert tbptt_windows(10, 0, 0) == [Window(0, 0, 0, 10)]


def test_k2_equal_k1_cuts_the_sequence_into_chunks():
    assert tbptt_windows(10, 4, 0) == [Window(0, 0, 0, 4), Window(4, 4, 4, 8), Window(8, 8, 8, 10)]


def test_k2_smaller_than_k1_carries_the_first_steps_without_a_graph():
    # every 5 steps an update, backpropagating through the last 2
    assert tbptt_windows(10, 5, 2) == [Window(0, 3, 0, 5), Window(5, 8, 5, 10)]


def test_k2_larger_than_k1_reaches_back_to_an_earlier_boundary():
    # every 3 steps an update through the last 6: the loss is on the 3 new steps
    assert tbptt_windows(9, 3, 6) == [Window(0, 0, 0, 3), Window(0, 0, 3, 6), Window(3, 3, 6, 9)]


def test_windows_cover_every_target_once():
    for T, k1, k2 in [(17, 4, 0), (17, 4, 8), (17, 5, 3), (3, 5, 0)]:
        covered = [t for w in tbptt_windows(T, k1, k2) for t in range(w.loss_start, w.end)]
        assert covered == list(range(T)), (T, k1, k2)
