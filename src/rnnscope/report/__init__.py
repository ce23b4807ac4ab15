"""report: the only place that draws (matplotlib, Agg backend) or writes HTML.

    rnnscope.report.plots        diagnostics: S-curve with the neurons' z, gradient flow, memory horizon
    rnnscope.report.plan_plots   the planner's traffic and step-time plots

Submodules are imported on use, so that importing one does not pull in matplotlib for the others.
"""
