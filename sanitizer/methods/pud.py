"""PUD, progressive unified defense (Mu et al., TPAMI 2024): PBE's progressive purification,
with a target class inferred first, a feature-space filter inside it, unlearning of the most
suspicious samples and a mean-teacher phase.

1. Target inference. The paper's test: untargeted adversarial examples of a backdoored model
   land in the target class far more often than in any other (the backdoor is the nearest way
   out of every class); a class whose share of the landings is an outlier among classes (MAD
   anomaly index above `target_anomaly`) is the target. On our suspects that premise fails
   (Fashion-MNIST: Shirt, every model's natural confusion, takes 19-29 % of the landings on
   every row, the true target 1.5-4 %; CIFAR-10 fast_cnn: frog), so the class as a whole is
   looked at first, with AdvrBD's partition tests (`feature_target`): a dirty-label target
   holds two populations, its own images and the poisons, in the suspect's activations or in
   its pixels. The landings decide only where those tests name no class. "none" where neither
   names one, or where most classes are named (all-to-all: no one target).
2. Feature filter (SPECTRE, Hayase et al. 2021) on the target class: its penultimate features,
   projected on their top principal directions, are whitened with a robust estimate of the
   clean part's mean and covariance; then the QUantum Entropy score
       tau(z) = z' Q z / tr Q,  Q = exp(alpha (S - I) / (||S|| - 1)),  S = cov of whitened z,
   is high along the directions where the class has more variance than its clean part: the
   poisons. Samples above the clean part's 99th percentile are kept out of every clean subset.
3. Five progressive rounds as in PBE (eps 6/255, the last 4/255; subsets 5 % -> 20/40/70/80 %),
   scored by agreement minus 0.5 where the two models' predicted labels differ. From round 2
   on, the lowest-scored 1 % is unlearnt: CE(subset) - 0.003 CE(unlearnt, floored) plus a small
   L1 pull toward the suspect's weights, so unlearning cannot drag the model far.
4. A mean teacher: a few epochs on the final subset, with a teacher that is the EMA (0.99) of
   the student and whose soft predictions the student also matches. The teacher is the
   purified model.

Suspected: the samples the feature filter kept out (SPECTRE's own verdict), and those PBE's
rule flags (the suspect fits the given label, the purified model does not). Purification alone
leaves part of the backdoor (Fashion-MNIST BadNets: 43 % ASR, 44 % of the poisons flagged by
PBE's rule), while the QUE score ranks the poisons at AUROC 0.9998. The target, the test that
named it and the filter's count go to the summary."""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from ..metrics import mad_anomaly
from ..progress import log, progress_bar
from ..steps import adversarial, ascent, batches, ema_update, num_batches, sgd, step, tuning_lr
from ..training import predict, to_float
from .base import METHODS, Detection, Inputs, Method
from .pbe import adversarial_batches, agreement, fine_tune, purified_flags, random_subset, top_share


def landing_shares(suspect, images, labels, num_classes: int, cfg, generator) -> tuple[np.ndarray, int]:
    """Per class, the share of successful untargeted adversarial examples (of `target_samples`
    random train samples) the suspect puts in it; and how many succeeded."""
    device = next(suspect.parameters()).device
    pick = torch.randperm(len(images), generator=generator)[: cfg.target_samples]
    counts = torch.zeros(num_classes, dtype=torch.long)
    suspect.eval()
    with progress_bar("PUD: inferring the target", len(pick)) as advance:
        for start in range(0, len(pick), 512):
            idx = pick[start : start + 512]
            x, y = to_float(images[idx], device), labels[idx].to(device)
            x_adv = adversarial(suspect, x, y, cfg.eps, cfg.steps, generator)
            with torch.no_grad():
                landed = suspect(x_adv).argmax(1).cpu()
            counts += torch.bincount(landed[landed != labels[idx]], minlength=num_classes)
            advance(len(idx))
    moved = int(counts.sum())
    return (counts.double() / max(moved, 1)).numpy(), moved


def landing_target(shares: np.ndarray, moved: int, threshold: float) -> tuple[int | None, np.ndarray]:
    """The target class (or None) and every class's anomaly index. The MAD is floored at the
    binomial noise of the median share, so classes with almost no landings do not divide by 0."""
    median = np.median(shares)
    anomaly = mad_anomaly(shares, np.sqrt(max(median, 1 / max(moved, 1)) / max(moved, 1)))
    top = int(np.argmax(anomaly))
    return (top if anomaly[top] > threshold else None), anomaly


TESTS = {"clusters": "activation clusters", "pattern": "pixel pattern", "stamp": "pixel stamp"}  # how the summary names them


