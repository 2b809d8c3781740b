"""AdvrBD (paper sections V-VI): partition by robustness, backdoor-enhanced training,
identification, relabel and relearn. Functions take tensors and boolean masks in sample_id
order; stages turn them into manifests.

Where we depart from the paper (measured on Fashion-MNIST, see README):
- The enhanced model E fits every sample it descends on, clean ones included, so "E still
  fits the given label" alone flags most of D_r. Each round therefore also trains a clean
  reference C on D_s, and the consistency of a sample is log p_E(y|x) - log p_C(y|x): a
  poison is fitted by the backdoored E and rejected by the clean C. The lowest-consistency
  samples move to D_s (Alg. 2) and identification flags the highest.
- D_s must stay almost poison-free: 0.16 % poison in it was enough to plant the backdoor
  in C. So growth is conservative and C trains only a few epochs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import EnhanceConfig, PartitionConfig, TrainConfig
from ..errors import SanitizerError
from ..models import recipe_of
from ..progress import log, progress_bar
from ..steps import ascent, batches, descent, num_batches, sgd, step, tuning_lr
from ..training import fit, log_prob_at_label, to_float
from .base import METHODS, Detection, Inputs, Method


def _rank(values: np.ndarray) -> np.ndarray:
    """n - 1 for the largest value, 0 for the smallest; among ties the earlier sample ranks
    higher, so the seed is reproducible and follows sample_id order."""
    ranks = np.empty(len(values), dtype=np.int64)
    ranks[np.argsort(-values, kind="stable")] = np.arange(len(values) - 1, -1, -1)
    return ranks


# How trusted-clean a sample looks, higher = cleaner, by the signal the seed is drawn from.
TRUST = {
    "robustness": lambda robustness, loss: _rank(robustness),  # Eq. 3 as in the paper
    "loss": lambda robustness, loss: _rank(loss),  # the suspect model does not fit the label
    # Clean by both signals: a sample is only as trusted as its weaker rank.
    "both": lambda robustness, loss: np.minimum(_rank(robustness), _rank(loss)),
}


def partition(robustness: np.ndarray, loss: np.ndarray, rate: float, by: str = "robustness", eligible: np.ndarray | None = None, labels: np.ndarray | None = None, middle=(), own: dict | None = None) -> np.ndarray:
    """Alg. 1: the `rate` most trusted samples form the seed D_s (True). With `eligible`, the
    ineligible ones among them are left out. With `labels` too, each class keeps its share of
    the seed: what the bars took is made up from the middle of the class's remaining eligible
    samples' trust order (`_middle`), not its next most trusted, where the poisons the bars
    missed sit (on Fashion-MNIST, refilling from there let Adaptive-Blend's backdoor through:
    ASR 0.08 -> 6.69 %). Left out unreplaced, a target class whose unfitted samples are barred
    all but vanishes from the seed, and the clean reference C, trained on it, rejects the
    class's own images (CIFAR-10 BadNets: 26 automobiles of its share of 516, 2,471 clean
    automobiles dropped). Each class in `middle` takes its whole share from the middle, and
    each class in `own` by the trust order given there (per sample, higher = more trusted)."""
    k = max(1, int(round(rate * len(robustness))))
    trust = TRUST[by](robustness, loss)
    trusted = np.zeros(len(robustness), dtype=bool)
    trusted[np.argsort(-trust, kind="stable")[:k]] = True
    eligible = np.ones(len(trusted), dtype=bool) if eligible is None else eligible
    seed = trusted & eligible
    for c in np.unique(labels) if labels is not None else ():
        rows = np.flatnonzero((labels == c) & eligible)
        if own and c in own:
            seed[rows] = False
            seed[rows[np.argsort(-own[c][rows], kind="stable")[: int(trusted[labels == c].sum())]]] = True
            continue
        if c in middle:
            seed[rows] = False
        free = rows[~seed[rows]]
        seed[free[_middle(trust[free], int(trusted[labels == c].sum() - seed[rows].sum()))]] = True
    if not seed.any():
        raise SanitizerError("no sample may seed D_s: every trusted sample is barred (partition.max_gap, partition.cluster_anomaly); raise partition.rate or switch a filter off")
    return seed


def _middle(trust: np.ndarray, n: int) -> np.ndarray:
    """The `n` samples nearest the median of this trust order; the earlier sample first among
    equals."""
    return np.argsort(np.abs(_rank(trust) - (len(trust) - 1) / 2), kind="stable")[:n]


@dataclass
class Bar:
    """Samples one filter bars from D_s, and why: each class's MAD anomaly index by the
    filter's signal, the classes it suspects as targets, those of them that stand out from the
    other classes (`outliers`; the rest are found by their clusters' contrast alone, as in an
    all-to-all attack), and (clusters) each class's contrast, in all dimensions and along the
    clusters' axis, and how empty the space between them is; (shift) the classes that take
    their share of D_s by a trust order of their own (`seeded`), that order per sample, and the
    classes found to hold the trigger's cover samples rather than its poisons (`covers`)."""

    barred: np.ndarray
    anomaly: np.ndarray
    targets: np.ndarray
    outliers: np.ndarray
    contrast: np.ndarray | None = None
    axis: np.ndarray | None = None
    valley: np.ndarray | None = None
    split: np.ndarray | None = None
    trust: np.ndarray | None = None
    seeded: np.ndarray | None = None
    covers: np.ndarray | None = None


