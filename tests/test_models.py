"""Model registry and architectures: shapes, official structure, errors, torch.func compatibility."""
import pytest
import torch
import torch.nn as nn
from torch.func import functional_call, stack_module_state, vmap

from condense.errors import CondenseError
from condense.models import create_model, has_batchnorm, list_models, register_model
from condense.models import registry
from condense.models.layers import AvgPool2x2

SHAPES = [(1, 28, 28), (3, 32, 32)]
# Families that take a `width` option; shrink them so the full-registry sweep stays fast.
SMALL_WIDTH = {"ConvNet": 16, "MLP": 16, "VGG11": 8, "ResNet18": 8}


def small(name, shape, num_classes=10, **kw):
    family = next((f for f in SMALL_WIDTH if name.startswith(f)), None)
    if family and not name.startswith("ConvNetW"):  # W-variants exist to set the width themselves
        kw.setdefault("width", SMALL_WIDTH[family])
    return create_model(name, shape[0], num_classes, shape[1:], **kw)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", list_models())
def test_every_model_gives_logits_and_embedding(name, shape):
    torch.manual_seed(0)
    net = small(name, shape, num_classes=7)
    x = torch.randn(2, *shape)
    assert net(x).shape == (2, 7)
    assert net.embed(x).shape == (2, net.feature_dim)
    assert isinstance(net.feature_dim, int)


def test_registry_contains_the_required_names_sorted():
    names = list_models()
    assert names == sorted(names)
    for required in ["ConvNet", "ConvNetD1", "ConvNetD4", "ConvNetD5", "ConvNetBN", "ConvNetLN", "ConvNetNN",
                     "ConvNetAP", "ConvNetMP", "ConvNetW32", "ConvNetW64", "ConvNetSigmoid", "ConvNetLeakyReLU",
                     "MLP", "LeNet", "AlexNet", "VGG11", "VGG11BN", "ResNet18", "ResNet18BN", "ResNet18BN_AP"]:
        assert required in names


@pytest.mark.parametrize("name,shape,dim", [
    ("ConvNet", (3, 32, 32), 128 * 4 * 4),
    ("ConvNet", (1, 28, 28), 128 * 4 * 4),  # 28px is padded to 32 in the first conv, as official
    ("ConvNet", (1, 32, 32), 128 * 4 * 4),
    ("ConvNetD4", (3, 64, 64), 128 * 4 * 4),
    ("ConvNetNP", (1, 8, 8), 128 * 8 * 8),
    ("MLP", (1, 28, 28), 128),
    ("LeNet", (1, 28, 28), 84),
    ("AlexNet", (1, 28, 28), 192 * 4 * 4),
    ("AlexNet", (3, 32, 32), 192 * 4 * 4),
    ("VGG11", (3, 32, 32), 512),
    ("ResNet18", (1, 28, 28), 512),
    ("ResNet18BN_AP", (1, 28, 28), 512 * 3 * 3),
    ("ResNet18BN_AP", (3, 32, 32), 512 * 4 * 4),
])
def test_default_feature_dims_match_official(name, shape, dim):
    assert create_model(name, shape[0], 10, shape[1:]).feature_dim == dim


def test_convnet_structure_is_official():
    net = create_model("ConvNet", 1, 10, (28, 28))
    assert len(net.blocks) == 3
    first = net.blocks[0]
    assert first.conv.padding == (3, 3) and net.blocks[1].conv.padding == (1, 1)
    for block in net.blocks:
        assert block.conv.kernel_size == (3, 3) and block.conv.out_channels == 128
        assert isinstance(block.norm, nn.GroupNorm)
        assert block.norm.num_groups == block.norm.num_channels == 128 and block.norm.affine
        assert isinstance(block.act, nn.ReLU) and isinstance(block.pool, AvgPool2x2)
    assert net.classifier.in_features == 2048
    layer = create_model("ConvNetLN", 1, 10, (28, 28), width=8)
    assert [tuple(b.norm.normalized_shape) for b in layer.blocks] == [(8, 32, 32), (8, 16, 16), (8, 8, 8)]
    assert isinstance(create_model("ConvNetBN", 3, 10, (32, 32)).blocks[0].norm, nn.BatchNorm2d)
    assert isinstance(create_model("ConvNetMP", 3, 10, (32, 32)).blocks[0].pool, nn.MaxPool2d)
    assert isinstance(create_model("ConvNetNN", 3, 10, (32, 32)).blocks[0].norm, nn.Identity)


