import pytest
import torch

from sanitizer.models import MODELS, build_model, resolve_arch


@pytest.mark.parametrize(
    "arch,shape,k,width",
    [("small_cnn", (1, 28, 28), 10, 128), ("resnet18", (3, 32, 32), 7, 512), ("small_cnn", (3, 16, 16), 4, 128)],
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
    assert resolve_arch("auto", (3, 32, 32)) == "resnet18"
    assert resolve_arch("auto", (3, 28, 28)) == "resnet18"
    assert resolve_arch("auto", (1, 32, 32)) == "resnet18"


def test_resolve_explicit():
    assert resolve_arch("resnet18", (1, 28, 28)) == "resnet18"
    assert resolve_arch("small_cnn", (3, 32, 32)) == "small_cnn"
    assert set(MODELS.names()) >= {"small_cnn", "resnet18"}


def test_unknown_arch_raises():
    with pytest.raises(ValueError, match="vgg"):
        resolve_arch("vgg", (3, 32, 32))
    with pytest.raises(ValueError, match="vgg"):
        build_model("vgg", (3, 32, 32), 10)


def test_auto_builds_matching_model():
    m = build_model("auto", (1, 28, 28), 10)
    assert m.head.in_features == 128
    m = build_model("auto", (3, 32, 32), 10)
    assert m.head.in_features == 512
