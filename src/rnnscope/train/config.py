"""Typed training config: one dataclass per TOML section, every field with a default and a help line.

    cfg = load_config("run.toml", ["--model.hidden", "32", "--optim.lr=0.5"])
    cfg.model.hidden   # 32

A TOML file is applied first, then `--section.key value` overrides. An unknown key or a value of
the wrong type is refused with a UserError naming the key and the closest valid one.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

from rnnscope.costs.layout import STRATEGIES, STRATEGY_ALIASES, deprecated_alias
from rnnscope.errors import UserError

log = logging.getLogger(__name__)


def _f(default, help: str, choices: tuple = ()):
    """A config field: its default, a one-line description and, optionally, the allowed values."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, "choices": choices})
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class ModelConfig:
    """[model]: the recurrent network (rnnscope.nn.RNN) and its linear readout."""

    hidden: int = _f(16, "neurons in each recurrent layer")
    layers: int = _f(1, "stacked recurrent layers")
    activation: str = _f("sigmoid", "activation of the recurrent neurons", ("sigmoid", "tanh", "relu"))
    time_reduction: str = _f(
        "sum", "weight adjustments over time steps: summed (torch) or averaged (the chapter's option)",
        ("sum", "mean"))
    init: str = _f("default", "initial weights: torch's uniform, xavier, orthogonal or identity W_hh",
                   ("default", "xavier", "orthogonal", "identity"))
    init_scale: float = _f(1.0, "factor on the initial weights (try 0.01 or 10 to see saturation)")
    cell: str = _f("elman", "recurrent cell: the chapter's Elman network (uses --model.activation), LSTM or GRU",
                   ("elman", "lstm", "gru"))
    forget_bias: float = _f(1.0, "LSTM: b_if + b_hf start at this value (1: Jozefowicz et al. 2015's advice)")


@dataclass
class DataConfig:
    """[data]: a built-in task or the user's CSV time series, cut into windows."""

    task: str = _f("sine", "built-in task (ignored when --data.csv is given)", ("sine", "adding", "copy"))
    csv: str = _f("", "a CSV file with a header row: train on its columns instead of a built-in task")
    column: list[str] = _f([], "CSV input columns (default: every numeric column)")
    target: list[str] = _f([], "CSV columns to predict (default: the input columns)")
    seq_len: int = _f(40, "time steps per sequence (window length)")
    horizon: int = _f(1, "how many steps ahead the target lies (sine and CSV)")
    stride: int = _f(1, "rows between the starts of consecutive CSV windows")
    predict: str = _f("auto", "predict at every step or only the last one (auto: the task's own)",
                      ("auto", "every_step", "last_step"))
    samples: int = _f(1024, "sequences generated for a built-in task (train + validation)")
    val_fraction: float = _f(0.2, "share held out for validation (for a CSV: the last rows)")
    noise: float = _f(0.05, "std of the Gaussian noise added to the sine")
    copy_symbols: int = _f(4, "copy task: distinct symbols in the pattern")
    copy_length: int = _f(3, "copy task: pattern length to recall")
    batch_size: int = _f(32, "sequences per batch (the global batch when parallel)")
    test_fraction: float = _f(0.2, "CSV: share of the last rows held out as the test split (after validation)")
    time_column: str = _f("", "CSV: the time index column (default: detected, a date column, or a first "
                          "column of evenly spaced increasing integers such as years; none: no time index)")
    missing: str = _f("error", "CSV: what to do with empty cells and skipped times",
                      ("error", "drop", "ffill", "interpolate", "mask"))
    season: int = _f(0, "CSV: seasonal period in rows for the seasonal-naive baseline (0 = from the time step)")
    difference: int = _f(0, "CSV: 1 = model the change since the last value (for a trending series)")
    scale: str = _f("standard", "CSV: per-column scaling fitted on the train rows", ("standard", "none"))
    steps: str = _f("one", "CSV: forecast t+horizon only, or all of t+1..t+horizon from one origin",
                    ("one", "all"))
    series_column: str = _f("", "CSV: the column naming the series of each row (long format: several series "
                            "in one file; windows never cross series)")
    normalize_by: str = _f("series", "CSV, several series: fit the scaling per series or over all of them",
                           ("series", "global"))
    files: str = _f("one", "CSV, a glob of several files: one series in name order, or each file its own series",
                    ("one", "series"))


