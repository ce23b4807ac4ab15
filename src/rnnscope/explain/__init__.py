"""`rnnscope explain`: the chapter's examples, number by number, computed by the engine.

    walkthrough(Setting())            figure 5-3: forward, backward, accumulated adjustments, update
    curve_facts()                     figure 5-4: σ(z), σ'(z), σ'(z)/σ'(0) and the thresholds
    forgetting(ForgettingSetting())   figure 5-5: how little h_1 still changes h_2, h_3, …
    gated_walkthrough(GatedSetting("lstm"))  one LSTM (or GRU) unit: the error goes back × f_t

And what loads a run to look inside it (it sits above train and diagnostics):
`run_diagnosis.diagnose_run` (a run directory's checkpoint re-traced) and
`compare_inits.compare_inits` (one model at initialization under several schemes).
"""

from rnnscope.explain.curve import curve_facts
from rnnscope.explain.forgetting import ForgettingSetting, forgetting
from rnnscope.explain.gated_walkthrough import GatedSetting, gated_walkthrough
from rnnscope.explain.walkthrough import Setting, walkthrough

__all__ = ["ForgettingSetting", "GatedSetting", "Setting", "curve_facts", "forgetting", "gated_walkthrough",
           "walkthrough"]