def bar_by_gap(gap: np.ndarray, labels: np.ndarray, num_classes: int, cfg: PartitionConfig) -> Bar:
    """Poisons share one label, so a high purification gap is trusted only inside a class
    where high gaps are an outlier among classes; there, samples above `max_gap` are barred."""
    from ..purification import class_anomaly

    anomaly = class_anomaly(gap, labels, num_classes, cfg.target_gap)
    targets = np.flatnonzero(anomaly > cfg.min_anomaly)
    return Bar(np.isin(labels, targets) & (gap > cfg.max_gap), anomaly, targets, targets)


def bar_by_clusters(features, labels: np.ndarray, num_classes: int, cfg: PartitionConfig) -> Bar:
    """A dirty-label target class holds two populations, its own images and the poisons, so
    its suspect activations split into two clusters unusually far apart; the smaller one is
    barred. A clean class splits into two neighbouring halves. "Unusually" is judged two ways:
    against the other classes (MAD anomaly index: one target among clean classes), and against
    a Gaussian of the class's own shape (contrast: an all-to-all attack makes every class a
    target, so no class stands out from the others). Standing out from the other classes
    takes both the separation and the contrast: a class whose own shape is long splits far
    apart without a second population (Fashion-MNIST WaNet 2 % into Dress: Sandal's
    separation stood out at 3.5 MAD indexes with a contrast of 1.59, and 1,412 of its clean
    images were dropped). A class whose poisons fill half of it
    varies most between its two populations, so a Gaussian of its own shape lies almost as far
    apart: its clusters are judged along their axis alone too (`axis_contrast`), where such a
    class stands out from the others and lies further apart than the contrast bar. Only a
    class the contrast has not named already: among the ten targets of an all-to-all attack one
    standing out along its axis is no lone target (Fashion-MNIST BadNets all-to-all, Pullover:
    FPR 1.37 -> 1.91 % when its hard clean samples were barred). A class
    none of these suspects is searched once more, inside its two clusters (`separation`'s
    depth 2), for the contrast. Last, a class whose two clusters leave the space between them
    empty (`valley`) holds two populations however close they lie: a dirty-label target whose
    poisons the suspect has pulled toward the class's own images (Fashion-MNIST Blend
    all-to-all: Bag's poisons at 2.6 times a Gaussian's split).
    A weak attack's poisons, half learnt, lie near the class's own images: their split neither
    lies unusually far apart in the raw (a class of varied images splits as far) nor leaves an
    empty valley, but it stands out from the other classes' splits for the class's own shape,
    both in its contrast and in how much emptier the space between its clusters is (a second
    witness, as the separation is for the contrast above): CIFAR-10 WaNet, automobile at 11.9
    and 5.4 MAD indexes (2,483 of its 2,500 poisons in its smaller cluster; 1.27 times a
    Gaussian's split, valley 0.54, where the other classes' lie at 1.01-1.13 and 0.72-0.98;
    the next class at 1.9 on both); unnamed, its seed took 629 poisons and 63.78 % ASR was
    kept. On clean data no class passes 1.9 on both (CIFAR-10, Fashion-MNIST); on 30
    Fashion-MNIST suspects (grid, variants, seeds) and the other six CIFAR-10 attack rows
    only targets the tests above name as standing out do."""
    from ..metrics import mad_anomaly
    from .clustering import axis_contrast, hollowness, separation, valleys

    sep, small, gaussian = separation(features, labels, num_classes, cfg.cluster_dims)
    anomaly = mad_anomaly(sep, 1e-12)
    contrast = sep / np.maximum(gaussian, 1e-12)
    axis = axis_contrast(features, labels, small, num_classes, cfg.cluster_dims)
    spread = contrast > cfg.cluster_contrast if cfg.cluster_contrast is not None else np.zeros(num_classes, dtype=bool)
    valley = valleys(features, labels, small, num_classes, cfg.cluster_dims)
    outlier = np.zeros(num_classes, dtype=bool)
    if cfg.cluster_anomaly is not None:  # the contrast, witnessed by the separation or the valley
        outlier = (mad_anomaly(contrast, 1e-12) > cfg.cluster_anomaly) & ((anomaly > cfg.cluster_anomaly) | (hollowness(valley) > cfg.cluster_anomaly))
    if cfg.cluster_anomaly is not None and cfg.cluster_contrast is not None:
        outlier |= (mad_anomaly(axis, 1e-12) > cfg.cluster_anomaly) & (axis > cfg.cluster_contrast) & ~spread
    if cfg.cluster_contrast is not None:  # a second look inside the classes not yet suspected
        unsure = np.flatnonzero(~(outlier | spread))
        deep_sep, deep_small, deep_gaussian = separation(features, labels, num_classes, cfg.cluster_dims, depth=2, classes=unsure)
        deeper = np.isin(labels, unsure)
        contrast[unsure], small[deeper] = deep_sep[unsure] / np.maximum(deep_gaussian[unsure], 1e-12), deep_small[deeper]
        spread = contrast > cfg.cluster_contrast
        valley[unsure] = valleys(features, labels, small, num_classes, cfg.cluster_dims, classes=unsure)[unsure]
    apart = valley < cfg.cluster_valley if cfg.cluster_valley is not None else np.zeros(num_classes, dtype=bool)
    targets = np.flatnonzero(outlier | spread | apart)
    return Bar(np.isin(labels, targets) & small, anomaly, targets, np.flatnonzero(outlier), contrast, axis, valley, split=small)