def test_forward_with_activations_returns_each_activation_and_the_embedding():
    torch.manual_seed(0)
    net = create_model("ConvNet", 1, 10, (28, 28), width=8)
    hooked = []  # what DataDAM's forward hooks on the ReLUs would see
    for m in net.modules():
        if isinstance(m, nn.ReLU):
            m.register_forward_hook(lambda mod, inp, out: hooked.append(out))
    x = torch.randn(2, 1, 28, 28)
    acts, emb = net.forward_with_activations(x)
    assert [a.shape for a in acts] == [(2, 8, 32, 32), (2, 8, 16, 16), (2, 8, 8, 8)]
    assert len(hooked) == 3 and all(torch.equal(a, h) for a, h in zip(acts, hooked))
    assert torch.allclose(emb, net.embed(x))
    assert torch.allclose(net.classifier(emb), net(x))


def test_small_inputs_work_and_too_small_inputs_name_the_minimum():
    assert create_model("ConvNet", 1, 10, (8, 8), width=4).feature_dim == 4  # sklearn digits: 8 → 1
    cases = [("ConvNetD4", (8, 8), "16×16"), ("ConvNet", (4, 4), "8×8"), ("VGG11", (30, 30), "32×32"),
             ("LeNet", (12, 12), "16×16"), ("AlexNet", (7, 7), "8×8"), ("ResNet18BN_AP", (6, 6), "8×8")]
    for name, size, minimum in cases:
        with pytest.raises(CondenseError, match=minimum):
            create_model(name, 1, 10, size)


def test_bad_names_and_options_raise_one_sentence():
    with pytest.raises(CondenseError, match=r"^Unknown model 'Nope'; choose one of: AlexNet, "):
        create_model("Nope", 3, 10, (32, 32))
    with pytest.raises(CondenseError, match="no option 'depth'"):
        create_model("MLP", 3, 10, (32, 32), depth=2)
    with pytest.raises(CondenseError, match="norm 'weird'"):
        create_model("ConvNet", 3, 10, (32, 32), norm="weird")
    with pytest.raises(CondenseError, match="norm 'layer'"):  # needs per-layer sizes; ConvNet only
        create_model("VGG11", 3, 10, (32, 32), norm="layer")
    with pytest.raises(CondenseError, match="width"):
        create_model("ConvNet", 3, 10, (32, 32), width=0)
    with pytest.raises(CondenseError, match="image_size"):
        create_model("ConvNet", 3, 10, (32,))