@dataclass
class OptimConfig:
    """[optim]: the gradient descent that adjusts the weights."""

    name: str = _f("sgd", "optimizer: plain gradient descent, with momentum, or Adam",
                   ("sgd", "momentum", "adam"))
    lr: float = _f(0.15, "learning rate")
    momentum: float = _f(0.9, "momentum (only for --optim.name momentum)")
    weight_decay: float = _f(0.0, "L2 weight decay")
    clip: float = _f(0.0, "clip the gradient norm to this value (0 = no clipping)")
    schedule: str = _f("none", "learning-rate schedule: constant, cosine decay to 0, or halve on a "
                       "validation plateau", ("none", "cosine", "plateau"))


@dataclass
class TrainConfig:
    """[train]: how long, how often to log and checkpoint, where to write."""

    epochs: int = _f(20, "passes over the training sequences")
    max_steps: int = _f(0, "stop after this many optimizer steps, at the end of that batch (0 = no limit)")
    seed: int = _f(0, "seed for data, initial weights and data order")
    run_dir: str = _f("", "where the run is written (default: runs/<date-time>)")
    log_every: int = _f(10, "optimizer steps between metrics lines (and validation)")
    checkpoint_every: int = _f(50, "optimizer steps between checkpoints (one is also written at the end)")
    tbptt_k1: int = _f(0, "truncated BPTT: time steps between updates (0 = full BPTT)")
    tbptt_k2: int = _f(0, "truncated BPTT: time steps backpropagated (0 = same as k1)")
    device: str = _f("cpu", "where to train: cpu, cuda, or auto", ("cpu", "cuda", "auto"))
    threads: int = _f(1, "torch CPU threads (0 = torch's default, one per core); 1 is fastest for small layers")
    flush_denormal: bool = _f(True, "on CPU, flush subnormal floats (below ~1e-38) to zero: vanishing "
                              "gradients over long sequences reach them, and CPUs compute them up to 100x slower")
    progress: bool = _f(True, "show a progress bar")
    patience: int = _f(0, "stop early after this many validation checks without a new best (0 = never)")
    tensorboard: bool = _f(False, "also write TensorBoard event files into RUN_DIR/tensorboard "
                           "(scalars per metrics line; histograms per diagnostics record)")
    precision: str = _f("fp32", "forward matmuls in fp32, or under autocast in bf16 (CPU, CUDA) or fp16 "
                        "(CUDA, with a gradient scaler)", ("fp32", "bf16", "fp16"))


@dataclass
class ParallelConfig:
    """[parallel]: training on several processes with torch.distributed."""

    strategy: str = _f("none", "parallel strategy (tensor: the old name of hidden_split)",
                       ("none", *STRATEGIES, *STRATEGY_ALIASES))
    nproc: int = _f(1, "processes to start (torchrun --nproc-per-node)")
    backend: str = _f("auto", "torch.distributed backend (auto: nccl with CUDA, else gloo)",
                      ("auto", "gloo", "nccl"))
    bucket_mb: float = _f(25.0, "DDP gradient bucket size in MiB")
    chunk: int = _f(1, "time steps per pipeline message")
    timeout_s: int = _f(60, "seconds within which a hung or lost worker ends the run (collectives "
                        "time out a teardown reserve earlier: docs/reliability.md)")
    max_restarts: int = _f(0, "torchrun restarts after a worker fails")
    check_every: int = _f(50, "steps between weight checksums across ranks")
    data_degree: int = _f(0, "data-parallel degree when combined with a model strategy (0 = world / model degree)")


