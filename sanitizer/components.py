"""A trigger in the pixels: the independent components of each class's images.

An additive trigger (a sinusoid, a blended pattern) adds the same vector to every image that
carries it, so along that vector a class part of whose images carry it holds two populations.
Independent component analysis (FastICA, Hyvarinen and Oja 2000) finds a class's least
Gaussian directions. No one population is flatter than a uniform distribution: a symmetric
unimodal distribution is a mixture of uniforms around its mode (Khintchine), so its excess
kurtosis is at least the uniform's, -1.2. A class whose flattest component lies below that
holds two populations. Two well-separated populations give a kurtosis of
(1 - 6 q (1 - q)) / (q (1 - q)) for a share q of them, below -1.2 for q between about 0.3
and 0.7: the filter finds a pattern carried by a third to two thirds of a class, such as a
clean-label attack that poisons half its target class (SIG at rate 5 % on ten classes); a
smaller share is a heavy tail, as natural classes have too (Fashion-MNIST Bag: +1.6).
The test reads the components FastICA returns, not the flattest direction there is: natural
classes hold two-population directions too (an edge pixel is object or background), and a
search aimed straight at the least kurtosis finds -1.8 in clean Bags. FastICA's components
stayed at -0.68 and above in every class of 23 Fashion-MNIST attack and clean runs and on
clean CIFAR-10 (benchmarks/results/pattern-filter.md).

Which population carries the trigger: the one the other classes' images do not share, since
an attacker adds it to the target class's images only (a two-Gaussian mixture along the
component tells which sample is in which). A clean-label poison keeps its right
label, so a clean model confirms it; what gives it away is its image, and relabel drops it
whatever the clean model says (`Detection.trigger`)."""

from __future__ import annotations

import numpy as np

# Of a symmetric unimodal distribution, the least excess kurtosis (the uniform's): not fitted.
UNIFORM_KURTOSIS = -1.2
# Samples per direction searched. With fewer, FastICA finds flat directions in Gaussian noise:
# 200 samples in 50 directions gave -1.13 to -1.34, 500 in 50 -0.97 to -1.12; at a hundred per
# direction (200 in 2, 500 in 5, 1,000 in 10) -0.16 to -0.56, and 6,000 in 50 -0.14 to -0.30.
SAMPLES_PER_DIRECTION = 100


def excess_kurtosis(z: np.ndarray) -> np.ndarray:
    """Per column of `z`."""
    z = z - z.mean(0)
    var = (z**2).mean(0)
    return (z**4).mean(0) / np.maximum(var, 1e-300) ** 2 - 3.0


def flattest_component(pixels: np.ndarray, dims: int, seed: int):
    """FastICA on one class's pixels (n x d, float64: in float32 the whitening of its faint
    directions depended on the number of BLAS threads, and so did finding SIG's sinusoid) in
    its `dims` leading principal directions (at most one per SAMPLES_PER_DIRECTION samples),
    whitened: the component with the least excess kurtosis, as (a function projecting n' x d
    pixels on it, its kurtosis); (None, nan) for too few samples or pixels without variance."""
    import warnings

    from sklearn.decomposition import FastICA
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils.extmath import randomized_svd

    dims = min(dims, len(pixels) // SAMPLES_PER_DIRECTION, pixels.shape[1])
    if dims < 1:
        return None, float("nan")
    mean = pixels.mean(0)
    u, sv, vt = randomized_svd(pixels - mean, dims, random_state=seed)
    # Directions without variance (constant pixels, fewer samples than pixels) cannot be whitened.
    k = int((sv > sv[0] * 1e-6).sum()) if len(sv) and sv[0] > 0 else 0
    if k < 1:
        return None, float("nan")
    scale = np.sqrt(len(pixels))
    ica = FastICA(whiten=False, random_state=seed, max_iter=400, tol=1e-4)
    # A class with no non-Gaussian direction gives FastICA nothing to settle on: its components
    # stay near Gaussian (kurtosis near 0) whether or not it converged, which is the answer.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        kurtosis = excess_kurtosis(ica.fit_transform(u[:, :k] * scale))
    j = int(np.argmin(kurtosis))
    direction = (vt[:k].T / sv[:k] * scale) @ ica.components_[j]
    return (lambda x: (x - mean) @ direction), float(kurtosis[j])


def pattern_carriers(images: np.ndarray, labels: np.ndarray, num_classes: int, dims: int, max_kurtosis: float = UNIFORM_KURTOSIS, seed: int = 0, others: int = 10_000):
    """Per class, its flattest component's excess kurtosis; and per sample whether it is in the
    population of a two-population class (kurtosis below `max_kurtosis`) that the other
    classes' images (up to `others` of them, evenly strided) are least often in."""
    from .progress import progress_bar

    flat = images.reshape(len(images), -1)
    kurtosis = np.full(num_classes, np.nan)
    carriers = np.zeros(len(labels), dtype=bool)
    with progress_bar("independent components per class", num_classes) as advance:
        for c in range(num_classes):
            rows, rest = np.flatnonzero(labels == c), np.flatnonzero(labels != c)
            pixels = flat[rows] / 255.0
            project, kurtosis[c] = flattest_component(pixels, dims, seed)
            if kurtosis[c] < max_kurtosis:  # False for nan
                carriers[rows] = _unshared_population(project(pixels), project(flat[rest[:: max(1, len(rest) // others)]] / 255.0), seed)
            advance()
    return kurtosis, carriers


def _unshared_population(mine: np.ndarray, theirs: np.ndarray, seed: int) -> np.ndarray:
    """Which of the class's samples belong to the population, of a two-Gaussian mixture fitted
    to their projections, that the other classes' projections fall in least often relative to
    the class's own share of it. Each population keeps its own spread: a dirty-label trigger's
    carriers are other classes' images under one pattern, tighter than the class's own (CIFAR-10
    BadNets' automobiles: 0.28 against 0.66), and a cut midway between the two means flagged 819
    clean automobiles where the mixture flags 386 (and misses 24 of 2,500 poisons, against 3)."""
    from sklearn.mixture import GaussianMixture

    mixture = GaussianMixture(2, random_state=seed).fit(mine[:, None])
    own, other = mixture.predict(mine[:, None]), mixture.predict(theirs[:, None])
    ratio = [(other == j).mean() / max((own == j).mean(), 1e-12) for j in (0, 1)]
    return own == int(np.argmin(ratio))
