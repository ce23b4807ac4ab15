"""How a run is cut over its workers: the strategy names, the parallel layout and its rules.

A layout is d data replicas × p pipeline stages × hs hidden-split ways; it occupies
d·p·hs workers. World ranks are laid out row-major with the model index fastest,

    rank = i_d · M + m        i_d ∈ [0, d) data replica, m ∈ [0, M = p·hs) model piece

so the M ranks of one model replica are neighbours (a pipeline's stages talk every chunk, a
hidden split's slices every time step), and each data group {m, M + m, 2M + m, ...} holds the
same piece of every replica, whose gradients it all-reduces once per step.

The rules a model must obey live here too, once: a pipeline of p stages needs at least p layers
(contiguous blocks, the first stages taking the extra layers), a hidden split of hs ways needs
hs to divide the hidden size, and a pipeline sends the sequence in ceil(T/chunk) chunks, idle
(p−1)/(C+p−1) of the time while the wavefront fills and drains (the bubble).
"""

from __future__ import annotations

from dataclasses import dataclass

from rnnscope.errors import UserError

# every parallel strategy, by the name `--parallel.strategy`, `compare`, `lab` and `plan` use
STRATEGIES: dict[str, str] = {
    "data": "every worker holds the whole model; gradients are all-reduced (DDP)",
    "pipeline": "each worker runs a block of layers; activations flow chunk by chunk",
    "hidden_split": "each worker owns 1/hs of every layer's hidden units; states are "
                    "all-gathered every time step",
}
MODEL_STRATEGIES = ("pipeline", "hidden_split")  # strategies that cut the model itself
# old names still accepted, with a deprecation note: old name -> the name now
STRATEGY_ALIASES = {"tensor": "hidden_split"}


def strategy_name(name: str, source: str = "--parallel.strategy") -> str:
    """The registry's name for `name` (an alias maps to its new name); a miss lists them all."""
    name = STRATEGY_ALIASES.get(name, name)
    if name not in STRATEGIES:
        raise UserError(f"{source} {name!r} is not a parallel strategy; choose one of "
                        f"{', '.join(STRATEGIES)}")
    return name


def deprecated_alias(name: str) -> str | None:
    """A one-line note when `name` is an old strategy name, else None."""
    if name in STRATEGY_ALIASES:
        return (f"--parallel.strategy {name} is deprecated; it is now called "
                f"{STRATEGY_ALIASES[name]} (the old name keeps working for now)")
    return None


