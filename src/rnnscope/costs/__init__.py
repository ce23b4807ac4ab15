"""Pure cost formulas: what a parallel run puts on the network, from shapes alone.

Only the standard library (and `rnnscope.errors`) is imported here, so that parallel/ records,
plan/ predicts and lab/ checks by the very same arithmetic, and reading a table needs no torch.

- `collectives`: bytes and messages per rank of one collective, by algorithm; bus factors.
- `backends`: which algorithm gloo and NCCL run for each op.
- `layout`: the strategy names, the data × pipeline × hidden-split layout and its rules
  (layers per stage, the hidden-split divisibility, chunks, the bubble).
- `traffic`: each strategy's transfers in one training step.
- `units`: sizes, rates and durations as people write them (400Gbit, 5us, 100Mbit).
"""