@dataclass
class DiagnosticsConfig:
    """[diagnostics]: records of what happens inside the network while it trains."""

    every: int = _f(0, "steps between diagnostic records (0 = off; 50 costs about 5% of training time)")
    epsilon: float = _f(1e-3, "dead-unit output threshold and memory-horizon threshold")


@dataclass
class Config:
    """The whole training config, one attribute per TOML section."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)


def iter_fields(cfg: Config | None = None):
    """Yield (section, name, type, default or current value, help, choices) for every field."""
    cfg = cfg or Config()
    for section in dataclasses.fields(Config):
        sub = getattr(cfg, section.name)
        hints = typing.get_type_hints(type(sub))
        for f in dataclasses.fields(sub):
            yield (section.name, f.name, hints[f.name], getattr(sub, f.name),
                   f.metadata["help"], f.metadata["choices"])


def all_keys() -> list[str]:
    """Every valid `section.key`."""
    return [f"{section}.{name}" for section, name, *_ in iter_fields()]


# names people bring from torch and other tools -> the key here
ALIASES = {"learning_rate": "lr", "learningrate": "lr", "hidden_size": "hidden", "num_layers": "layers",
           "nonlinearity": "activation", "optimizer": "name", "steps": "max_steps", "batch": "batch_size"}


def closest_hint(key: str) -> str:
    """A hint naming the closest valid key (or listing the sections)."""
    section, _, name = key.partition(".")
    names = [k.split(".", 1)[1] for k in all_keys() if k.startswith(section + ".")]
    if names:  # the section is right: look among its fields first
        guess = ALIASES.get(name) if ALIASES.get(name) in names else None
        match = [guess] if guess else difflib.get_close_matches(name, names, n=1, cutoff=0.5)
        if match:
            return f"did you mean {section}.{match[0]}?"
    match = difflib.get_close_matches(key, all_keys(), n=1, cutoff=0.4)
    if match:
        return f"did you mean {match[0]}?"
    return "valid sections: " + ", ".join(f.name for f in dataclasses.fields(Config))


INT64_MAX = 2**63 - 1
FLOAT32_MAX = 3.4028234663852886e38  # the weights and optimizer arithmetic are float32
MAX_THREADS = 1024  # torch.set_num_threads(20000) fails in libgomp, 100000 segfaults


def _convert(key: str, value, kind, source: str):
    """Turn a TOML value or a command-line string into the field's type, or raise a UserError."""
    want = getattr(kind, "__name__", str(kind))
    if typing.get_origin(kind) is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UserError(f"{key} from {source} must be a list of strings, got {value!r}")
        return list(value)
    if isinstance(value, str) and kind is not str:
        text = value.strip()
        try:
            if kind is bool:
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(text)
                return text.lower() in ("true", "1", "yes")
            value = kind(text)
        except ValueError:
            raise UserError(f"{key} from {source} must be {want}, got {value!r}") from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            value = float(value)
        except OverflowError:  # an integer past 1.8e308
            raise UserError(f"{key} from {source} is too large: {str(value)[:20]}... "
                            f"({len(str(value))} digits); use a value below 3.4e38") from None
    if type(value) is not kind:
        raise UserError(f"{key} from {source} must be {want}, got {value!r} ({type(value).__name__})")
    if kind is int and not -INT64_MAX <= value <= INT64_MAX:  # torch and numpy take 64-bit integers
        digits = str(value) if len(str(value)) <= 24 else f"{str(value)[:20]}... ({len(str(value))} digits)"
        raise UserError(f"{key} from {source} is too large: {digits}; "
                        f"integers must lie within ±{INT64_MAX} (2**63 - 1)")
    return value


