"""The kernel ridge regression solver and the kernels of the kernel family (condense.kernels)."""
import math

import pytest
import torch

from condense.audit.ntk_mlp import NTKMLP
from condense.errors import CondenseError
from condense.kernels import (KRR_ST_RIDGE, RKIP_RIDGE, ReluNet, Ridge, centred_one_hot, empirical_ntk,
                              feature_kernel, krr_coefficients, krr_predict, relu_kernels, relu_ntk)

NTK_MLP = ReluNet(depth=2, w_std=math.sqrt(2.0), b_std=0.1, readout_w_std=1.0)  # audit.ntk_mlp.NTKMLP's kernel


def relative_error(width: int, x: torch.Tensor, seeds=(0, 1, 2)) -> float:
    """Mean over initialisations of ‖Θ_empirical − Θ_analytic‖_F / ‖Θ_analytic‖_F."""
    analytic = relu_kernels(x, None, NTK_MLP)[1]
    errors = []
    for s in seeds:
        torch.manual_seed(s)
        emp = empirical_ntk(NTKMLP(x[0].numel(), 1, width=width, depth=2), x, x).double()
        errors.append(float((emp - analytic).norm() / analytic.norm()))
    return sum(errors) / len(errors)


def test_analytic_ntk_matches_the_empirical_ntk_of_a_wide_mlp_within_a_width_shrinking_tolerance():
    """Fluctuations of the finite-width NTK are O(1/√width): 16× the width, a quarter of the error (measured
    0.34, 0.16, 0.08 at widths 64, 256, 1024 on 8×8 inputs)."""
    x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    errs = {w: relative_error(w, x) for w in (64, 256, 1024)}
    assert errs[1024] < errs[256] < errs[64], errs
    assert errs[1024] < 0.5 * errs[64] and errs[1024] < 0.15, errs


def test_symmetric_and_cross_kernels_agree_and_are_positive_definite():
    x = torch.randn(20, 30, generator=torch.Generator().manual_seed(1))
    nngp, ntk = relu_kernels(x, None, ReluNet(depth=3, b_std=0.2))
    nngp2, ntk2 = relu_kernels(x, x.clone(), ReluNet(depth=3, b_std=0.2))
    assert torch.allclose(ntk, ntk2, rtol=1e-4) and torch.allclose(nngp, nngp2, rtol=1e-4)
    assert torch.allclose(ntk, ntk.T) and float(torch.linalg.eigvalsh(ntk).min()) > 0
    assert torch.allclose(relu_ntk(x, None, ReluNet(), chunk=7), relu_kernels(x)[1])


def test_one_layer_kernel_matches_the_arc_cosine_formula():
    """Depth 1, no bias, unit variances: NNGP = (1/(2π))·(sin θ + (π − θ) cos θ)·|x||y|/d (Cho & Saul)."""
    x, y = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    nngp = relu_kernels(x, y, ReluNet(depth=1))[0].item()
    theta = math.pi / 4
    assert nngp == pytest.approx((math.sin(theta) + (math.pi - theta) * math.cos(theta)) / (2 * math.pi)
                                 * math.sqrt(2) / 2, rel=1e-9)


@pytest.mark.parametrize("ridge", [KRR_ST_RIDGE, RKIP_RIDGE])
def test_krr_with_the_training_set_as_support_reproduces_the_training_labels(ridge):
    x = torch.randn(40, 64, generator=torch.Generator().manual_seed(2))
    labels = torch.arange(40) % 5
    y = centred_one_hot(labels, 5).float()
    k = relu_ntk(x)
    pred = krr_predict(k, k, y, ridge)
    assert pred.dtype == torch.float32 and torch.equal(pred.argmax(1), labels)
    assert float((pred - y).abs().max()) < 1e-2
    feats = torch.randn(30, 100, generator=torch.Generator().manual_seed(3))
    fk = feature_kernel(feats)
    assert float((krr_predict(fk, fk, y[:30], ridge) - y[:30]).abs().max()) < 1e-2


def test_ridge_rules_are_each_methods_own():
    k = torch.diag(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64))
    assert float(KRR_ST_RIDGE.value(k)) == pytest.approx(1e-6 * 10)
    assert float(RKIP_RIDGE.value(k)) == pytest.approx(1e-5 * 10 / 4)
    k.requires_grad_(True)
    assert not KRR_ST_RIDGE.value(k).requires_grad and RKIP_RIDGE.value(k).requires_grad


def test_solver_is_differentiable_and_survives_duplicate_points():
    """Gradients reach the support images through the kernel and the float64 Cholesky; a duplicated support
    point (singular K) is still solved, and the kernel's arccos is never differentiated at θ = 0."""
    x_t = torch.randn(30, 16, generator=torch.Generator().manual_seed(4))
    x_s = torch.cat([x_t[:3], x_t[:1]]).clone().requires_grad_(True)  # copies of real points, one twice
    y = torch.randn(4, 2, dtype=torch.float64)
    loss = (relu_ntk(x_t, x_s) @ krr_coefficients(relu_ntk(x_s), y, RKIP_RIDGE)).pow(2).sum()
    loss.backward()
    assert torch.isfinite(x_s.grad).all() and float(x_s.grad.abs().sum()) > 0


def test_bad_shapes_and_kernels_are_one_sentence():
    with pytest.raises(CondenseError, match="n×n kernel"):
        krr_coefficients(torch.ones(3, 2), torch.ones(3), Ridge(1e-6))
    with pytest.raises(CondenseError, match="depth"):
        relu_kernels(torch.ones(2, 3), None, ReluNet(depth=0))
    with pytest.raises(CondenseError, match="features"):
        relu_kernels(torch.ones(2, 3), torch.ones(2, 4))
