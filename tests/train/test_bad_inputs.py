"""Issue 16: config values that used to crash, absurd sizes, settings train() must give back.

Each case is refused up front in one line naming the key, the value and the fix (or, for sizes,
the estimate and the machine's memory), before anything is allocated.
"""

from __future__ import annotations

import pytest
import torch

from rnnscope.errors import UserError
from rnnscope.train import memory
from rnnscope.train.config import load_config
from rnnscope.train.loop import train
from rnnscope.train.memory import check_memory, estimate, gib, machine_memory, parameter_count
from rnnscope.train.model import SequenceModel

TINY = ["--data.samples", "40", "--data.seq_len", "6", "--model.hidden", "4", "--data.batch_size", "8",
        "--train.max_steps", "2", "--train.progress", "false"]


def refused(*overrides: str, path=None) -> str:
    """The one-line message load_config gives for these overrides."""
    with pytest.raises(UserError) as error:
        load_config(path, list(overrides))
    message = str(error.value)
    assert "\n" not in message
    return message


# --- item 3: values that crashed numpy, torch or libgomp -------------------------------------------

@pytest.mark.parametrize("seed, expected", [
    ("-1", "--train.seed must be ≥ 0, got -1"),
    ("4294967296", "--train.seed must be ≤ 4294967295 (numpy's seeds are 32-bit), got 4294967296"),
    (str(2**63), "train.seed from --train.seed is too large: 9223372036854775808"),
])
def test_seeds_outside_numpys_range_are_refused(seed, expected):
    assert expected in refused("--train.seed", seed)


def test_the_largest_seed_trains(tmp_path):
    cfg = load_config(None, TINY + ["--train.seed", str(2**32 - 1), "--train.run_dir", str(tmp_path / "r")])
    assert train(cfg).steps == 2


@pytest.mark.parametrize("threads", ["20000", "100000"])
def test_thread_counts_the_os_cannot_start_are_refused(threads):
    assert f"--train.threads must be ≤ 1024" in refused("--train.threads", threads)


@pytest.mark.parametrize("key", ["optim.lr", "optim.weight_decay", "optim.momentum", "optim.clip",
                                 "model.init_scale", "data.noise", "diagnostics.epsilon"])
def test_floats_beyond_float32_are_refused(key):
    assert f"--{key} 1e+300 is beyond float32's range" in refused(f"--{key}", "1e300")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999"])
def test_non_finite_floats_are_refused(value):
    assert "--optim.lr must be a finite number" in refused("--optim.lr", value)


def test_a_huge_integer_in_toml_is_refused_not_a_cpp_stack_dump(tmp_path):
    path = tmp_path / "huge.toml"
    path.write_text("[model]\nhidden = 99999999999999999999999\n")
    message = refused(path=path)
    assert message.startswith(f"model.hidden from {path} is too large: 99999999999999999999999")
    path.write_text("[optim]\nlr = " + "9" * 400 + "\n")  # an integer where a float goes, past 1.8e308
    assert "optim.lr from" in refused(path=path) and "400 digits" in refused(path=path)


def test_collective_timeout_and_bucket_have_upper_limits():
    assert "--parallel.timeout_s must be ≤ 604800" in refused("--parallel.timeout_s", str(10**12))
    assert "--parallel.bucket_mb must be ≤ 1048576" in refused("--parallel.bucket_mb", "1e20")


# --- item 3: --config files that are not UTF-8 TOML --------------------------------------------------

def test_a_toml_file_with_a_byte_order_mark_loads(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes("\ufeff[model]\nhidden = 7\n".encode())
    assert load_config(path).model.hidden == 7


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_a_utf16_config_says_save_it_as_utf8(tmp_path, encoding):
    path = tmp_path / "wide.toml"
    path.write_bytes(("\ufeff" if encoding.endswith("be") else "") .encode(encoding) +
                     "[model]\nhidden = 7\n".encode(encoding))
    assert refused(path=path) == f"config file {path} is UTF-16 text; TOML is UTF-8: save it as UTF-8"


def test_a_binary_config_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"PK\x03\x04\x14\x00\x00\x00\x08\x00\xa5\xff\xfe")
    assert f"config file {path} is not UTF-8 text (byte 10 is 0xa5)" in refused(path=path)
    path.write_bytes(b"\x00\x01[model]\n")
    assert "holds NUL bytes: it is a binary file, not TOML" in refused(path=path)


