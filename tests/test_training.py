import pytest
import torch
import torch.nn.functional as F

from conftest import CIFAR10, needs_cifar10
from sanitizer.config import build, TrainConfig
from sanitizer.errors import SanitizerError
from sanitizer.models import RECIPES
from sanitizer.training import augment, class_weights, cosine_lr, fit, new_model, predict, triangle_lr


def test_null_train_values_come_from_the_models_recipe():
    cfg = build(TrainConfig, {"epochs": 7, "seed": 3})
    resolved = cfg.resolved(RECIPES["fast_cnn"])
    assert resolved.epochs == 7 and resolved.seed == 3  # set values win
    assert (resolved.lr, resolved.batch_size, resolved.label_smoothing) == (RECIPES["fast_cnn"].lr, RECIPES["fast_cnn"].batch_size, RECIPES["fast_cnn"].label_smoothing)
    assert build(TrainConfig, {}).resolved(RECIPES["small_cnn"]).lr == RECIPES["small_cnn"].lr


def test_a_model_without_a_recipe_needs_every_train_value():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    x, y = torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1, 0, 1])
    with pytest.raises(SanitizerError, match=r"\[train\] .*lr.* are null .* set them"):
        fit(model, x, y, build(TrainConfig, {"epochs": 1}))
    full = {"epochs": 1, "batch_size": 2, "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0, "augment": False, "label_smoothing": 0.0, "shift": 0, "schedule": "cosine"}
    fit(model, x.float(), y, build(TrainConfig, full))  # no recipe needed when nothing is null


def test_method_sections_fine_tune_at_the_architectures_rate_unless_set():
    from sanitizer.config import PurifyConfig
    from sanitizer.models import build_model
    from sanitizer.purification import purify
    from sanitizer.steps import tuning_lr

    fast, small = build_model("fast_cnn", (3, 32, 32), 10), build_model("small_cnn", (1, 28, 28), 10)
    assert tuning_lr(small, None) == 0.01 and tuning_lr(small, None, slower=10) == 0.001  # the Fashion-MNIST defaults
    assert tuning_lr(fast, None) == RECIPES["fast_cnn"].tune_lr == RECIPES["fast_cnn"].lr / 5
    assert tuning_lr(fast, 0.3) == 0.3  # a value in params.yaml wins
    bare = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    x, y = torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1, 0, 1])
    with pytest.raises(SanitizerError, match="lr is null and this model has no recipe"):
        purify(bare, x, y, build(PurifyConfig, {"epochs": 1, "steps": 1}))


def test_the_clean_reference_trains_the_architectures_reference_epochs_unless_set():
    from sanitizer.config import config
    from sanitizer.methods.advrbd import train_reference
    from sanitizer.training import new_model as make

    torch.manual_seed(0)
    x, y = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8), torch.arange(64) % 10
    seed = torch.ones(64, dtype=torch.bool).numpy()
    train = config("train", {"train": {"batch_size": 16}})
    fresh = lambda: make("small_cnn", (1, 28, 28), 10, seed=0)  # noqa: E731
    weights = lambda epochs: train_reference(fresh, x, y, seed, train, epochs, "C").state_dict()  # noqa: E731
    null, recipe, other = weights(None), weights(RECIPES["small_cnn"].reference_epochs), weights(1)
    assert all(torch.equal(null[k], recipe[k]) for k in null)
    assert not all(torch.equal(null[k], other[k]) for k in null)
    bare = lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))  # noqa: E731
    with pytest.raises(SanitizerError, match=r"\[enhance\].clean_epochs is null and this model has no recipe"):
        train_reference(bare, x, y, seed, train, None, "C")


def test_augment_is_a_per_sample_flip_and_shift():
    torch.manual_seed(0)
    x = torch.rand(64, 2, 6, 7)
    out = augment(x, 2, torch.Generator().manual_seed(0))
    candidates = {flip: F.pad(x.flip(3) if flip else x, (2, 2, 2, 2), mode="reflect") for flip in (False, True)}
    seen = set()
    for i in range(len(x)):
        match = [(flip, oy, ox) for flip, padded in candidates.items() for oy in range(5) for ox in range(5) if torch.equal(out[i], padded[i, :, oy : oy + 6, ox : ox + 7])]
        assert match, f"sample {i} is not a flipped and shifted copy of its input"
        seen.add(match[0])
    assert len(seen) > 10  # samples of one batch get their own flip and shift
    unshifted = augment(x, 0, torch.Generator().manual_seed(1))
    assert all(torch.equal(u, v) or torch.equal(u, v.flip(2)) for u, v in zip(unshifted, x))

def test_fast_cnn_fits_a_tiny_set_deterministically():
    """Two fits from the same seed give identical weights (whitening included), and the
    recipe's label smoothing keeps training confidence below 1."""
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(96, 3, 16, 16, generator=g) * 255).to(torch.uint8)
    y = torch.arange(96) % 3
    x[y == 1, :, :4, :4] = 255  # a learnable cue per class
    x[y == 2, :, -4:, -4:] = 0
    cfg = build(TrainConfig, {"epochs": 30, "batch_size": 32, "augment": False, "lr": 0.2})
    a = fit(new_model("fast_cnn", (3, 16, 16), 3, seed=0), x, y, cfg)
    b = fit(new_model("fast_cnn", (3, 16, 16), 3, seed=0), x, y, cfg)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    with torch.no_grad():
        p = F.softmax(a(x.float() / 255), 1)
    assert (p.argmax(1) == y).float().mean() > 0.9
    assert p.max() < 0.99  # label smoothing 0.2 caps the fitted confidence


