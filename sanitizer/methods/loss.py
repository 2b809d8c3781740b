"""Loss-guided isolation, ABL's rule (Li et al., NeurIPS 2021), as a baseline: a backdoor is
learnt faster than clean features, so the samples the suspect model fits best, lowest
cross-entropy at the given label, are the suspects. The `isolation` share with the lowest loss
is flagged, whatever the data: the rule has no notion of how many poisons there are."""

from __future__ import annotations

import numpy as np

from ..training import log_prob_at_label
from .base import METHODS, Detection, Inputs, Method


@METHODS.register("loss")
class LossIsolation(Method):
    name = "loss"
    section = "loss"
    suspicion = "log p(y|x) under the suspect: the lower its loss, the more suspicious"

    def detect(self, inputs: Inputs) -> Detection:
        fit = log_prob_at_label(inputs.suspect, inputs.data.x, inputs.data.y)
        k = max(1, int(round(inputs.cfg.isolation * len(fit))))
        suspected = np.zeros(len(fit), dtype=bool)
        # Stable order: among equal losses the earlier sample_id is flagged first.
        suspected[np.argsort(-fit, kind="stable")[:k]] = True
        return Detection(suspicion=fit, suspected=suspected)