def feature_target(features, images: np.ndarray, labels: np.ndarray, num_classes: int, part) -> tuple[int | None, list[int], str]:
    """The target by partition's tests (`part`: its params section), the classes they name, and
    which test decided. The shift filter names one class when it finds one (the named classes
    split toward it: theirs are cover samples). Otherwise, of the classes the activation
    clusters or the pixel pattern name, the one whose barred second population is the largest
    share of it: a cover class's split holds its share of the covers (Fashion-MNIST
    Adaptive-Patch: Sneaker 1 %), the target's the poisons (Trouser 36 %)."""
    from .advrbd import image_bars

    bars = image_bars(features, images, labels, num_classes, part)
    shift = bars.pop("shift", None)
    if shift is not None and len(shift.seeded):
        return int(shift.seeded[0]), [int(shift.seeded[0])], "shift"
    named = sorted({int(c) for bar in bars.values() for c in bar.targets})
    if not named or 2 * len(named) > num_classes:
        return None, named, ""
    barred = np.any([bar.barred for bar in bars.values()], axis=0)
    second = np.bincount(labels[barred], minlength=num_classes) / np.maximum(np.bincount(labels, minlength=num_classes), 1)
    target = max(named, key=lambda c: second[c])
    return target, named, next(TESTS[by] for by, bar in bars.items() if target in bar.targets)


def robust_estimate(z: torch.Tensor, iterations: int = 20) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean and covariance of the cleanest half of `z`, so up to half the rows may be poisons
    without moving the estimate; also returns that half. Minimum-covariance-determinant
    concentration steps (refit on the half closest to the current fit until it settles),
    started from the half nearest the coordinate-wise median: a start from all rows can settle
    on a tight cluster of poisons, whose covariance is the smallest of all."""
    n, d = z.shape
    h = min(n, (n + d + 1) // 2)
    keep = torch.argsort(((z - z.median(0).values) ** 2).sum(1), stable=True)[:h].sort().values
    def fit(rows):
        return z[rows].mean(0), torch.cov(z[rows].T).reshape(d, d) + 1e-6 * torch.eye(d, dtype=z.dtype)

    for _ in range(iterations):
        mu, cov = fit(keep)
        dist = ((z - mu) @ torch.linalg.inv(cov) * (z - mu)).sum(1)
        new = torch.argsort(dist, stable=True)[:h].sort().values
        if torch.equal(new, keep):
            return mu, cov, keep
        keep = new
    return (*fit(keep), keep)  # the estimate of the half returned, also when it did not settle


def que_scores(features: torch.Tensor, dims: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """SPECTRE's QUE score of every row, and the robust (clean) half's indices."""
    x = features.double()
    x = x - x.mean(0)
    _, _, vt = torch.linalg.svd(x, full_matrices=False)
    proj = x @ vt[: min(dims, vt.shape[0])].T
    mu, cov, keep = robust_estimate(proj)
    vals, vecs = torch.linalg.eigh(cov)
    z = (proj - mu) @ vecs @ torch.diag(vals.clamp_min(1e-12).rsqrt()) @ vecs.T
    s = z.T @ z / len(z)
    lam, v = torch.linalg.eigh(s)
    spread = lam.max() - 1
    weights = torch.exp(alpha * (lam - 1) / spread) if spread > 1e-9 else torch.ones_like(lam)
    q = v @ torch.diag(weights) @ v.T
    tau = ((z @ q) * z).sum(1) / torch.trace(q)
    return tau.numpy(), keep.numpy()


def feature_filter(features, labels, target: int, cfg) -> tuple[np.ndarray, np.ndarray]:
    """QUE score of every train sample (0 outside the target class) and the samples barred from
    the clean subsets: target-class samples above the robust half's 99th percentile."""
    members = torch.from_numpy(np.flatnonzero(labels.numpy() == target))
    tau, keep = que_scores(features[members], cfg.feature_dims, cfg.que_alpha)
    score = np.zeros(len(labels))
    score[members.numpy()] = tau
    barred = np.zeros(len(labels), dtype=bool)
    barred[members.numpy()] = tau > np.quantile(tau[keep], 0.99)
    return score, barred


def pud_score(suspect_logits: torch.Tensor, logits: torch.Tensor) -> np.ndarray:
    """PBE's agreement, minus 0.5 where the two models predict different labels: high = clean."""
    return agreement(suspect_logits, logits) - 0.5 * (suspect_logits.argmax(1) != logits.argmax(1)).numpy()


def unlearning(suspect, images, labels, forget: torch.Tensor, cfg, generator):
    """The extra loss of a round: unlearn a random batch of `forget` (floored ascent), and an
    L1 pull toward the suspect's weights."""
    anchor = [p.detach().clone() for p in suspect.parameters()]

    def extra(model):
        device = anchor[0].device
        idx = forget[torch.randint(len(forget), (min(cfg.batch_size, len(forget)),), generator=generator)]
        forget_loss = ascent(model, to_float(images[idx], device), labels[idx].to(device), cfg.unlearn_floor)
        pull = sum((p - a).abs().sum() for p, a in zip(model.parameters(), anchor))
        return cfg.unlearn_weight * forget_loss + cfg.l1 * pull

    return extra


