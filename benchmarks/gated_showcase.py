"""The showcase of the gated cells: the adding problem at T = 100 and T = 200.

The chapter's sigmoid Elman network cannot carry the two marked values across a hundred steps
(σ'(z) ≤ 0.25 shrinks the error at every step back), so it stays at the loss of the best constant
prediction (≈ 0.167: the variance of the sum of two uniform numbers). LSTM and GRU, trained the
same way, go far below it. Each run is `rnnscope.train.train` with the same data, optimizer and
steps; only --model.cell differs. After training, each run's checkpoint is diagnosed (the
gradient flow ‖∂L/∂h_t‖ and the memory horizon, `rnnscope diagnose RUN_DIR`), which shows why.

    python benchmarks/gated_showcase.py                          # elman, lstm, gru × T = 100, 200
    python benchmarks/gated_showcase.py --cells lstm --seq-lens 100 --steps 300
    python benchmarks/gated_showcase.py --out runs/showcase --json showcase.json --plots docs/img
    python benchmarks/gated_showcase.py --diagnose-only showcase.json --plots docs/img

Prints a table and writes JSON (one entry per run, written after every run, so a long sweep
that is stopped keeps what it finished). Minutes are wall time on whatever machine runs it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rnnscope.diagnostics.from_run import diagnose_run
from rnnscope.train import load_config, train

CELLS = ("elman", "lstm", "gru")
SEQ_LENS = (100, 200)


def overrides(cell: str, seq_len: int, args: argparse.Namespace, run_dir: Path) -> list[str]:
    """The config of one run: the same for every cell except --model.cell."""
    return [
        "--model.cell", cell, "--model.hidden", str(args.hidden),
        "--data.task", "adding", "--data.seq_len", str(seq_len), "--data.samples", str(args.samples),
        "--data.batch_size", str(args.batch),
        "--optim.name", "adam", "--optim.lr", str(args.lr), "--optim.clip", "1",
        "--train.max_steps", str(args.steps), "--train.epochs", "0", "--train.seed", str(args.seed),
        "--train.log_every", str(max(args.steps // 20, 1)), "--train.checkpoint_every", str(args.steps),
        "--train.progress", "false", "--train.run_dir", str(run_dir),
    ]


def constant_loss(cfg) -> float:
    """MSE of the best constant prediction (the mean) on the validation set: the bar to go below."""
    from rnnscope.data import build_dataset

    y = build_dataset(cfg.data, cfg.train.seed).y_val
    return float(((y - y.mean()) ** 2).mean())


def train_one(cell: str, seq_len: int, args: argparse.Namespace) -> dict:
    """Train one cell at one sequence length; the row of the table without its diagnosis."""
    run_dir = Path(args.out) / f"{cell}-T{seq_len}"
    cfg = load_config(None, overrides(cell, seq_len, args, run_dir))
    baseline = constant_loss(cfg)
    start = time.perf_counter()
    result = train(cfg)
    minutes = (time.perf_counter() - start) / 60
    return {
        "cell": cell, "T": seq_len, "hidden": args.hidden, "steps": result.steps, "minutes": minutes,
        "val_loss": result.val_loss, "best_val_loss": result.best_val_loss, "constant_loss": baseline,
        "ratio": result.val_loss / baseline, "run_dir": str(run_dir),
    }


def diagnose_row(row: dict) -> tuple[dict, dict]:
    """The row with the diagnosis of its run's final checkpoint (gradient flow, memory horizon),
    and the layer summary it came from."""
    layer = diagnose_run(row["run_dir"])["layers"][0]
    flow, horizon = layer["gradient_flow"], layer["horizon"]
    return {**row, "growth_per_step": flow["growth_per_step"], "span": flow["span"],
            "gradient": flow["verdict"], "horizon": horizon["horizon"]}, layer


def plot(rows: list[dict], layers: list[dict], out: Path) -> list[Path]:
    """One PNG per sequence length: ‖∂L/∂h_t‖ and the memory horizon of every cell, side by side."""
    from rnnscope.report.gate_plots import plot_flow_and_horizon

    written = []
    for seq_len in dict.fromkeys(r["T"] for r in rows):
        picked = [(r, layer) for r, layer in zip(rows, layers) if r["T"] == seq_len]
        label = lambda r: f"{r['cell']} (val loss {r['val_loss']:.3g})"  # noqa: E731
        written.append(plot_flow_and_horizon(
            {label(r): layer["gradient_flow"]["norms"] for r, layer in picked},
            {label(r): layer["horizon"]["relative"] for r, layer in picked}, picked[0][1]["horizon"]["epsilon"],
            out / f"gated_showcase_T{seq_len}.png",
            f"The adding problem, T = {seq_len}: after {picked[0][0]['steps']} steps of training"))
    return written


def table(rows: list[dict]) -> Table:
    """The showcase table: loss against the constant prediction, and the diagnosis beside it."""
    out = Table(title="The adding problem: validation MSE after training (constant prediction ≈ 0.167)")
    for column in ("cell", "T", "steps", "minutes", "val loss", "constant", "loss / constant",
                   "∂L/∂h ×/step", "first step gets", "horizon"):
        out.add_column(column, justify="right")
    for r in rows:
        diagnosed = "horizon" in r
        out.add_row(r["cell"], str(r["T"]), str(r["steps"]), f"{r['minutes']:.1f}", f"{r['val_loss']:.3g}",
                    f"{r['constant_loss']:.4f}", f"{r['ratio']:.3g}",
                    f"{float(r['growth_per_step']):.3g}" if diagnosed else "–",
                    f"{float(r['span']):.2g}" if diagnosed else "–",
                    f"{r['horizon']}/{r['T'] - 1}" if diagnosed else "–")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", default=",".join(CELLS), help="comma-separated (default elman,lstm,gru)")
    parser.add_argument("--seq-lens", default=",".join(map(str, SEQ_LENS)), help="comma-separated (default 100,200)")
    parser.add_argument("--steps", type=int, default=1500, help="optimizer steps per run (default 1500)")
    parser.add_argument("--hidden", type=int, default=32, help="units per layer (default 32)")
    parser.add_argument("--batch", type=int, default=32, help="sequences per batch (default 32)")
    parser.add_argument("--lr", type=float, default=0.01, help="Adam's learning rate (default 0.01)")
    parser.add_argument("--samples", type=int, default=4096, help="sequences generated, 20%% validation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/gated_showcase", help="where the runs are written")
    parser.add_argument("--json", default=None, help="write the rows here as JSON (after every run)")
    parser.add_argument("--plots", metavar="DIR", default=None,
                        help="write gated_showcase_T<T>.png here: gradient flow and horizon side by side")
    parser.add_argument("--diagnose-only", metavar="JSON", default=None,
                        help="train nothing: diagnose the runs of an earlier sweep's JSON again")
    args = parser.parse_args()
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    seq_lens = [int(t) for t in args.seq_lens.split(",") if t.strip()]
    console, rows = Console(width=140), []  # the table's ten columns, unfolded even in a log file
    if args.diagnose_only:
        rows = json.loads(Path(args.diagnose_only).read_text())
    else:
        for seq_len in seq_lens:
            for cell in cells:
                rows.append(train_one(cell, seq_len, args))
                console.print(f"{cell} T={seq_len}: val loss {rows[-1]['val_loss']:.4f} after "
                              f"{rows[-1]['steps']} steps, {rows[-1]['minutes']:.1f} min")
                if args.json:
                    Path(args.json).write_text(json.dumps(rows, indent=2))
    rows, layers = map(list, zip(*[diagnose_row(row) for row in rows]))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    console.print(table(rows))
    if args.plots:
        for path in plot(rows, layers, Path(args.plots)):
            console.print(f"wrote {path}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
