"""Training on several processes with torch.distributed, every byte accounted for.

- `comm`: the Communicator, through which every strategy's collectives and point-to-point
  operations go, and which records them in a `ledger.Ledger`.
- `ledger`: records, per-step rows (bytes, messages, seconds, algbw, busbw, rates), traffic.jsonl.
- `summary`: the end-of-run table.
- `context`: the DistContext the training loop receives (`from_env`).
- `data`: data parallelism (DistributedDataParallel with a communication hook through `comm`).
- `checksum`: weight checksums compared across ranks.
- `launch`: starting local workers through torch.distributed.run (torchrun's agent).
- `wire`: the loopback interface's own byte counters, to check the ledger against.
"""
