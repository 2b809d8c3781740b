import pytest
import torch
import torch.nn.functional as F

from sanitizer.models import MODELS, MaxPool2x2, build_model, resolve_arch


@pytest.mark.parametrize(
    "arch,shape,k,width",
    [("small_cnn", (1, 28, 28), 10, 128), ("resnet18", (3, 32, 32), 7, 512), ("small_cnn", (3, 16, 16), 4, 128), ("fast_cnn", (3, 32, 32), 10, 96), ("fast_cnn", (1, 20, 24), 3, 96)],
)
def test_logits_and_embed_shapes(arch, shape, k, width):
    torch.manual_seed(0)
    model = build_model(arch, shape, k).eval()
    x = torch.rand(3, *shape)
    with torch.no_grad():
        logits = model(x)
        emb = model.embed(x)
    assert logits.shape == (3, k)
    assert emb.shape == (3, width)
    assert torch.isfinite(logits).all()
    # forward is the head applied to the embedding
    with torch.no_grad():
        torch.testing.assert_close(model.head(emb), logits)
    # per-sample in eval mode: a sample's logits do not depend on its batch mates
    with torch.no_grad():
        torch.testing.assert_close(model(x[:1]), logits[:1], rtol=1e-4, atol=1e-5)


def test_model_trains_gradients_flow():
    model = build_model("small_cnn", (1, 8, 8), 2)
    x = torch.rand(4, 1, 8, 8)
    loss = torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 0, 1]))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_resolve_auto():
    assert resolve_arch("auto", (1, 28, 28)) == "small_cnn"
    assert resolve_arch("auto", (1, 8, 8)) == "small_cnn"
    for shape in [(3, 32, 32), (3, 28, 28), (1, 32, 32)]:
        assert resolve_arch("auto", shape, cuda=True) == "resnet18"
        assert resolve_arch("auto", shape, cuda=False) == "fast_cnn"
    assert resolve_arch("auto", (3, 32, 32)) == ("resnet18" if torch.cuda.is_available() else "fast_cnn")


def test_patch_whitening_decorrelates_patches():
    """After prepare, the stem's responses to 2x2 patches of the images it was fitted on have
    identity covariance (up to the eps regulariser), and a second prepare changes nothing."""
    from sanitizer.models import PatchWhitening

    torch.manual_seed(0)
    mix = torch.tensor([[1.0, 0.8, 0.6], [0.0, 0.5, 0.4], [0.0, 0.0, 0.3]])
    x = torch.einsum("dc,nchw->ndhw", mix, torch.rand(64, 3, 12, 12)) + 0.2 * torch.rand(64, 1, 12, 12)
    stem = PatchWhitening(3, eps=0.0)
    stem.fit(x)
    with torch.no_grad():
        out = stem(x)[:, :12]  # the first half; the rest are their negatives
    cov = torch.cov(out.permute(1, 0, 2, 3).reshape(12, -1).double())
    torch.testing.assert_close(cov, torch.eye(12, dtype=torch.float64), atol=1e-3, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(stem(x)[:, 12:], -stem(x)[:, :12])  # bias starts at 0
    before = stem.weight.clone()
    stem.fit(torch.rand(8, 3, 12, 12))
    assert torch.equal(stem.weight, before)


def test_fast_cnn_state_keeps_its_whitening():
    """The whitening is part of the saved weights, so a loaded model is not re-whitened."""
    torch.manual_seed(0)
    a = build_model("fast_cnn", (3, 16, 16), 4)
    a.prepare(torch.rand(20, 3, 16, 16))
    b = build_model("fast_cnn", (3, 16, 16), 4)
    b.load_state_dict(a.state_dict())
    b.prepare(torch.rand(20, 3, 16, 16))
    assert torch.equal(a.features[0].weight, b.features[0].weight) and bool(b.features[0].ready)
    assert not any(p is a.features[0].weight for p in a.parameters())  # frozen: no optimiser touches it


def test_every_model_has_a_recipe():
    from sanitizer.models import RECIPES

    assert set(RECIPES) == set(MODELS.names())


def test_resolve_explicit():
    assert resolve_arch("resnet18", (1, 28, 28)) == "resnet18"
    assert resolve_arch("small_cnn", (3, 32, 32)) == "small_cnn"
    assert set(MODELS.names()) >= {"small_cnn", "fast_cnn", "resnet18"}


def test_unknown_arch_raises():
    with pytest.raises(ValueError, match="vgg"):
        resolve_arch("vgg", (3, 32, 32))
    with pytest.raises(ValueError, match="vgg"):
        build_model("vgg", (3, 32, 32), 10)


def test_auto_builds_matching_model():
    m = build_model("auto", (1, 28, 28), 10)
    assert m.head.in_features == 128
    m = build_model("auto", (3, 32, 32), 10)
    assert m.head.in_features == (512 if torch.cuda.is_available() else 96)


@pytest.mark.parametrize("shape", [(2, 3, 6, 6), (1, 2, 7, 5)])
def test_max_pool_2x2_is_max_pool2d_with_and_without_autograd(shape):
    torch.manual_seed(0)
    x = torch.randint(0, 3, shape).float()  # a window of four values from three: ties in most
    with torch.no_grad():
        assert torch.equal(MaxPool2x2()(x), F.max_pool2d(x, 2))
    ours, theirs = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out = MaxPool2x2()(ours)
    grad = torch.randn_like(out)
    out.backward(grad)
    F.max_pool2d(theirs, 2).backward(grad)
    assert torch.equal(ours.grad, theirs.grad)  # a tie's gradient goes to its window's first maximum
