"""`rnnscope explain [bptt|sigmoid|forgetting|lstm|gru]`: the chapter's figures, number by number.

    rnnscope explain                                   # figure 5-3: one sigmoid neuron, 3 steps, MSE
    rnnscope explain --sequence 1,0.5,-0.5,0.8 --epochs 5 --time-reduction mean
    rnnscope explain --hidden 2 --readout linear       # vectors and matrices, compactly
    rnnscope explain sigmoid --z=-5,-2.2,0,2.2         # figure 5-4 (write --z=-5,… for negatives)
    rnnscope explain forgetting --h1 0.0007 --w-h 4.6  # figure 5-5
    rnnscope explain lstm                              # one LSTM unit, 3 steps: the error goes back × f_t
    rnnscope explain gru --sequence 0.5,-0.2,0.9,0.3   # one GRU unit: × z_t along h
    rnnscope explain --json                            # the same numbers as data
"""

from __future__ import annotations

import argparse
import json

from rnnscope.errors import UserError

TOPICS = ("bptt", "sigmoid", "forgetting", "lstm", "gru")


def _floats(text: str) -> tuple[float, ...]:
    """'0.5,-0.2,0.9' -> (0.5, -0.2, 0.9); argparse reports the error."""
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers like 0.5,-0.2,0.9, got {text!r}") from None


def register(subparsers) -> argparse.ArgumentParser:
    """Add the `explain` parser."""
    parser = subparsers.add_parser(
        "explain",
        help="the chapter's worked example (BPTT), sigmoid facts and forgotten history, number by number",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("topic", nargs="?", default="bptt", choices=TOPICS,
                        help="bptt: figure 5-3, the weight adjustment process (default); sigmoid: figure "
                        "5-4, the S-curve's facts; forgetting: figure 5-5, 'forgotten' history; lstm, gru: "
                        "one gated unit over the same steps, and why its error survives")
    parser.add_argument("--sequence", type=_floats, default=None,
                        help="inputs, comma-separated: x_1…x_T for bptt (default 0.5,-0.2,0.9); x_2…x_T "
                        "for forgetting (default zeros). Write --sequence=-1,2 when it starts with a minus")
    parser.add_argument("--target", type=float, default=0.8, help="bptt: the target y of the MSE (default 0.8)")
    parser.add_argument("--w-x", type=float, default=None, help="input weight (bptt default 0.5, forgetting 1.0; hidden 1 only)")
    parser.add_argument("--w-h", type=float, default=None, help="recurrent weight (bptt default 0.8, forgetting 4.6; hidden 1 only)")
    parser.add_argument("--b", type=float, default=None, help="bias (bptt default 0.1, forgetting 0; hidden 1 only)")
    parser.add_argument("--lr", type=float, default=0.5, help="bptt: learning rate (default 0.5)")
    parser.add_argument("--activation", default="sigmoid",
                        help="sigmoid (the chapter's, default), tanh or relu")
    parser.add_argument("--hidden", type=int, default=1,
                        help="bptt: neurons in the recurrent layer, 1 to 8 (more than 1 needs --readout linear; "
                        "weights are then random with --seed)")
    parser.add_argument("--time-reduction", default="sum", choices=("sum", "mean"),
                        help="bptt: sum the adjustments over the time steps (torch, Keras), or average them "
                        "(the chapter's option)")
    parser.add_argument("--readout", default=None, choices=("none", "linear"),
                        help="bptt: ŷ is the neuron's own last output (none, the figure's; default for hidden 1) "
                        "or w_y·h_T + b_y (linear; default for hidden > 1)")
    parser.add_argument("--epochs", type=int, default=1,
                        help="bptt: gradient-descent steps on the sequence; more than 1 shows the loss falling")
    parser.add_argument("--seed", type=int, default=0, help="bptt: seed of the random weights when hidden > 1")
    parser.add_argument("--z", type=_floats, default=None,
                        help="sigmoid: pre-activations to tabulate (default -7,-5.5,-5,-2.2,0,2.2,5.5 and, for "
                        "tanh, its own thresholds ±1.1, ±2.75); write --z=-5,0,5")
    parser.add_argument("--h1", type=float, default=0.0007, help="forgetting: the small h_1 (default 0.0007)")
    parser.add_argument("--steps", type=int, default=5, help="forgetting: time steps in all (default 5)")
    parser.add_argument("--forget-bias", type=float, default=None,
                        help="lstm: the forget gate's bias (default 1.0); gru: the update gate's")
    parser.add_argument("--json", action="store_true", help="print the same numbers as JSON instead of tables")
    return parser


def _compute(args: argparse.Namespace) -> tuple[dict, str]:
    """The result dict of the chosen topic and the name of its renderer."""
    from rnnscope.explain import ForgettingSetting, Setting, curve_facts, forgetting, walkthrough
    if args.topic in ("lstm", "gru"):
        from rnnscope.explain.gated_walkthrough import GatedSetting, gated_walkthrough

        elman_only = {"--hidden": args.hidden != 1, "--w-x": args.w_x is not None, "--w-h": args.w_h is not None,
                      "--b": args.b is not None, "--epochs": args.epochs != 1, "--readout": args.readout is not None,
                      "--activation": args.activation != "sigmoid", "--z": args.z is not None}
        given = [name for name, set_ in elman_only.items() if set_]
        if given:
            raise UserError(f"{', '.join(given)} apply to the Elman topics; `rnnscope explain {args.topic}` takes "
                            "--sequence, --target, --forget-bias and --json")
        setting = GatedSetting(cell=args.topic, target=args.target, carry_bias=args.forget_bias)
        if args.sequence is not None:
            setting.sequence = args.sequence
        return gated_walkthrough(setting), "gated"
    if args.forget_bias is not None:
        raise UserError(f"--forget-bias is for `rnnscope explain lstm` or `gru`, not {args.topic}")
    if args.topic == "sigmoid":
        return curve_facts(args.z, args.activation), "curve"
    weights = {k: v for k, v in (("w_x", args.w_x), ("w_h", args.w_h), ("b", args.b)) if v is not None}
    if args.topic == "forgetting":
        setting = ForgettingSetting(h1=args.h1, steps=args.steps, inputs=args.sequence or (),
                                    activation=args.activation, **weights)
        return forgetting(setting), "forgetting"
    if args.hidden != 1 and weights:
        given = ", ".join("--" + k.replace("_", "-") for k in weights)
        raise UserError(f"{given} set the single neuron's weights; with --hidden {args.hidden} the weights "
                        "are random (choose them with --seed), so leave those out or use --hidden 1")
    readout = args.readout or ("none" if args.hidden == 1 else "linear")
    setting = Setting(target=args.target, lr=args.lr, activation=args.activation, hidden=args.hidden,
                      time_reduction=args.time_reduction, readout=readout, epochs=args.epochs, seed=args.seed,
                      **weights)
    if args.sequence is not None:
        setting.sequence = args.sequence
    return walkthrough(setting), "walkthrough"


def run(args: argparse.Namespace) -> int:
    """Compute the topic with the engine and print it as tables (or JSON)."""
    result, kind = _compute(args)
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    from rich.console import Console

    from rnnscope.explain import gated_render, render

    renderer = {"walkthrough": render.render_walkthrough, "curve": render.render_curve,
                "forgetting": render.render_forgetting, "gated": gated_render.render_gated}[kind]
    renderer(result, Console())
    return 0