def bar_by_shift(features, labels: np.ndarray, num_classes: int, clusters: Bar, cfg: PartitionConfig) -> Bar | None:
    """Cover samples (the trigger on images that keep their label, which some attacks add so
    that the poisons' activations do not split off) do split off in their own classes, so the
    clusters name those classes, and may miss the target (CIFAR-10 Adaptive-Patch: airplane,
    deer, dog and frog named, automobile not; 100 % ASR). The trigger moves the covers'
    activations toward the class it was taught to call, the same way in every class: where
    two or more named classes split in one direction (`shared_shift`), the class whose samples
    lie furthest along it, when that stands out from the other classes (MAD anomaly index of
    the classes' means above `cluster_anomaly`), is the target (automobile: 10.1, the next,
    truck, 3.3; Fashion-MNIST Adaptive-Patch 10 % into Sandal, whose covers split off in
    T-shirt/top and Coat: Sandal 4.3, the next 2.3), named if no filter has named it.
    Its share of D_s comes from its samples least far along the shift, where the trigger has
    not moved them (`seeded`, `trust`): its poisons the clusters do not split off lie far
    along it (automobile's 414 places held 83 poisons by loss, 139 from its middle, 1 this way;
    Sandal's 867, 89 by loss and none this way). The other classes that split alike hold the
    covers, images under their own label, so they are no targets (`covers`): the consistency,
    which flags in targets only, flagged 4,535 of CIFAR-10's cover classes' clean samples, and
    the clean model, never trained on them, lost 2 points of ACC.
    None where no two named classes split alike, or where every class is named (all-to-all:
    each class's split holds poisons that carry one trigger)."""
    from ..metrics import mad_anomaly
    from .clustering import shared_shift

    if len(clusters.targets) == num_classes:
        return None
    f = features.double().numpy()
    found = shared_shift(f, labels, clusters.barred, clusters.targets, cfg.cluster_alignment)
    if found is None:
        return None
    shift, alike = found
    along = f @ shift
    anomaly = mad_anomaly(np.bincount(labels, along, num_classes) / np.maximum(np.bincount(labels, minlength=num_classes), 1), 1e-12)
    top = int(np.argmax(anomaly))
    seeded = np.array([top] if anomaly[top] > cfg.cluster_anomaly else [], dtype=np.int64)
    named = np.setdiff1d(seeded, clusters.targets)
    covers = np.setdiff1d(alike, top) if len(seeded) else seeded
    return Bar(np.zeros(len(labels), dtype=bool), anomaly, named, np.array([], dtype=np.int64), trust=-along, seeded=seeded, covers=covers)


