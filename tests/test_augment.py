import pytest
import torch

from condense.augment import (DEFAULT_STRATEGY, DSA, FAMILIES, NO_FLIP_STRATEGY, DSAConfig, class_siamese,
                              hflip_concat)
from condense.errors import CondenseError


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int = 4, c: int = 3, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, c, size, size, generator=gen(seed))


def same_image(n: int, seed: int = 0) -> torch.Tensor:
    return images(1, seed=seed).expand(n, -1, -1, -1).clone()


def one_family(name: str) -> DSA:
    return DSA(DSAConfig(strategy=name))


@pytest.mark.parametrize("family", FAMILIES)
def test_siamese_same_output_and_same_transform_per_batch(family):
    dsa = one_family(family)
    for seed in range(4):
        real = same_image(3, seed)
        syn = same_image(5, seed)
        r, s = dsa.siamese(real, syn, gen(seed))
        # one draw for the whole batch: every image of both batches transformed identically
        torch.testing.assert_close(r, r[:1].expand_as(r))
        torch.testing.assert_close(s, r[:1].expand_as(s))


def test_siamese_default_strategy_over_seeds_and_flip_first():
    real = images(4, seed=1)
    for cfg in (DSAConfig(), DSAConfig(flip_first=True)):
        dsa = DSA(cfg)
        for seed in range(12):
            r, s = dsa.siamese(real, real.clone(), gen(seed))
            torch.testing.assert_close(r, s)


@pytest.mark.parametrize("family", FAMILIES)
def test_gradients_reach_synthetic_pixels(family):
    dsa = one_family(family)
    real = images(2, seed=1)
    syn = images(3, seed=2).requires_grad_(True)
    for seed in range(20):  # flip may draw "no flip"; crop may draw zero shift: still a gradient
        syn.grad = None
        _, s = dsa.siamese(real, syn, gen(seed))
        (s * torch.linspace(0.5, 1.5, s.numel()).view_as(s)).sum().backward()
        assert syn.grad is not None and torch.isfinite(syn.grad).all() and syn.grad.abs().sum() > 0


@pytest.mark.parametrize("family", ["color", "scale", "rotate"])
def test_non_siamese_transforms_each_image_independently(family):
    dsa = one_family(family)
    out = dsa(same_image(4), gen(3))
    for i in range(1, 4):
        assert not torch.allclose(out[0], out[i])
    p = dsa.sample(6, (3, 16, 16), gen(3))
    assert p.family.unique().numel() == 1  # non-siamese: one family per call


def test_non_siamese_draws_one_family_per_call_with_varied_families_across_calls():
    dsa = DSA()
    seen = {int(dsa.sample(8, (3, 16, 16), gen(s)).family[0]) for s in range(60)}
    assert seen == set(range(len(FAMILIES)))


def test_crop_is_an_integer_shift_with_zero_fill():
    dsa = one_family("crop")
    x = torch.zeros(1, 1, 16, 16)
    x[0, 0, 5, 7] = 1.0
    x[0, 0, 0, 0] = 2.0  # a corner pixel, pushed out of frame by any positive shift
    for seed in range(10):
        p = dsa.sample(1, (1, 16, 16), gen(seed))
        dx, dy = p.shift[0].tolist()
        assert max(abs(dx), abs(dy)) <= 2  # round(0.125 * 16)
        out = dsa.apply(x, p)
        expected = torch.zeros_like(x)
        for (yy, xx), v in (((5, 7), 1.0), ((0, 0), 2.0)):
            if 0 <= yy + dy < 16 and 0 <= xx + dx < 16:
                expected[0, 0, yy + dy, xx + dx] = v
        assert torch.equal(out, expected)


def test_flip_flips_exactly():
    dsa = one_family("flip")
    x = images(8)
    p = dsa.sample(8, (3, 16, 16), gen(0))
    assert 0 < int(p.flip.sum()) < 8
    out = dsa.apply(x, p)
    for i in range(8):
        assert torch.equal(out[i], x[i].flip(-1) if p.flip[i] else x[i])


