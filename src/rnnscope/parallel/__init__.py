"""Training on several processes with torch.distributed, every byte accounted for.

- `comm`: the Communicator, through which every strategy's collectives and point-to-point
  operations go, and which records them in a `ledger.Ledger`.
- `ledger`: records, per-step rows (bytes, messages, seconds, algbw, busbw, rates), traffic.jsonl.
- `summary`: the end-of-run table.
- `context`: what every strategy's DistContext shares; `worker.from_env` builds one per strategy.
- `data`: data parallelism (DistributedDataParallel with a communication hook through `comm`).
- `pipeline`, `hidden_split` (on `model_parallel` and `mesh`): the model splits.
- `comparison`: a run's measured traffic beside its formula (`rnnscope compare`).
- `checksum`: weight checksums compared across ranks.
- `launch`: starting local workers through torch.distributed.run (torchrun's agent).
- `wire`: the loopback interface's own byte counters, to check the ledger against.
"""