def bar_by_pattern(images: np.ndarray, labels: np.ndarray, num_classes: int, cfg: PartitionConfig) -> Bar:
    """A class whose pixels hold two populations along an independent component, one of them
    where the other classes' images seldom are: an additive trigger on part of the class
    (`components`). The carriers are barred; `anomaly` is each class's flatness (minus the
    excess kurtosis of its flattest component). They stand out from no other class: a
    clean-label target's unfitted samples are its own hard images, not poisons."""
    from ..components import pattern_carriers

    kurtosis, carriers = pattern_carriers(images, labels, num_classes, cfg.pattern_dims, cfg.pattern_kurtosis)
    targets = np.flatnonzero(kurtosis < cfg.pattern_kurtosis)
    return Bar(carriers, -kurtosis, targets, np.array([], dtype=np.int64))


def bar_by_stamp(images: np.ndarray, labels: np.ndarray, split: np.ndarray, classes, num_classes: int, cfg: PartitionConfig) -> Bar:
    """Among `classes` (those no other filter names), one whose smaller activation cluster
    (`split`) shares a stamp in its pixels (sanitizer/stamp.py) that the class's images carry
    whole or not at all (its count valley below `stamp_valley`): a pasted trigger. Its carriers
    are barred. The poisons of a source-specific trigger can lie too near the class's own
    images for the clusters' tests and still split off whole (Fashion-MNIST TaCT Pullover ->
    Shirt, one seed in three: 1,738 of 1,800 poisons in a cluster of 1,745, 1.51 times a
    Gaussian's split, valley 0.12; nothing flagged, 98 % ASR): the 8x8 patch is 48 pixel
    values that its 1,800 poisons carry and no clean Shirt does. `anomaly` is minus each
    class's count valley (-1 where its cluster shares no stamp)."""
    from ..stamp import split_stamps

    valley = np.ones(num_classes)
    carriers = np.zeros(len(labels), dtype=bool)
    for c, stamp in split_stamps(images, labels, split, classes, num_classes).items():
        valley[c] = stamp.valley
        if stamp.valley < cfg.stamp_valley:
            carriers |= stamp.carriers
    return Bar(carriers, -valley, np.flatnonzero(valley < cfg.stamp_valley), np.array([], dtype=np.int64))


def image_bars(features, images: np.ndarray, labels: np.ndarray, num_classes: int, cfg: PartitionConfig) -> dict:
    """The bars read from the suspect's activations (`features`, None when no cluster test is
    on) and the pixels, those the params turn on, by name: clusters, shift, pattern, stamp."""
    bars = {}
    if cfg.clusters:
        bars["clusters"] = bar_by_clusters(features, labels, num_classes, cfg)
        if cfg.cluster_alignment is not None and (shift := bar_by_shift(features, labels, num_classes, bars["clusters"], cfg)) is not None:
            bars["shift"] = shift
    if cfg.pattern_kurtosis is not None:
        bars["pattern"] = bar_by_pattern(images, labels, num_classes, cfg)
    if cfg.clusters and cfg.stamp_valley is not None:
        named = [c for bar in bars.values() for c in bar.targets]
        bars["stamp"] = bar_by_stamp(images, labels, bars["clusters"].split, np.setdiff1d(np.arange(num_classes), named), num_classes, cfg)
    return bars


def bar_unfit(loss: np.ndarray, labels: np.ndarray, targets, min_fit: float) -> np.ndarray:
    """In the target classes that stand out (`targets`, see `standout_classes`), the samples
    whose label the suspect gives less than `min_fit`. The class's clean samples are its own
    images, which the suspect fits; a poison it has not learnt yet is another class's image,
    which it does not fit, so the loss-ranked seed would take it first (Fashion-MNIST
    Input-aware: 1,253 of the seed's 1,269 poisons; CIFAR-10 BadNets, whose automobiles only
    the activation clusters single out: 169 poisons at a median p(label) of 0.15 among the
    seed's 516 automobiles). Not when every class is a target (all-to-all), where the unfitted
    samples are every class's hard ones (BadNets all-to-all: 4,184 clean against 283 poisons;
    barring them dropped 11 % of the data)."""
    return np.isin(labels, targets) & (np.exp(-loss) < min_fit)


