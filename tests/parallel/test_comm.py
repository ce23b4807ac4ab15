"""The communicator: every op gives the right result and records the bytes the wire carried."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dp_worker  # noqa: E402

from rnnscope.parallel.comm import CommError, Communicator  # noqa: E402


def test_communicator_needs_a_process_group():
    with pytest.raises(CommError, match="not initialised"):
        Communicator()


@pytest.mark.distributed
@pytest.mark.timeout(150)
def test_every_op_is_correct_and_its_ledger_bytes_match_the_loopback(tmp_path):
    """2 gloo workers run each op on 1 MiB; lo's counters over the op match the ledger's bytes.

    In a private network namespace nothing else uses that lo; the remaining excess is TCP/IP
    headers, ACKs and the two 4-byte barriers around each op (well under 1% at 1 MiB).
    """
    isolate = dp_worker.can_isolate()
    result = dp_worker.torchrun("ops", tmp_path, isolate=isolate)
    assert result.returncode == 0, result.stderr[-3000:]
    ops = json.loads((tmp_path / "ops.json").read_text())
    for name in ("all_reduce", "broadcast", "all_gather", "reduce_scatter", "send_recv"):
        ledger, lo = ops[name]["ledger_sent_all_ranks"], ops[name]["lo_tx"]
        assert ledger >= 1 << 20, name  # the payloads were big enough to measure
        if isolate:
            assert ledger <= lo <= 1.05 * ledger, (name, ledger, lo)
        else:  # a shared lo: other processes can only add bytes
            assert lo >= ledger, (name, ledger, lo)
    # the formula's shares: ring all-reduce 2(n-1)/n * S each way, all-gather (n-1)/n * S
    rows = {(r["tag"], r["op"]): r for r in ops["rows"]}
    S = 1 << 20
    assert rows["t", "all_reduce"]["wire_bytes_sent"] == S
    assert rows["t", "all_reduce"]["messages"] == 2
    assert rows["t", "all_gather"]["wire_bytes_sent"] == S // 2
    assert rows["t", "send"]["wire_bytes_sent"] == 2 * S  # send and isend, rank 0's side
    assert rows["t", "reduce_scatter"]["algorithm"] == "ring_all_reduce"
    assert rows["t", "all_reduce"]["busbw"] == pytest.approx(rows["t", "all_reduce"]["algbw"])
    assert rows["t", "all_gather"]["busbw"] == pytest.approx(rows["t", "all_gather"]["algbw"] / 2)
    # weight checksums: equal weights pass, one flipped bit on rank 1 is caught
    assert len({tuple(c[:2]) for c in ops["checksums_agree"]}) == 1
    assert ops["mismatch"] is not None and "after step 2" in ops["mismatch"]


def test_a_backend_error_is_cut_to_its_reason():
    """gloo's C++ source location and its generic advice paragraph stay out of the one line."""
    from rnnscope.parallel.comm import backend_reason

    reset = RuntimeError("[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error "
                         "[127.0.0.1]:396: Connection reset by peer. This is typically caused by a remote worker "
                         "hanging or bugs in the application. Check the logs of the remote worker before reporting "
                         "an error. GLHF! 🏖️")
    assert backend_reason(reset) == "Read error [127.0.0.1]:396: Connection reset by peer."
    timeout = RuntimeError("[../third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:81] Timed out waiting "
                           "6000ms for recv operation to complete\nmore")
    assert backend_reason(timeout) == "Timed out waiting 6000ms for recv operation to complete"
    assert backend_reason(RuntimeError("sizes disagree")) == "sizes disagree"
    assert backend_reason(RuntimeError("")) == "RuntimeError"