@dataclass(frozen=True)
class ParallelLayout:
    """d data replicas × p pipeline stages × hs hidden-split ways."""

    data: int = 1
    pipeline: int = 1
    hidden_split: int = 1

    def __post_init__(self) -> None:
        if min(self.data, self.pipeline, self.hidden_split) < 1:
            raise UserError(f"layout degrees must be ≥ 1, got dp({self.data}), "
                            f"pp({self.pipeline}), hs({self.hidden_split})")

    @classmethod
    def for_strategy(cls, strategy: str, world_size: int, data_degree: int = 0) -> ParallelLayout:
        """The layout of `--parallel.strategy` on `world_size` workers.

        Data parallel puts every worker in its own replica; a model strategy makes one model
        group of the whole world unless `data_degree` (--parallel.data_degree, 0 = 1) asks for
        several replicas, which must divide the world.
        """
        strategy = strategy_name(strategy)
        if world_size < 1:
            raise UserError(f"WORLD_SIZE must be ≥ 1, got {world_size}")
        if data_degree < 0:
            raise UserError(f"--parallel.data_degree must be ≥ 0, got {data_degree}")
        if strategy == "data":
            return cls(data=world_size)
        data = data_degree or 1
        if world_size % data:
            raise UserError(f"--parallel.data_degree {data} does not divide the world: "
                            f"WORLD_SIZE({world_size}) % dp({data}) = {world_size % data}; "
                            f"choose a divisor of {world_size}")
        model = world_size // data
        layout = cls(data, model, 1) if strategy == "pipeline" else cls(data, 1, model)
        layout.check_world(world_size)
        return layout

    @property
    def world(self) -> int:
        """Workers the layout occupies."""
        return self.data * self.pipeline * self.hidden_split

    @property
    def model(self) -> int:
        """Ranks of one model group (one replica's pieces): p·hs."""
        return self.pipeline * self.hidden_split

    @property
    def family(self) -> str:
        """data, pipeline, hidden_split, data×pipeline, data×hidden_split (or single)."""
        parts = [name for name, degree in (("data", self.data), ("pipeline", self.pipeline),
                                           ("hidden_split", self.hidden_split)) if degree > 1]
        return "×".join(parts) or "single"

    @property
    def label(self) -> str:
        """e.g. `data×hidden_split (d=32, hs=16)`."""
        degrees = [f"{s}={v}" for s, v in (("d", self.data), ("p", self.pipeline),
                                          ("hs", self.hidden_split)) if v > 1]
        return f"{self.family} ({', '.join(degrees)})" if degrees else "single device"

    def arithmetic(self) -> str:
        """`dp(2) * pp(3) * hs(1) = 6`: the degrees and the workers they need."""
        return f"dp({self.data}) * pp({self.pipeline}) * hs({self.hidden_split}) = {self.world}"

    def check_world(self, world_size: int) -> None:
        """Raise a UserError with the arithmetic unless the degrees multiply to `world_size`."""
        if self.world != world_size:
            raise UserError(f"{self.arithmetic()} != WORLD_SIZE({world_size}); choose degrees "
                            f"whose product is the number of workers")

    def check_model(self, layers: int, hidden: int) -> None:
        """Raise a UserError when this model cannot be cut this way."""
        split_layers(layers, self.pipeline)
        split_hidden(hidden, self.hidden_split)
        if self.pipeline > 1 and self.hidden_split > 1:
            raise UserError(f"{self.arithmetic()}: a pipeline of hidden splits is not "
                            "supported; use one model split (pp or hs)")

    def coords(self, rank: int) -> tuple[int, int]:
        """(data index, model index) of a world rank."""
        return divmod(rank, self.model)

    def model_group(self, d: int) -> list[int]:
        """World ranks of data replica d's model group."""
        return [d * self.model + m for m in range(self.model)]

    def data_group(self, m: int) -> list[int]:
        """World ranks that hold model piece m in every replica."""
        return [d * self.model + m for d in range(self.data)]


def split_layers(layers: int, stages: int) -> list[range]:
    """Contiguous blocks of layers per stage, as even as possible (the first take the extras)."""
    if stages < 1:
        raise UserError(f"a layer pipeline needs at least 1 stage, got {stages}")
    if layers < stages:
        raise UserError(f"a layer pipeline needs at least one layer per stage: --model.layers "
                        f"({layers}) < pipeline stages ({stages}); use --model.layers ≥ {stages} "
                        f"or fewer pipeline stages")
    q, r = divmod(layers, stages)
    starts = [s * q + min(s, r) for s in range(stages + 1)]
    return [range(starts[s], starts[s + 1]) for s in range(stages)]


def split_hidden(hidden: int, ways: int) -> int:
    """H/hs, the hidden units each worker of a hidden split owns; hs must divide H."""
    if ways < 1 or hidden % ways:
        raise UserError(f"a hidden split needs its degree to divide --model.hidden: "
                        f"hidden({hidden}) % hs({ways}) = {hidden % ways if ways else '?'}; "
                        f"choose --model.hidden as a multiple of {ways}")
    return hidden // ways


def chunk_bounds(seq_len: int, chunk: int) -> list[tuple[int, int]]:
    """(start, end) of each pipeline chunk of `chunk` time steps; the last may be shorter."""
    if chunk < 1:
        raise UserError(f"--parallel.chunk must be ≥ 1 time step, got {chunk}")
    return [(a, min(a + chunk, seq_len)) for a in range(0, seq_len, chunk)]


def chunk_count(seq_len: int, chunk: int) -> int:
    """C = ceil(T / chunk): the messages per stage boundary and direction."""
    if chunk < 1:
        raise UserError(f"--parallel.chunk must be ≥ 1 time step, got {chunk}")
    return -(-seq_len // chunk)


def bubble_fraction(stages: int, chunks: int) -> float:
    """The bubble model's idle share of a stage: (p−1)/(C+p−1)."""
    return (stages - 1) / (chunks + stages - 1)