def standout_classes(bars: dict) -> np.ndarray:
    """Suspected targets that stand out from the other classes by either signal (`Bar.outliers`);
    not those found by their clusters' contrast or valley alone, as every class of an
    all-to-all attack is."""
    outliers = [bar.outliers for bar in bars.values()]
    return np.unique(np.concatenate(outliers)) if outliers else np.array([], dtype=np.int64)


def middle_classes(bars: dict) -> np.ndarray:
    """Classes the purification gap singles out as targets but whose activation clusters do
    not: their poisons are not split off, so those below `max_gap` stay mixed with the class's
    own images, at either end of its trust order. The seed draws a class's share from its
    most trusted end, its highest losses; in an easy target class those are the poisons the
    suspect has only half learnt (Fashion-MNIST Adaptive-Patch 10 % into Sandal: 131 of the
    seed's 264 Sandals), in a hard one the poisons it fits better than the class's own images
    sit at the other end (PhysicalBA 2 % into Coat: median p 0.999). So `partition` takes
    their share from the middle of their order. Poisons in D_s: Adaptive-Patch 131 -> 1,
    PhysicalBA 40 -> 32, Adaptive-Blend 3 % into Bag 15 -> 0, the grid's four such rows 8-15
    -> 0-1. The price is in a hard class: C no longer sees its hardest clean samples and
    rejects more of them (PhysicalBA into Coat: FPR 1.51 -> 2.38 %)."""
    if "gap" not in bars:
        return np.array([], dtype=np.int64)
    return np.setdiff1d(bars["gap"].targets, bars["clusters"].targets if "clusters" in bars else [])


def enhance_epochs(model, images, labels, in_seed: np.ndarray, cfg: EnhanceConfig, desc: str) -> None:
    """Eq. 4: descend on D_r, ascend on D_s, the ascent bounded by `flood` so a batch that is
    already unlearned stops pushing and the loss cannot run off to infinity."""
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(cfg.seed)
    seed_idx = torch.from_numpy(np.flatnonzero(in_seed))
    rest_idx = torch.from_numpy(np.flatnonzero(~in_seed))
    opt = sgd(model, tuning_lr(model, cfg.lr))
    model.train()
    with progress_bar(desc, cfg.epochs * num_batches(len(rest_idx), cfg.batch_size)) as advance:
        for _ in range(cfg.epochs):
            for r in batches(rest_idx, cfg.batch_size, generator):
                s = seed_idx[torch.randint(len(seed_idx), (len(r),), generator=generator)]
                x_r, x_s = to_float(images[r], device), to_float(images[s], device)
                step(opt, descent(model, x_r, labels[r].to(device)) + cfg.ascent_weight * ascent(model, x_s, labels[s].to(device), cfg.flood))
                advance()
    model.eval()


def consistency(enhanced, clean, images, labels) -> np.ndarray:
    """log p_E(y|x) - log p_C(y|x): high when the backdoored model fits a label the clean one rejects."""
    return log_prob_at_label(enhanced, images, labels) - log_prob_at_label(clean, images, labels)


@dataclass
class EnhanceResult:
    enhanced: torch.nn.Module
    joined_round: np.ndarray  # round a sample entered D_s: 0 = seed, -1 = never
    consistency: np.ndarray  # final round's consistency, for every sample
    snapshots: list  # (enhanced, clean) state_dicts after each round


def train_reference(new_model, images, labels, in_seed, train_cfg: TrainConfig, epochs: int | None, desc: str):
    """The clean reference C on D_s, for `epochs` or, when null, the architecture's
    `reference_epochs`: a C too weak to fit clean samples makes every one look inconsistent."""
    idx = torch.from_numpy(np.flatnonzero(in_seed))
    model = new_model()
    if epochs is None:
        epochs = recipe_of(model, "[enhance].clean_epochs").reference_epochs
    return fit(model, images[idx], labels[idx], train_cfg, epochs=epochs, balance="draw", desc=desc)