def _set(cfg: Config, key: str, value, source: str) -> None:
    """Set `section.key` on cfg from a TOML value or a string, checking key and type."""
    section, _, name = key.partition(".")
    sub = getattr(cfg, section, None) if section in {f.name for f in dataclasses.fields(Config)} else None
    if sub is None or name not in {f.name for f in dataclasses.fields(sub)}:
        raise UserError(f"unknown config key {key!r} in {source}; {closest_hint(key)}")
    kind = typing.get_type_hints(type(sub))[name]
    setattr(sub, name, _convert(key, value, kind, source))


def parse_overrides(overrides: list[str]) -> list[tuple[str, str]]:
    """`["--a.b", "1", "--c.d=x", "--e.f", "u", "v"]` -> `[("a.b", "1"), ("c.d", "x"), ("e.f", "u,v")]`."""
    pairs, i = [], 0
    while i < len(overrides):
        token = overrides[i]
        if not token.startswith("--"):
            raise UserError(f"expected an override like --section.key VALUE, got {token!r}")
        key, eq, value = token[2:].partition("=")
        i += 1
        if not eq:  # the value is the next token, or several (a list: --data.column a b)
            values = []
            while i < len(overrides) and not overrides[i].startswith("--"):
                values.append(overrides[i])
                i += 1
            if not values:
                raise UserError(f"override --{key} has no value; write --{key} VALUE")
            value = ",".join(values)
        pairs.append((key, value))
    return pairs