def mean_teacher(model, images, labels, subset: torch.Tensor, cfg, generator):
    """The student keeps fitting the subset and matches the teacher's soft predictions; the
    teacher follows the student as an EMA. Returns the teacher."""
    teacher = copy.deepcopy(model).eval()
    device = next(model.parameters()).device
    opt = sgd(model, tuning_lr(model, cfg.lr, slower=10))
    model.train()
    with progress_bar("PUD: mean teacher", cfg.teacher_epochs * num_batches(len(subset), cfg.batch_size)) as advance:
        for _ in range(cfg.teacher_epochs):
            for idx in batches(subset, cfg.batch_size, generator):
                x, y = to_float(images[idx], device), labels[idx].to(device)
                with torch.no_grad():
                    soft = F.softmax(teacher(x), 1)
                logits = model(x)
                step(opt, F.cross_entropy(logits, y) + F.mse_loss(F.softmax(logits, 1), soft))
                ema_update(teacher, model, cfg.ema)
                advance()
    model.eval()
    return teacher


def infer_target(suspect, features, images, pixels, labels, classes: list[str], cfg, part, generator) -> tuple[int | None, dict]:
    """The target class (or None) and what the summary reports about it."""
    shares, moved = landing_shares(suspect, images, labels, len(classes), cfg, generator)
    by_landing, anomaly = landing_target(shares, moved, cfg.target_anomaly)
    top = int(np.argmax(anomaly))
    target, named, by = feature_target(features, pixels, labels.numpy(), len(classes), part)
    if target is None and not named and by_landing is not None:
        target, by = by_landing, "landings"
    found = f"by its {by}" if target is not None else f"(partition's tests name {', '.join(classes[c] for c in named)})" if named else "(partition's tests name no class)"
    log(f"PUD: inferred target {classes[target] if target is not None else 'none'} {found}; landings' highest anomaly index {anomaly[top]:.1f}, {classes[top]}")
    return target, {
        "target": classes[target] if target is not None else "none",
        "target_by": by or "none",
        "named_classes": [classes[c] for c in named],
        "target_anomaly": float(anomaly[top]),
        "landing_share": {c: float(s) for c, s in zip(classes, shares)},
    }


def pud(suspect, images, pixels, labels, classes: list[str], cfg, part):
    generator = torch.Generator().manual_seed(cfg.seed)
    features = predict(suspect, images, desc="suspect features", features=True)
    target, summary = infer_target(suspect, features, images, pixels, labels, classes, cfg, part, generator)
    que, barred = np.zeros(len(images)), np.zeros(len(images), dtype=bool)
    if target is not None:
        que, barred = feature_filter(features, labels, target, cfg)
        log(f"PUD: feature filter keeps {int(barred.sum())} samples of {classes[target]} out of the clean subsets")
    model = copy.deepcopy(suspect)
    suspect_logits = predict(suspect, images, desc="suspect's logits")
    subset = random_subset(len(images), cfg.start, generator, eligible=~barred)
    forget = None
    rounds = (*cfg.schedule, None)
    for r, share in enumerate(rounds):
        eps = cfg.last_eps if r == len(rounds) - 1 else cfg.eps
        n_adv = adversarial_batches(r, cfg.adversarial_share, len(subset), cfg.batch_size)
        extra = unlearning(suspect, images, labels, forget, cfg, generator) if forget is not None and cfg.unlearn > 0 else None
        fine_tune(model, images, labels, subset, cfg, eps, n_adv, generator, f"PUD round {r + 1}/{len(rounds)} on {len(subset)} samples", extra)
        score = pud_score(suspect_logits, predict(model, images, desc="agreement"))
        if share is not None:
            subset = top_share(np.where(barred, -np.inf, score), share)
        forget = top_share(-score, cfg.unlearn)
    purified = mean_teacher(model, images, labels, subset, cfg, generator) if cfg.teacher_epochs else model
    logits = predict(purified, images, desc="agreement")
    summary["filtered"] = int(barred.sum())
    return purified, suspect_logits, logits, que, barred, summary


@METHODS.register("pud")
class PUD(Method):
    name = "pud"
    section = "pud"
    reads = ("partition",)  # its target tests, the same as AdvrBD's
    suspicion = "0.5 - 0.5 cos of the suspect's and the purified model's logits, plus 0.5 where their labels differ"
    signals = {"que": "SPECTRE's QUE score in the inferred target class (0 elsewhere)"}

    def detect(self, inputs: Inputs) -> Detection:
        data, y = inputs.data, inputs.data.y
        purified, suspect_logits, logits, que, barred, summary = pud(inputs.suspect, data.x, data.split.images, y, data.store.classes, inputs.cfg, inputs.sections["partition"])
        return Detection(
            suspicion=0.5 - pud_score(suspect_logits, logits),
            suspected=barred | purified_flags(suspect_logits, logits, y),
            signals={"que": que},
            summary=summary,
            models={"purified": purified},
        )