def enhance(suspect, new_model, images, labels, in_seed, cfg: EnhanceConfig, train_cfg: TrainConfig, barred: np.ndarray | None = None) -> EnhanceResult:
    """Alg. 2 with a clean reference per round (see module doc). `barred` samples never move
    into D_s. `suspect` is not modified."""
    enhanced = new_model()
    enhanced.load_state_dict(suspect.state_dict())
    in_seed = in_seed.copy()
    barred = np.zeros_like(in_seed) if barred is None else barred
    joined = np.where(in_seed, 0, -1)
    snapshots = []
    n = len(labels)
    for round_ in range(1, cfg.rounds + 1):
        clean = train_reference(new_model, images, labels, in_seed, train_cfg, cfg.clean_epochs, f"round {round_}: clean reference")
        enhance_epochs(enhanced, images, labels, in_seed, cfg, f"round {round_}: enhancing")
        c = consistency(enhanced, clean, images, labels)
        snapshots.append((_copy_state(enhanced), _copy_state(clean)))
        if round_ < cfg.rounds:
            rest = np.flatnonzero(~(in_seed | barred))
            move = rest[np.argsort(c[rest], kind="stable")[: int(round(cfg.rate * n))]]
            in_seed[move] = True
            joined[move] = round_
        log(f"round {round_}: D_s holds {in_seed.sum()} of {n} samples")
    if cfg.rounds == 0:
        clean = train_reference(new_model, images, labels, in_seed, train_cfg, cfg.clean_epochs, "clean reference")
        c = consistency(enhanced, clean, images, labels)
    return EnhanceResult(enhanced, joined, c, snapshots)


def _copy_state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def identify(consistency_: np.ndarray, threshold: float, barred: np.ndarray, in_target: np.ndarray | None = None) -> np.ndarray:
    """Suspected poisoned: the enhanced model fits the given label `exp(threshold)` times
    more confidently than the clean reference does, or partition barred the sample from D_s.
    With `in_target`, the consistency counts only there (identify.scope): a clean sample
    the enhanced model fits better than a weak reference is no poison, and outside a target
    class that is all the consistency can find.
    A barred sample was judged part of a target class's poison-like outliers; trusting it for
    the clean model anyway let the few barred poisons whose trigger the clean reference also
    half-accepts (Fashion-MNIST BadNets all-to-all: 60 Dresses with the patch, labelled Coat)
    teach the clean model their backdoor. The relabel step still keeps a barred clean sample
    the clean model confirms."""
    inconsistent = consistency_ > threshold
    if in_target is not None:
        inconsistent &= in_target
    return inconsistent | barred


@METHODS.register("advrbd")
class AdvrBD(Method):
    """Its work happens in its own cached stages (score, partition, enhance, identify);
    detect gathers their results into the method-neutral manifest."""

    name = "advrbd"
    stages = ("score", "partition", "enhance", "identify")
    suspicion = "consistency log p_E(y|x) - log p_C(y|x) of the last round, nats"
    signals = {
        "robustness": "-log10 R (Eq. 3): how little a small adversarial patch moves the suspect's prediction",
        "fit": "log p(y|x) under the suspect, the loss baseline with its sign turned",
        "gap": "purification gap log p_S(y|x) - log p_P(y|x), nats",
    }

    def detect(self, inputs: Inputs) -> Detection:
        from ..manifest import meta_value, read_aligned

        paths, ids = inputs.paths, inputs.data.split.sample_ids
        ident = read_aligned(paths.identify, ["consistency", "suspected", "trigger"], ids)
        scores = read_aligned(paths.scores, ["score", "loss", "gap"], ids)
        signals = {"fit": -scores["loss"].to_numpy(), "gap": scores["gap"].to_numpy()}
        if scores["score"].null_count() == 0:  # R is computed only with score.robustness
            signals["robustness"] = -np.log10(np.clip(scores["score"].to_numpy(), 1e-12, None))
        return Detection(
            suspicion=ident["consistency"].to_numpy(),
            suspected=ident["suspected"].to_numpy(),
            trigger=ident["trigger"].to_numpy(),
            signals=signals,
            # Classes partition's filters suspected as backdoor targets, and by which signal.
            summary={
                "suspected_targets": meta_value(paths.partition, "suspected_targets", default=[]),
                "suspected_by": meta_value(paths.partition, "suspected_by", default={}),
            },
            models={"enhanced": inputs.data.load(paths.enhanced)},
        )
