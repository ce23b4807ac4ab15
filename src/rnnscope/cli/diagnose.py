"""`rnnscope diagnose`: does a run suffer from what the chapter warns about? A verdict table with
plain advice, and PNG plots.

    rnnscope diagnose runs/20260101-120000                 # the run's latest checkpoint + its records
    rnnscope diagnose runs/20260101-120000 --json          # the same as data
    rnnscope diagnose --compare-inits runs/20260101-120000 # the run's model at init, per scheme and scale
    rnnscope diagnose --compare-inits --model.activation tanh --data.task adding --data.seq_len 200
    rnnscope diagnose --compare-inits --model.cell lstm --data.task adding --forget-biases 0,1,3

LSTM and GRU runs are diagnosed per gate (saturation by each gate's own activation, the forget or
update gate between forgetting and carrying), with ‖∂L/∂c_t‖ beside ‖∂L/∂h_t‖ and the horizon of
the state (h, c).

Training records diagnostics when started with `--diagnostics.every N` (diagnostics.jsonl); the
gradient-flow plot then shows how ‖∂L/∂h_t‖ changed over training.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rnnscope.errors import UserError
from rnnscope.train.options import add_config_options, overrides_from_args, use_config_parser


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers like 0.5,1,3,10, got {text!r}") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


FORGET_BIASES = (0.0, 1.0, 3.0)  # --compare-inits for LSTM: none, Jozefowicz et al.'s 1, and more


def register(subparsers) -> argparse.ArgumentParser:
    """Add the `diagnose` parser."""
    parser = subparsers.add_parser(
        "diagnose", help="saturated and dead neurons, vanishing gradients, memory horizon: verdicts and plots",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    use_config_parser(parser)
    parser.add_argument("run_dir", nargs="?", metavar="RUN_DIR",
                        help="a run directory written by `rnnscope train` (config.toml, checkpoints/, "
                        "and diagnostics.jsonl when trained with --diagnostics.every N)")
    parser.add_argument("--checkpoint", choices=("latest", "best"), default="latest",
                        help="which checkpoint's model to trace (default latest)")
    parser.add_argument("--epsilon", type=float, default=None,
                        help="dead-unit and memory-horizon threshold (default: the run's --diagnostics.epsilon, 1e-3)")
    parser.add_argument("--compare-inits", action="store_true",
                        help="trace the model at initialization under every --schemes × --scales, side by side")
    parser.add_argument("--schemes", type=_names, default=None,
                        help="--compare-inits: initializations to compare (default default,xavier,orthogonal,identity; "
                        "for LSTM and GRU without identity)")
    parser.add_argument("--scales", type=_floats, default=(0.5, 1.0, 3.0, 10.0),
                        help="--compare-inits: weight scale factors to compare (default 0.5,1,3,10)")
    parser.add_argument("--forget-biases", type=_floats, default=None,
                        help="--compare-inits with --model.cell lstm: forget-gate biases to compare "
                        "(default 0,1,3; Jozefowicz et al. 2015 advise 1)")
    parser.add_argument("--config", metavar="FILE.toml",
                        help="--compare-inits without RUN_DIR: the model and data of this config file")
    parser.add_argument("--out", metavar="DIR",
                        help="where the PNGs go (default RUN_DIR/diagnose, or ./diagnose-inits)")
    parser.add_argument("--no-plots", action="store_true", help="print the verdicts only, write no PNG")
    parser.add_argument("--json", action="store_true", help="print the diagnostics as JSON instead of tables")
    add_config_options(parser, sections=("model", "data"))
    return parser


def run(args: argparse.Namespace) -> int:
    """Diagnose a run, or compare initializations."""
    if args.epsilon is not None and not 0 < args.epsilon < 1:
        raise UserError(f"--epsilon must be between 0 and 1, got {args.epsilon}")
    overrides = overrides_from_args(args)
    if args.compare_inits:
        return _compare(args, overrides)
    if args.run_dir is None:
        raise UserError("give a RUN_DIR (a directory written by `rnnscope train`) or --compare-inits")
    data_csv = None
    if overrides[:1] == ["--data.csv"]:  # where the run's CSV lives now (it may have moved)
        data_csv, overrides = overrides[1], overrides[2:]
    if overrides or args.config:
        given = args.config and "--config" or overrides[0]
        raise UserError(f"{given} only applies with --compare-inits; a run is diagnosed with its own "
                        "config (--data.csv may say where its CSV lives now)")
    return _diagnose(args, data_csv)


def _diagnose(args: argparse.Namespace, data_csv: str | None = None) -> int:
    from rnnscope.explain.run_diagnosis import diagnose_run
    from rnnscope.report import plots

    result = diagnose_run(args.run_dir, args.checkpoint, args.epsilon, data_csv=data_csv)
    written: list[str] = []
    if not args.no_plots:
        out = Path(args.out) if args.out else Path(args.run_dir) / "diagnose"
        now = {"step": result["step"] if result["step"] is not None else 0, "layers": result["layers"]}
        records = result["records"] or [now]
        gated = [layer for layer in result["layers"] if layer.get("cell")]
        if gated:  # LSTM, GRU: per gate, and the errors along h and c
            from rnnscope.report import gate_plots

            written.append(str(gate_plots.plot_gate_usage(gated, out / "gate_usage.png")))
            written.append(str(gate_plots.plot_state_gradients(gated, out / "state_gradients.png")))
        else:
            written.append(str(plots.plot_activation_usage(result["layers"], out / "activation_usage.png")))
        written.append(str(plots.plot_gradient_flow(records, out / "gradient_flow.png")))
        curves = {}
        if result["records"]:
            first = result["records"][0]
            curves.update({f"{layer['layer']}, step {first['step']}": layer["horizon"]["relative"]
                           for layer in first["layers"]})
        curves.update({f"{layer['layer']}, now": layer["horizon"]["relative"] for layer in result["layers"]})
        written.append(str(plots.plot_horizon(curves, result["epsilon"], out / "horizon.png")))
    if args.json:
        print(json.dumps({**result, "plots": written}, allow_nan=False))
        return 0
    from rich.console import Console

    from rnnscope.report.diagnose_tables import over_training_table, verdict_table

    console = Console()
    loss = result["loss"]
    loss = f"{loss:.4g}" if isinstance(loss, float) else str(loss)
    console.print(f"[bold]rnnscope diagnose[/bold] {result['run_dir']}: {result['source']}, loss {loss}")
    console.print(verdict_table(result["layers"]))
    if result["records"]:
        console.print(over_training_table(result["records"]))
    else:
        console.print("no diagnostics.jsonl: train with --diagnostics.every N to see the picture over training")
    for path in written:
        console.print(f"wrote {path}")
    return 0


def _compare(args: argparse.Namespace, overrides: list[str]) -> int:
    from rnnscope.explain.compare_inits import SCHEMES, compare_inits
    from rnnscope.report import plots
    from rnnscope.train.config import load_config

    if args.run_dir:
        if args.config:
            raise UserError("give either RUN_DIR or --config for --compare-inits, not both")
        config_file = Path(args.run_dir) / "config.toml"
        if not config_file.is_file():
            raise UserError(f"{config_file} does not exist; give the directory of a run of `rnnscope train`")
        cfg = load_config(config_file, overrides)
    else:
        cfg = load_config(args.config, overrides)
    schemes, biases = args.schemes, args.forget_biases
    if schemes is None:  # W_hh = I (identity) is an Elman scheme
        schemes = tuple(s for s in SCHEMES if cfg.model.cell == "elman" or s != "identity")
    if not schemes or not args.scales:
        raise UserError("--schemes and --scales need at least one value each")
    if biases is None and cfg.model.cell == "lstm":
        biases = FORGET_BIASES
    results = compare_inits(cfg, schemes, args.scales, args.epsilon, forget_biases=biases)
    written: list[str] = []
    if not args.no_plots:
        out = Path(args.out) if args.out else (Path(args.run_dir) / "diagnose" if args.run_dir else Path("diagnose-inits"))
        first = results[0]["layers"][0]["layer"]
        written.append(str(plots.plot_inits(results, "horizon", out / "compare_inits_horizon.png",
                                            f"{first} at initialization: memory horizon per scheme and scale")))
        written.append(str(plots.plot_inits(results, "gradient_flow", out / "compare_inits_gradient_flow.png",
                                            f"{first} at initialization: ‖∂L/∂h_t‖ per scheme and scale")))
    if args.json:
        print(json.dumps({"results": results, "plots": written}, allow_nan=False))
        return 0
    from rich.console import Console

    from rnnscope.report.diagnose_tables import compare_table

    console = Console()
    console.print(compare_table(results, cfg))
    for path in written:
        console.print(f"wrote {path}")
    return 0
