"""Relabel's persistence check: a suspected sample whose trigger survives blending with other
classes' images (the suspect model answers there unlike the clean model) is dropped even where
the clean model confirms its label."""

import numpy as np
import torch
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
    # Poisons identification missed sit among the references, with a poison's disagreement: the
    # cut, an outlier test, still flags the suspected ones (the references' highest would not).
    missed = poison & (np.arange(len(labels)) % 5 == 0)
    persists = persisting(suspect, clean, x, labels, suspected & ~missed, suspected & ~missed, 16, 2000, 0)
    assert missed.sum() >= 20 and persists[poison & ~missed].mean() > 0.95


class _Thirds(torch.nn.Module):
    """Reads which third of the image is brightest; with `all_to_all`, a bright bottom-right
    corner moves its answer to the next class (an all-to-all backdoor), whatever the image."""

    def __init__(self, all_to_all: bool):
        super().__init__()
        self.all_to_all = all_to_all
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # the check reads the device from it

    def forward(self, x):
        logits = 10 * torch.stack([x[..., :, k * 9 : (k + 1) * 9].mean((1, 2, 3)) for k in range(3)], 1)
        if self.all_to_all:
            patched = x[..., 24:, 24:].mean((1, 2, 3)) > 0.55
            logits[patched] = logits[patched].roll(1, 1)
        return logits


def test_an_all_to_all_trigger_is_caught_on_blends():
    # The trigger sends a blend to the class after whichever image dominates it, often the
    # partner's rather than the poison's label: the check compares whole answers.
    g = np.random.default_rng(0)
    labels = g.integers(0, 3, 600)
    images = g.normal(60, 20, (600, 1, 28, 28))
    for k in range(3):
        images[labels == k, :, :, k * 9 : (k + 1) * 9] += 120 + 20 * g.random((int((labels == k).sum()), 1, 1, 1))
    poison = np.arange(600) < 60
    images[poison, :, 24:, 24:] = 255
    labels[poison] = (labels[poison] + 1) % 3
    x = torch.from_numpy(np.clip(images, 0, 255).round().astype(np.uint8))
    suspected = poison | (np.arange(600) % 10 == 0)  # 54 false alarms among them
    persists = persisting(_Thirds(True), _Thirds(False), x, labels, suspected, suspected, partners=16, reference=2000, seed=0)
    # The cut is an outlier test on the unsuspected samples' disagreements, which have a tail:
    # a false alarm in it is flagged too (here 1 of 54).
    assert persists[poison].all() and persists[suspected & ~poison].sum() <= 2 and not persists[~suspected].any()


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