def test_register_model_accepts_a_factory_with_preset_and_overrides_win(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # keep the real registry clean

    @register_model("TinyNarrow", hidden=3)
    @register_model("TinyWide", hidden=9)
    def tiny(channels, num_classes, image_size, hidden=5):
        net = nn.Sequential(nn.Flatten(), nn.Linear(channels * image_size[0] * image_size[1], hidden))
        net.hidden = hidden
        return net

    assert {"TinyNarrow", "TinyWide"} <= set(list_models())
    assert create_model("TinyNarrow", 1, 2, (4, 4)).hidden == 3
    assert create_model("TinyWide", 1, 2, (4, 4)).hidden == 9
    assert create_model("TinyWide", 1, 2, (4, 4), hidden=1).hidden == 1
    with pytest.raises(CondenseError):
        create_model("TinyWide", 1, 2, (4, 4), depth=1)


def test_has_batchnorm():
    for name in ["ConvNetBN", "AlexNetBN", "VGG11BN", "ResNet18BN", "ResNet18BN_AP"]:
        assert has_batchnorm(small(name, (3, 32, 32)))
    for name in ["ConvNet", "ConvNetLN", "MLP", "LeNet", "AlexNet", "VGG11", "ResNet18", "ResNet18_AP"]:
        assert not has_batchnorm(small(name, (3, 32, 32)))


def test_no_inplace_activations_anywhere():
    for name in list_models():
        net = small(name, (3, 32, 32))
        assert not any(getattr(m, "inplace", False) for m in net.modules()), name


@pytest.mark.parametrize("name", ["ConvNet", "ConvNetBN", "ConvNetLN", "MLP", "LeNet", "AlexNet", "VGG11",
                                  "ResNet18", "ResNet18BN_AP"])
def test_functional_call_matches_the_module(name):
    torch.manual_seed(0)
    net = small(name, (3, 32, 32))
    x = torch.randn(4, 3, 32, 32)
    state = {k: v.clone() for k, v in {**dict(net.named_parameters()), **dict(net.named_buffers())}.items()}
    expected = net(x)
    assert torch.allclose(functional_call(net, state, (x,)), expected, atol=1e-5)
    assert torch.allclose(functional_call(net, state, (x,), {}, strict=True), expected, atol=1e-5)


@pytest.mark.parametrize("name,shape", [("ConvNet", (1, 28, 28)), ("MLP", (3, 32, 32)), ("ResNet18", (3, 32, 32))])
def test_vmap_over_stacked_models_matches_each_model(name, shape):
    torch.manual_seed(0)
    nets = [small(name, shape) for _ in range(3)]
    params, buffers = stack_module_state(nets)
    base = small(name, shape).to("meta")

    def run(p, b, x):
        return functional_call(base, (p, b), (x,))

    x = torch.randn(3, 2, *shape)  # a different batch per model
    out = vmap(run)(params, buffers, x)
    for i, net in enumerate(nets):
        assert torch.allclose(out[i], net(x[i]), atol=1e-5)
    shared = vmap(run, in_dims=(0, 0, None))(params, buffers, x[0])  # the same batch for every model
    assert torch.allclose(shared[1], nets[1](x[0]), atol=1e-5)


@pytest.mark.parametrize("name", ["ConvNet", "ConvNetLN", "ConvNetMP", "ConvNetBN"])
def test_double_backward_through_gradient_matching(name):
    """Gradient matching differentiates a parameter gradient w.r.t. the synthetic images."""
    torch.manual_seed(0)
    net = create_model(name, 1, 3, (28, 28), width=8)
    params = [p for p in net.parameters()]
    real_x, y = torch.randn(6, 1, 28, 28), torch.tensor([0, 1, 2, 0, 1, 2])
    syn_x = torch.randn(6, 1, 28, 28, requires_grad=True)
    loss = nn.functional.cross_entropy
    g_real = [g.detach() for g in torch.autograd.grad(loss(net(real_x), y), params)]
    g_syn = torch.autograd.grad(loss(net(syn_x), y), params, create_graph=True)
    match = sum(((a - b) ** 2).sum() for a, b in zip(g_syn, g_real))
    (img_grad,) = torch.autograd.grad(match, syn_x)
    assert torch.isfinite(img_grad).all() and img_grad.abs().sum() > 0


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (2, 3, 7, 9), (1, 1, 5, 4)])
def test_fast_avg_pool_equals_avg_pool2d(shape):
    x = torch.randn(*shape, requires_grad=True)
    ours, ref = AvgPool2x2()(x), torch.nn.functional.avg_pool2d(x, 2)
    g_ours, = torch.autograd.grad(ours.square().sum(), x)
    g_ref, = torch.autograd.grad(ref.square().sum(), x)
    assert torch.allclose(ours, ref, atol=1e-6) and torch.allclose(g_ours, g_ref, atol=1e-6)
