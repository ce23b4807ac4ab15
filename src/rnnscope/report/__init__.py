"""report: the only place that draws (matplotlib, Agg backend) or writes HTML and traces.

    rnnscope.report.html          one self-contained page: sections, tables, charts (page.js draws them)
    rnnscope.report.run_page      `rnnscope report RUN_DIR`: everything a run directory knows
    rnnscope.report.traffic_page  the traffic and ledger-beside-formula sections of a parallel run
    rnnscope.report.timeline      per-call and compute spans: the Chrome trace, and the page's timeline
    rnnscope.report.pages         the pages of `compare`, `plan` and `lab` (--html)
    rnnscope.report.plots         diagnostics PNGs: S-curve with the neurons' z, gradient flow, horizon
    rnnscope.report.plan_plots    the planner's traffic and step-time PNGs
    rnnscope.report.lab_plots     the lab sweep's PNG

Submodules are imported on use, so that importing one does not pull in matplotlib for the others.
(TensorBoard event files are a log the training loop writes, like metrics.jsonl: rnnscope.train.tensorboard.)
"""
