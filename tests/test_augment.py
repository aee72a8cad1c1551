"""Batched tensor augmentation: shapes, determinism, and that each operation
does what it says (and nothing when switched off)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from handwriting.data.augment import BatchAugment

OFF = dict(rotate_deg=0.0, scale=(1.0, 1.0), translate=0.0, shear_deg=0.0, elastic_alpha=0.0)


def strokes(n: int = 32, seed: int = 0) -> torch.Tensor:
    """(n, 1, 28, 28) white-on-black bars of random position/length, inside the frame."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, 28, 28)
    for i in range(n):
        top, left = (int(v) for v in torch.randint(6, 12, (2,), generator=g))
        x[i, 0, top : top + 10, left : left + 3] = 1.0  # a vertical stroke
        x[i, 0, top : top + 3, left : left + 8] = 0.8  # and a bar
    return x


def test_all_operations_off_is_identity() -> None:
    x = strokes()
    aug = BatchAugment(**OFF, thickness_p=0.0)
    assert not aug.enabled
    assert aug(x) is x
    assert BatchAugment(p=0.0, thickness_p=1.0, elastic_alpha=34.0)(x) is x


def test_identity_geometry_through_grid_sample_is_exact_enough() -> None:
    x = strokes()
    aug = BatchAugment(**{**OFF, "rotate_deg": 1e-9}, seed=0)
    torch.testing.assert_close(aug(x), x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("shape", [(16, 784), (16, 1, 28, 28)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_and_range_preserved(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    x = strokes(16).to(dtype).reshape(shape)
    aug = BatchAugment(shear_deg=10.0, elastic_alpha=34.0, thickness_p=0.5, seed=1)
    y = aug(x)
    assert y.shape == x.shape and y.dtype == dtype
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert not torch.equal(y, x)


def test_rejects_bad_input_and_arguments() -> None:
    with pytest.raises(ValueError, match="784"):
        BatchAugment()(torch.zeros(2, 783))
    with pytest.raises(TypeError, match="float"):
        BatchAugment()(torch.zeros(2, 784, dtype=torch.uint8))
    with pytest.raises(ValueError, match="scale"):
        BatchAugment(scale=(1.2, 0.8))
    with pytest.raises(ValueError, match="probability"):
        BatchAugment(p=1.5)


def test_accepts_hydra_style_list_for_scale() -> None:
    aug = BatchAugment(scale=[0.8, 1.2], seed=0)
    assert aug.scale == (0.8, 1.2)
    assert aug(strokes(4)).shape == (4, 1, 28, 28)


def test_seed_makes_it_deterministic() -> None:
    x = strokes()
    kwargs = dict(shear_deg=8.0, elastic_alpha=34.0, thickness_p=0.5)
    a, b = BatchAugment(**kwargs, seed=7), BatchAugment(**kwargs, seed=7)
    first = a(x)
    torch.testing.assert_close(first, b(x), rtol=0, atol=0)
    torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)  # also the second batch
    assert not torch.equal(a(x), first)  # successive batches get new draws
    assert not torch.equal(BatchAugment(**kwargs, seed=8)(x), first)


def test_dilation_grows_and_erosion_shrinks_ink_per_sample() -> None:
    x = strokes(64)
    y = BatchAugment(**OFF, thickness_p=1.0, seed=0)(x)
    dilated = F.max_pool2d(x, 3, stride=1, padding=1)
    eroded = -F.max_pool2d(F.pad(-x, (0, 1, 0, 1)), 2, stride=1)  # 2x2: thinner, not erased
    mass_in, mass_out = x.sum((1, 2, 3)), y.sum((1, 2, 3))
    grew = torch.isclose(y, dilated).flatten(1).all(1)
    shrank = torch.isclose(y, eroded).flatten(1).all(1)
    assert bool((grew ^ shrank).all()), "each sample is either dilated or eroded"
    assert 10 < int(grew.sum()) < 54, "both happen, about equally often"
    assert bool((mass_out[grew] > mass_in[grew]).all())
    assert bool((mass_out[shrank] < mass_in[shrank]).all())
    assert bool((mass_out[shrank] > 0.3 * mass_in[shrank]).all()), "thinned, not erased"


def test_thickness_probability_leaves_other_samples_untouched() -> None:
    x = strokes(200)
    y = BatchAugment(**OFF, thickness_p=0.25, seed=3)(x)
    changed = (y != x).flatten(1).any(1).float().mean()
    assert 0.12 < float(changed) < 0.4


def test_p_selects_which_samples_are_augmented() -> None:
    x = strokes(200)
    y = BatchAugment(rotate_deg=20.0, p=0.5, seed=0)(x)
    unchanged = (y == x).flatten(1).all(1).float().mean()
    assert 0.35 < float(unchanged) < 0.65


def test_elastic_changes_image_but_keeps_most_mass() -> None:
    x = strokes(64)
    y = BatchAugment(**{**OFF, "elastic_alpha": 34.0, "elastic_sigma": 4.0}, seed=0)(x)
    diff = (y - x).abs().sum((1, 2, 3)) / x.sum((1, 2, 3))
    assert float(diff.min()) > 0.05, "every sample is distorted"
    # Mass changes locally with the field's compression/expansion (up to ~+-40% per
    # sample at Simard's alpha=34, sigma=4) but is conserved on average.
    ratio = y.sum((1, 2, 3)) / x.sum((1, 2, 3))
    assert 0.9 < float(ratio.mean()) < 1.1
    assert float(ratio.min()) > 0.5 and float(ratio.max()) < 2.0
    weaker = BatchAugment(**{**OFF, "elastic_alpha": 8.0, "elastic_sigma": 4.0}, seed=0)(x)
    assert float((weaker - x).abs().sum()) < float((y - x).abs().sum())


def test_affine_moves_mass_around_the_frame() -> None:
    x = strokes(128)
    y = BatchAugment(rotate_deg=0.0, scale=(1.0, 1.0), translate=0.1, seed=0)(x)
    rows = torch.arange(28.0).view(1, 1, 28, 1)

    def com_y(t: torch.Tensor) -> torch.Tensor:
        return (t * rows).sum((1, 2, 3)) / t.sum((1, 2, 3))

    shift = com_y(y) - com_y(x)
    assert float(shift.abs().max()) <= 2.8 + 0.5  # translate=0.1 of 28 px
    assert float(shift.std()) > 1.0
    assert float(shift.mean().abs()) < 0.5  # unbiased


def test_scale_changes_ink_mass_in_the_right_direction() -> None:
    x = strokes(16)
    bigger = BatchAugment(**{**OFF, "scale": (1.3, 1.3)}, seed=0)(x)
    smaller = BatchAugment(**{**OFF, "scale": (0.7, 0.7)}, seed=0)(x)
    assert bool((bigger.sum((1, 2, 3)) > x.sum((1, 2, 3))).all())
    assert bool((smaller.sum((1, 2, 3)) < x.sum((1, 2, 3))).all())


def test_runs_under_no_grad_and_with_autograd_in_train_and_eval_mode() -> None:
    aug = BatchAugment(shear_deg=5.0, elastic_alpha=20.0, thickness_p=0.5, seed=0)
    x = strokes(8).reshape(8, 784)
    with torch.no_grad():
        assert aug(x).shape == x.shape
    aug.train()
    leaf = x.clone().requires_grad_(True)
    out = aug(leaf)
    out.sum().backward()
    assert leaf.grad is not None and leaf.grad.abs().sum() > 0
    aug.eval()  # the caller decides where augmentation applies; eval mode does not disable it
    assert not torch.equal(aug(x), x)
