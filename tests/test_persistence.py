"""Relabel's persistence check: a suspected sample whose trigger survives blending with other
classes' images (the suspect model keeps its label there, the clean model does not) is dropped
even where the clean model confirms its label."""

import numpy as np
from test_advrbd import _logits_with
from test_purification import _backdoor, _suspect

from sanitizer.decisions import decide, persisting


def test_a_patch_trigger_persists_on_blends_and_clean_suspects_do_not():
    x, y, poison = _backdoor(0, patch=4)
    suspect, clean = _suspect(x, y), _suspect(x[~poison], y[~poison])
    labels = y.numpy()
    suspected = poison.copy()
    suspected[np.flatnonzero((labels == 1) & ~poison)[:100]] = True  # false alarms in the target class
    persists = persisting(suspect, clean, x, labels, suspected, suspected, partners=16, reference=2000, seed=0)
    assert persists[poison].mean() > 0.95
    assert not persists[suspected & ~poison].any() and not persists[~suspected].any()
    assert persists.tobytes() == persisting(suspect, clean, x, labels, suspected, suspected, 16, 2000, 0).tobytes()
    # Only the candidates are judged; the others are never flagged.
    some = suspected & (np.arange(len(labels)) % 2 == 0)
    assert not persisting(suspect, clean, x, labels, suspected, some, 16, 2000, 0)[suspected & ~some].any()


def test_decide_drops_a_confirmed_suspect_that_persists_and_nothing_else():
    probs = [[0.1, 0.9], [0.1, 0.9], [0.9, 0.1], [0.1, 0.9]]
    labels = np.array([1, 1, 1, 1])
    suspected = np.array([True, True, True, False])
    persists = np.array([True, False, True, False])
    d = decide(_logits_with(probs), labels, suspected, 0.5, False, 0.0, persists)
    # 0: confirmed by the clean model but persists -> drop; 1: a false alarm -> keep;
    # 2: dropped by the clean model anyway; 3: not suspected.
    assert d.decision.tolist() == ["drop", "keep", "drop", "keep"]
    assert "a trigger" in d.reason[0] and "predicts the given label" in d.reason[1]
    assert d.new_label.tolist() == [1, 1, 0, 1]
    assert decide(_logits_with(probs), labels, suspected, 0.5, False, 0.0).decision.tolist() == ["keep", "keep", "drop", "keep"]