def test_a_directory_as_config_is_refused(tmp_path):
    assert refused(path=tmp_path) == f"config file {tmp_path} is a directory; give a .toml file"


# --- item 2: absurd sizes refused before allocating ----------------------------------------------------

GIB = 2**30
MACHINE = (16 * GIB, 12 * GIB)  # (total, available): the checks below do not depend on this box


@pytest.mark.parametrize("overrides, knob", [
    (["--model.hidden", "45000"], "--model.hidden (now 45000)"),
    (["--data.seq_len", "1000000000"], "--data.seq_len (now 1000000000)"),
    (["--data.horizon", "1000000000"], "--data.horizon (now 1000000000)"),
    (["--model.layers", "100000000"], "--model.layers (now 100000000)"),
    (["--data.samples", "1000000000000"], "--data.samples (now 1000000000000)"),
    (["--data.task", "copy", "--data.copy_symbols", "100000000"], "--data.copy_symbols (now 100000000)"),
    (["--parallel.strategy", "data", "--parallel.nproc", "64", "--model.hidden", "1000",
      "--data.batch_size", "64"], "--parallel.nproc (now 64)"),
])
def test_absurd_sizes_are_refused_with_the_estimate_and_the_machines_memory(overrides, knob):
    cfg = load_config(None, overrides)
    with pytest.raises(UserError) as error:
        check_memory(cfg, MACHINE)
    message = str(error.value)
    assert message.startswith(f"this config needs about {gib(estimate(cfg).total)} (")
    assert "but this machine has 16 GiB of memory, 12 GiB available now; lower " in message
    assert knob in message and "\n" not in message


def test_train_refuses_before_allocating(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "machine_memory", lambda: MACHINE)
    cfg = load_config(None, ["--model.hidden", "45000", "--train.run_dir", str(tmp_path / "r")])
    with pytest.raises(UserError, match="this config needs about"):
        train(cfg)
    assert not (tmp_path / "r").exists()  # refused before the run directory, the data or the model


def test_what_is_available_now_is_the_limit():
    cfg = load_config(None, ["--model.hidden", "4000"])
    need = estimate(cfg).total
    check_memory(cfg, (need + 1, need + 1))  # fits
    with pytest.raises(UserError, match=r"available now; lower .*--model.hidden \(now 4000\)"):
        check_memory(cfg, (2 * need, need - 1))  # the machine has it, but others hold it
    with pytest.raises(UserError, match=r"but this machine has [\d.]+ [MG]iB of memory; lower"):
        check_memory(cfg, (need - 1, None))  # no MemAvailable: the total is the limit
    check_memory(cfg, (None, None))  # a machine that says nothing: nothing refused


def test_parameter_count_matches_the_model():
    for overrides, sizes in [([], (1, 1)), (["--model.layers", "3", "--model.hidden", "5"], (1, 1)),
                             (["--data.task", "copy", "--data.copy_symbols", "6"], (8, 6)),
                             (["--data.task", "adding"], (2, 1))]:
        cfg = load_config(None, overrides)
        model = SequenceModel(*sizes, cfg.model, every_step=True)
        assert parameter_count(cfg) == sum(p.numel() for p in model.parameters())


def test_machine_memory_reads_this_machine():
    total, available = machine_memory()
    assert total is not None and total > 2**28
    assert available is None or 0 < available <= total


# --- item 8: process-wide settings come back on every exit path ---------------------------------------

def test_flushing_and_threads_are_restored_when_train_raises_before_its_loop(tmp_path):
    threads = torch.get_num_threads()
    cfg = load_config(None, TINY + ["--data.csv", str(tmp_path / "missing.csv"), "--train.threads", "2",
                                    "--train.run_dir", str(tmp_path / "r")])
    with pytest.raises(UserError):
        train(cfg)  # fails reading the data, after the settings were changed
    assert float(torch.tensor([1e-40]) * 1.0) > 0.0  # subnormals are kept again
    assert torch.get_num_threads() == threads


def test_flushing_and_threads_are_restored_after_a_run(tmp_path):
    threads = torch.get_num_threads()
    train(load_config(None, TINY + ["--train.threads", str(threads + 1), "--train.run_dir", str(tmp_path / "r")]))
    assert float(torch.tensor([1e-40]) * 1.0) > 0.0
    assert torch.get_num_threads() == threads
