import numpy as np
import pytest

from sanitizer.metrics import auroc, detection, roc_curve


def _brute_auroc(score, pos):
    p, n = score[pos], score[~pos]
    wins = 0.0
    for a in p:
        for b in n:
            wins += 1.0 if a > b else 0.5 if a == b else 0.0
    return wins / (len(p) * len(n))


@pytest.mark.parametrize("seed", range(6))
def test_auroc_matches_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = 60
    score = rng.integers(0, 6, size=n).astype(float)  # many ties
    pos = rng.random(n) < 0.3
    pos[0], pos[1] = True, False
    assert auroc(score, pos) == pytest.approx(_brute_auroc(score, pos), abs=1e-12)


def test_auroc_continuous_and_int_mask():
    rng = np.random.default_rng(9)
    score = rng.normal(size=50)
    pos = (rng.random(50) < 0.5).astype(int)
    pos[:2] = [0, 1]
    assert auroc(score, pos) == pytest.approx(_brute_auroc(score, pos.astype(bool)))


def test_auroc_extremes():
    pos = np.array([False, False, True, True])
    assert auroc(np.array([0.1, 0.2, 0.8, 0.9]), pos) == 1.0
    assert auroc(np.array([0.9, 0.8, 0.2, 0.1]), pos) == 0.0
    assert auroc(np.ones(4), pos) == 0.5


def test_auroc_none_without_both_classes():
    assert auroc(np.arange(5.0), np.zeros(5, bool)) is None
    assert auroc(np.arange(5.0), np.ones(5, bool)) is None


def test_detection_hand_built():
    flagged = np.array([1, 1, 1, 0, 0, 0, 1, 0], bool)
    pos = np.array([1, 1, 0, 1, 0, 0, 0, 0], bool)
    # tp = 2 (0,1), fp = 2 (2,6), fn = 1 (3), negatives = 5
    d = detection(flagged, pos)
    assert d["true_positives"] == 2 and d["false_positives"] == 2
    assert d["flagged"] == 4
    assert d["precision"] == pytest.approx(0.5)
    assert d["recall"] == pytest.approx(2 / 3)
    assert d["fpr"] == pytest.approx(2 / 5)
    assert d["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))


def test_detection_degenerate():
    pos = np.array([1, 0, 0], bool)
    d = detection(np.zeros(3, bool), pos)
    assert d["flagged"] == 0 and d["precision"] is None and d["recall"] == 0.0 and d["fpr"] == 0.0
    d = detection(np.ones(3, bool), np.zeros(3, bool))
    assert d["recall"] is None and d["precision"] == 0.0 and d["fpr"] == 1.0 and d["f1"] is None
    d = detection(pos, pos)
    assert d["precision"] == d["recall"] == d["f1"] == 1.0 and d["fpr"] == 0.0


@pytest.mark.parametrize("seed", range(3))
def test_roc_curve_shape(seed):
    rng = np.random.default_rng(seed)
    score = np.round(rng.normal(size=80), 1)
    pos = rng.random(80) < 0.3
    pos[:2] = [True, False]
    rows = roc_curve(score, pos, points=21)
    assert rows[0] == {"fpr": 0.0, "tpr": 0.0}
    assert rows[-1]["fpr"] == 1.0 and rows[-1]["tpr"] == 1.0
    fpr = np.array([r["fpr"] for r in rows])
    tpr = np.array([r["tpr"] for r in rows])
    assert (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all()
    assert ((fpr >= 0) & (fpr <= 1) & (tpr >= 0) & (tpr <= 1)).all()
    # each point is a real threshold's rates
    for r in rows[1:]:
        ok = [
            (np.isclose((score[~pos] >= t).mean(), r["fpr"]) and np.isclose((score[pos] >= t).mean(), r["tpr"]))
            for t in np.unique(score)
        ]
        assert any(ok)


def test_roc_curve_empty_without_both_classes():
    assert roc_curve(np.arange(4.0), np.zeros(4, bool)) == []
    assert roc_curve(np.arange(4.0), np.ones(4, bool)) == []


def test_roc_png_draws_every_signal_and_is_the_same_bytes_each_time(tmp_path):
    import polars as pl
    from PIL import Image

    from sanitizer import plots

    rng = np.random.default_rng(0)
    pos = rng.random(200) < 0.2
    signals = {"suspicion": pos + rng.normal(0, 0.5, 200), "loss_baseline": rng.normal(0, 1, 200)}
    curves = pl.DataFrame([{**row, "signal": name} for name, s in signals.items() for row in roc_curve(s, pos)])
    for name in ("a.png", "b.png"):
        plots.roc(curves, {n: auroc(s, pos) for n, s in signals.items()}, tmp_path / name)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    with Image.open(tmp_path / "a.png") as image:
        pixels = np.asarray(image.convert("RGB"))
    # matplotlib's first two colours (blue, orange) are both drawn: one curve per signal.
    for colour in ([31, 119, 180], [255, 127, 14]):
        assert (np.abs(pixels.astype(int) - colour).sum(-1) < 30).sum() > 100, colour