def _read_toml(path: Path) -> dict:
    """The TOML table in `path`; a missing, unreadable or non-UTF-8 file is a UserError."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist; check the --config path") from None
    except IsADirectoryError:
        raise UserError(f"config file {path} is a directory; give a .toml file") from None
    except OSError as exc:
        raise UserError(f"config file {path} cannot be read ({exc.strerror}); "
                        "check its permissions or give another --config") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UserError(f"config file {path} is UTF-16 text; TOML is UTF-8: save it as UTF-8")
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")  # a byte-order mark is harmless: drop it
    except UnicodeDecodeError as exc:
        raise UserError(f"config file {path} is not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x}); "
                        "give a TOML file, saved as UTF-8") from None
    if "\0" in text:
        raise UserError(f"config file {path} holds NUL bytes: it is a binary file, not TOML; "
                        "check the --config path")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"config file {path} is not valid TOML: {exc}") from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """A Config from defaults, then a TOML file, then `--section.key value` overrides; validated."""
    cfg = Config()
    if path is not None:
        path = Path(path)
        table = _read_toml(path)
        for section, values in table.items():
            if not isinstance(values, dict):
                raise UserError(f"{path}: top-level key {section!r} must be a [section]; {closest_hint(section)}")
            for name, value in values.items():
                _set(cfg, f"{section}.{name}", value, str(path))
    for key, value in parse_overrides(overrides or []):
        _set(cfg, key, value, f"--{key}")
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    """Check choices and ranges; a UserError names the key, the value and the fix."""
    if deprecated_alias(cfg.parallel.strategy):  # an old name: say so once, use the new one
        log.warning(deprecated_alias(cfg.parallel.strategy))
        cfg.parallel.strategy = STRATEGY_ALIASES[cfg.parallel.strategy]
    for section, name, _, value, _, choices in iter_fields(cfg):
        if choices and value not in choices:
            raise UserError(f"--{section}.{name} must be one of {', '.join(choices)}; got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"--{section}.{name} must be a finite number, got {value}")
        if isinstance(value, float) and abs(value) > FLOAT32_MAX:  # float32 weights cannot take it
            raise UserError(f"--{section}.{name} {value:g} is beyond float32's range (±3.4e38); "
                            "use a smaller value")
    positive = ["model.hidden", "model.layers", "data.seq_len", "data.horizon", "data.stride",
                "data.samples", "data.batch_size", "data.copy_symbols", "data.copy_length",
                "train.log_every", "train.checkpoint_every", "parallel.nproc", "parallel.chunk",
                "parallel.timeout_s", "parallel.check_every"]
    non_negative = ["train.epochs", "train.max_steps", "train.tbptt_k1", "train.tbptt_k2", "train.threads",
                    "optim.clip", "optim.weight_decay", "optim.momentum", "data.noise",
                    "parallel.max_restarts", "parallel.data_degree", "diagnostics.every",
                    "diagnostics.epsilon", "parallel.bucket_mb"]
    for key in positive + non_negative:
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        low = 1 if key in positive else 0
        if value < low:
            raise UserError(f"--{key} must be ≥ {low}, got {value}")
    # ranges past which numpy, torch or the OS crash instead of saying what is wrong
    limits = {"train.seed": (0, 2**32 - 1, "numpy's seeds are 32-bit"),
              "train.threads": (0, MAX_THREADS, "the OS refuses to start that many threads; 0 uses one per core"),
              "parallel.timeout_s": (1, 7 * 86400, "a week; a collective that waits longer has hung"),
              "parallel.bucket_mb": (0, 1048576.0, "1 TiB, past any gradient here")}
    for key, (low, high, why) in limits.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value < low:
            raise UserError(f"--{key} must be ≥ {low}, got {value}")
        if value > high:
            raise UserError(f"--{key} must be ≤ {high} ({why}), got {value}")
    if not cfg.optim.lr > 0:
        raise UserError(f"--optim.lr must be > 0, got {cfg.optim.lr}")
    if not 0 <= cfg.data.val_fraction < 1:
        raise UserError(f"--data.val_fraction must be in [0, 1), got {cfg.data.val_fraction}")
    if cfg.model.init_scale <= 0:
        raise UserError(f"--model.init_scale must be > 0, got {cfg.model.init_scale}")
    check_cell(cfg)
    if cfg.train.epochs == 0 and cfg.train.max_steps == 0:
        raise UserError("--train.epochs and --train.max_steps are both 0: set one of them")
    k1, k2 = cfg.train.tbptt_k1, cfg.train.tbptt_k2
    if k2 and not k1:
        raise UserError(f"--train.tbptt_k2 {k2} needs --train.tbptt_k1 (time steps between updates)")
    if k1 and k2 > k1 and k2 % k1:
        raise UserError(f"--train.tbptt_k2 ({k2}) must be ≤ k1 ({k1}) or a multiple of it; "
                        f"try {k2 - k2 % k1} or {k2 - k2 % k1 + k1}")


def check_cell(cfg: Config) -> None:
    """Refuse what the gated cells (--model.cell lstm, gru) cannot do yet, naming the way out."""
    cell = cfg.model.cell
    if cell == "elman":
        return
    if cfg.model.activation != "sigmoid":  # the default; the gated cells have their own
        raise UserError(f"--model.activation {cfg.model.activation} is for --model.cell elman; --model.cell "
                        f"{cell} has sigmoid gates and tanh by its own definition, so leave "
                        "--model.activation out")
    if cfg.model.init == "identity":
        raise UserError(f"--model.init identity (W_hh = I, the IRNN) is for --model.cell elman, got "
                        f"--model.cell {cell}; use default, xavier or orthogonal")


def to_dict(cfg: Config) -> dict:
    """The config as nested plain dicts (what goes into TOML and checkpoints)."""
    return dataclasses.asdict(cfg)


def from_dict(table: dict, source: str) -> Config:
    """The inverse of to_dict, with the same key and type checks as a TOML file."""
    cfg = Config()
    for section, values in table.items():
        for name, value in values.items():
            _set(cfg, f"{section}.{name}", value, source)
    validate(cfg)
    return cfg


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def to_toml(cfg: Config) -> str:
    """The fully resolved config as TOML, with each field's description as a comment."""
    lines, current = [], None
    for section, name, _, value, help, _ in iter_fields(cfg):
        if section != current:
            lines += ([""] if current else []) + [f"[{section}]"]
            current = section
        lines.append(f"{name} = {_toml_value(value)}  # {help}")
    return "\n".join(lines) + "\n"