def test_class_weights_give_every_present_class_the_same_total():
    y = torch.tensor([0, 0, 0, 2, 2, 2, 2, 2, 2, 3])
    w = class_weights(y, 5)
    totals = torch.bincount(y, weights=w[y].double())
    assert torch.allclose(totals[[0, 2, 3]], torch.full((3,), len(y) / 3, dtype=torch.float64))
    assert w[1] == 0 and w[4] == 0 and len(w) == 5  # absent: no weight, no division by zero
    assert torch.equal(class_weights(torch.arange(12) % 4, 4), torch.ones(4))


def test_loss_balance_lifts_a_depleted_class():
    """Two classes nine to one, told apart only by one faint, noisy pixel: on fresh samples,
    plain training calls the minority on few of its own, the class-weighted loss on many more."""
    g = torch.Generator().manual_seed(0)

    def draw(n):
        y = (torch.arange(n) % 10 == 0).long()
        x = torch.randn(n, 3, 16, 16, generator=g) * 40 + 128
        x[:, :, 8, 8] += 20 * y.view(-1, 1)
        return x.clamp(0, 255).to(torch.uint8), y

    (x, y), (x_new, y_new) = draw(1000), draw(1000)
    cfg = build(TrainConfig, {"epochs": 2, "batch_size": 50, "augment": False, "lr": 0.05})
    called = {}
    for balance in (None, "loss"):
        model = fit(new_model("fast_cnn", (3, 16, 16), 2, seed=0), x, y, cfg, balance=balance)
        called[balance] = (predict(model, x_new).argmax(1)[y_new == 1] == 1).float().mean().item()
    assert called["loss"] > called[None] + 0.2, called
    with pytest.raises(ValueError, match="balance"):
        fit(new_model("fast_cnn", (3, 16, 16), 2, seed=0), x, y, cfg, balance="oversample")


def test_ema_returns_the_moving_average_of_every_step(monkeypatch):
    """With `ema`, fit returns the average of the weights and batch-norm statistics after each
    step (the first step's copied, then decay * average + (1 - decay) * new), not the last."""
    import sanitizer.training as training

    g = torch.Generator().manual_seed(0)
    x = (torch.rand(96, 3, 16, 16, generator=g) * 255).to(torch.uint8)
    y = torch.arange(96) % 3
    cfg = build(TrainConfig, {"epochs": 1, "batch_size": 32, "augment": False, "lr": 0.2})
    real_step = training.step
    model = new_model("fast_cnn", (3, 16, 16), 3, seed=0)
    snapshots = []
    monkeypatch.setattr(training, "step", lambda opt, loss: (real_step(opt, loss), snapshots.append({k: v.clone() for k, v in model.state_dict().items()})))
    averaged = fit(model, x, y, cfg, ema=0.75)
    assert len(snapshots) == 3
    for name, value in averaged.state_dict().items():
        if not value.is_floating_point():
            continue
        expected = snapshots[0][name]
        for later in snapshots[1:]:
            expected = 0.75 * expected + 0.25 * later[name]
        assert torch.allclose(value, expected, atol=1e-6), name
    last = snapshots[-1]
    assert any(not torch.allclose(v, last[k]) for k, v in averaged.state_dict().items() if v.is_floating_point())


def test_learning_rate_schedules():
    total = 100
    tri = [triangle_lr(1.0, k, total) for k in range(total)]
    assert tri.index(max(tri)) == 19 and max(tri) == 1.0  # peak after the 20 % warm-up
    assert all(a < b for a, b in zip(tri[:19], tri[1:20])) and all(a > b for a, b in zip(tri[20:], tri[21:]))
    assert abs(tri[-1] - (0.05 + 0.95 / 80)) < 1e-12  # ends just above 5 % of the base
    cos = [cosine_lr(1.0, k, total) for k in range(total)]
    assert max(cos) == 1.0 and cos.index(1.0) == 4 and cos[-1] < 0.001  # 5 % warm-up


@pytest.mark.slow
@needs_cifar10
def test_fast_cnn_learns_real_cifar10():
    """Real CIFAR-10 (a stratified 5,000-image subset, 1,000 test images): fast_cnn with its
    recipe, 4 epochs, is far above chance; a broken whitening or recipe is not."""
    from sanitizer.config import DataConfig
    from sanitizer.datasets import load_dataset
    from sanitizer.training import accuracy, as_tensor

    raw = load_dataset(DataConfig(source="cifar10", path=str(CIFAR10), limit=5000))
    train, test = raw.splits == "train", raw.splits == "test"
    x, y = as_tensor(raw.images[train]), as_tensor(raw.labels[train])
    model = fit(new_model("fast_cnn", (3, 32, 32), 10, seed=0), x, y, build(TrainConfig, {"epochs": 4}))
    acc = accuracy(model, as_tensor(raw.images[test]), as_tensor(raw.labels[test]))
    assert acc > 0.30, acc  # 42.4 % measured; chance is 10 %
