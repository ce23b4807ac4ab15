"""`rnnscope lab` from the command line: one-line refusals, --check, --cleanup, --measure-link."""

import json

import pytest

from rnnscope.cli import main
from rnnscope.lab.requirements import probe


@pytest.mark.parametrize(("argv", "needle"), [
    (["--parallel.nproc", "3"], "--parallel.nproc is set by the lab (one worker per host); use --hosts"),
    (["--train.max_steps", "3"], "use --steps"),
    (["--link", "fast"], "--link 'fast' is not a link rate"),
    (["--sweep-link", "10Mbit,10Mbit"], "twice"),
    (["--hosts", "3"], "--data.batch_size 32 does not split over --hosts 3"),
    (["--hosts", "0"], "--hosts must be between 2 and 64, got 0"),
    (["--strategy", "ring"], "--strategy 'ring' is not a parallel strategy"),
    (["--steps", "0"], "--steps must be ≥ 1, got 0"),
    (["--measure-link", "0"], "--measure-link must be between 0 and 60 seconds"),
])
def test_mistakes_are_refused_on_one_line_before_anything_is_built(argv, needle, capsys, tmp_path):
    assert main(["lab", "--out", str(tmp_path / "out"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err and "Traceback" not in err


def test_unknown_train_key_gets_a_did_you_mean(capsys):
    with pytest.raises(SystemExit) as info:
        main(["lab", "--model.hiden", "3"])
    assert info.value.code == 2
    assert "did you mean --model.hidden?" in capsys.readouterr().err


def test_check_says_what_this_machine_can_do(capsys):
    status = main(["lab", "--check", "--json"])
    facts = json.loads(capsys.readouterr().out)
    assert status == (0 if facts["missing"] is None else 1)
    assert facts["root"] == probe().root
    status = main(["lab", "--check", "--delay-ms", "2"])
    out = capsys.readouterr().out
    if probe().missing() is None and not probe().netem:  # a lab, but no added latency
        assert status == 1 and "netem" in out


def test_delay_without_netem_is_refused(lab_ready, capsys, tmp_path):
    if probe().netem:
        pytest.skip("this kernel has netem: added latency is allowed here")
    assert main(["lab", "--delay-ms", "5", "--out", str(tmp_path)]) == 2
    assert "netem" in capsys.readouterr().err


def test_measure_link_runs_at_the_link_rate(lab_ready, capsys):
    assert main(["lab", "--hosts", "2", "--link", "20Mbit", "--measure-link", "1.5", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["link"] == "20Mbit"
    assert row["wire_bps"] == pytest.approx(20e6, rel=0.10)


def test_cleanup_reports_what_it_did(lab_ready, capsys):
    assert main(["lab", "--cleanup"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("nothing to remove") or out.startswith("removed")