def test_cutout_zeros_a_clipped_square_of_the_right_side():
    dsa = DSA(DSAConfig(strategy="cutout", cutout=0.25))
    x = torch.ones(1, 1, 16, 16)
    side = 4
    clipped = False
    for seed in range(40):
        p = dsa.sample(1, (1, 16, 16), gen(seed))
        cx, cy = p.cutout[0].tolist()
        assert 0 <= cx <= 16 and 0 <= cy <= 16  # even side: centre may be one past the last pixel
        zero = dsa.apply(x, p)[0, 0] == 0
        rows, cols = zero.any(1).nonzero().squeeze(1), zero.any(0).nonzero().squeeze(1)
        # the zeros form a full rectangle: the square [c - side//2, c + side//2) clipped to the image
        assert zero.sum() == len(rows) * len(cols)
        assert rows.tolist() == [r for r in range(cy - side // 2, cy + side // 2) if 0 <= r < 16]
        assert cols.tolist() == [c for c in range(cx - side // 2, cx + side // 2) if 0 <= c < 16]
        clipped |= len(rows) < side or len(cols) < side
    assert clipped  # some draws touched a border


def test_cutout_side_rounds_half_up():
    x = torch.ones(1, 1, 10, 10)
    dsa = DSA(DSAConfig(strategy="cutout", cutout=0.25))  # 2.5 -> 3 (Python round() would give 2)
    p = dsa.sample(1, (1, 10, 10), gen(0))
    p.cutout[:] = 5
    assert int((dsa.apply(x, p) == 0).sum()) == 9


def test_color_matches_the_official_formula():
    dsa = one_family("color")
    x = images(2)
    p = dsa.sample(2, (3, 16, 16), gen(0))
    u = p.color.view(2, 3, 1, 1, 1)
    y = x + (u[:, 0] - 0.5) * 1.0
    y = (y - y.mean(1, keepdim=True)) * (u[:, 1] * 2.0) + y.mean(1, keepdim=True)
    y = (y - y.mean((1, 2, 3), keepdim=True)) * (u[:, 2] + 0.5) + y.mean((1, 2, 3), keepdim=True)
    torch.testing.assert_close(dsa.apply(x, p), y)


def test_scale_and_rotate_identity_values_leave_images_unchanged():
    x = images(2)
    for family in ("scale", "rotate"):
        dsa = one_family(family)
        p = dsa.sample(2, (3, 16, 16), gen(0))
        p.scale.fill_(1.0)
        p.angle.fill_(0.0)
        torch.testing.assert_close(dsa.apply(x, p), x, atol=1e-5, rtol=0)
    # a 90-degree rotation of a square image is an exact pixel permutation (align_corners=True)
    p.angle.fill_(90.0)
    out = one_family("rotate").apply(x, p)
    assert any(torch.allclose(out, x.rot90(k, (2, 3)), atol=1e-5) for k in (1, 3))


def test_bad_strategies_raise_condense_error():
    for strategy in ("color_blur", "", "flip"):
        with pytest.raises(CondenseError):
            DSA(DSAConfig(strategy=strategy, flip_first=strategy == "flip"))
    with pytest.raises(CondenseError):
        DSA(DSAConfig(scale=0.0))
    DSA(DSAConfig(strategy=NO_FLIP_STRATEGY))


def test_flip_first_always_precedes_one_other_family():
    dsa = DSA(DSAConfig(flip_first=True))
    fams = set()
    for seed in range(40):
        p = dsa.sample(4, (3, 16, 16), gen(seed), siamese_groups=True)
        assert p.flip_first is not None and p.flip_first.shape == (4,)
        fams |= set(p.family.tolist())
    assert FAMILIES.index("flip") not in fams
    assert fams == {FAMILIES.index(f) for f in FAMILIES if f != "flip"}
    # the flip really is applied first: with an identity second family the output is the flip
    p = DSA(DSAConfig(strategy="rotate", flip_first=True)).sample(8, (3, 16, 16), gen(1))
    p.angle.zero_()
    x = images(8)
    out = DSA(DSAConfig(strategy="rotate", flip_first=True)).apply(x, p)
    expected = torch.where(p.flip_first.view(-1, 1, 1, 1), x.flip(-1), x)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    assert 0 < int(p.flip_first.sum()) < 8


def test_class_siamese_shares_a_draw_per_group_and_keeps_row_order():
    dsa = DSA()
    k = 6
    base = images(k, seed=5)
    real_groups = torch.arange(k).repeat(3)                  # interleaved: rows of a class are not adjacent
    syn_groups = torch.arange(k).repeat_interleave(2)
    real, syn = base[real_groups], base[syn_groups]
    p = dsa.sample(k, (3, 16, 16), gen(7), siamese_groups=True)
    assert p.family.unique().numel() > 1  # this seed mixes families across groups
    r, s = class_siamese(dsa, real, real_groups, syn, syn_groups, k, gen(7))
    for g in range(k):
        ref = r[real_groups == g][0]
        torch.testing.assert_close(r[real_groups == g], ref.expand(3, -1, -1, -1))
        torch.testing.assert_close(s[syn_groups == g], ref.expand(2, -1, -1, -1))
        # row order: each row equals its group's own siamese draw applied alone
        alone = dsa.apply(base[g:g + 1], p.expand(torch.tensor([g])))
        torch.testing.assert_close(ref, alone[0])
    # different groups with identical inputs can get different transforms
    same = base[:1].expand(k, -1, -1, -1)
    r2, _ = class_siamese(dsa, same, torch.arange(k), same, torch.arange(k), k, gen(7))
    assert not all(torch.allclose(r2[0], r2[i]) for i in range(1, k))


def test_mixed_families_keep_gradients():
    dsa = DSA()
    syn = images(6).requires_grad_(True)
    groups = torch.arange(6)
    _, s = class_siamese(dsa, images(6, seed=1), groups, syn, groups, 6, gen(7))
    s.sum().backward()
    assert torch.isfinite(syn.grad).all() and (syn.grad.flatten(1).abs().sum(1) > 0).all()


def test_same_seed_same_output():
    dsa = DSA(DSAConfig(strategy=DEFAULT_STRATEGY, flip_first=True))
    x = images(5)
    for seed in range(6):
        torch.testing.assert_close(dsa(x, gen(seed)), dsa(x, gen(seed)))
        a = dsa.siamese(x, x, gen(seed))
        b = dsa.siamese(x, x, gen(seed))
        torch.testing.assert_close(a, b)


def test_hflip_concat():
    x, y = images(3), torch.tensor([0, 1, 2])
    xx, yy = hflip_concat(x, y)
    assert torch.equal(xx[:3], x) and torch.equal(xx[3:], x.flip(-1))
    assert yy.tolist() == [0, 1, 2, 0, 1, 2]
