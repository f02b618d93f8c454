"""DiffAugment: identity, determinism per key, and predictable color/translation/cutout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adapt_jax.gan import diffaug

B, H, W, C = 16, 16, 16, 3


def _images(seed: int = 0) -> jnp.ndarray:
    return jax.random.uniform(jax.random.key(seed), (B, H, W, C), minval=-1.0, maxval=1.0)


def _np_shift(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(img)
    for i in range(img.shape[0]):
        for j in range(img.shape[1]):
            if 0 <= i + dy < img.shape[0] and 0 <= j + dx < img.shape[1]:
                out[i, j] = img[i + dy, j + dx]
    return out


def test_empty_policy_is_identity():
    x = _images()
    np.testing.assert_array_equal(diffaug.augment(jax.random.key(1), x, ""), x)


@pytest.mark.parametrize("policy", ["nope", "color,foo", "color;cutout"])
def test_unknown_policy_raises(policy):
    with pytest.raises(ValueError, match="color, translation, cutout"):
        diffaug.augment(jax.random.key(0), _images(), policy)


def test_shape_dtype_jit_and_same_key_same_result():
    aug = jax.jit(diffaug.augment, static_argnums=2)
    x = _images()
    a = aug(jax.random.key(3), x, "color,translation,cutout")
    assert a.shape == x.shape and a.dtype == x.dtype
    # same key on a second, identical batch (real/fake sharing parameters) -> identical output
    b = aug(jax.random.key(3), jnp.array(np.asarray(x)), "color,translation,cutout")
    np.testing.assert_array_equal(a, b)
    c = aug(jax.random.key(4), x, "color,translation,cutout")
    assert not np.allclose(a, c)


def test_color_on_flat_images_is_a_bounded_brightness_shift():
    # For a constant image saturation and contrast are no-ops; brightness adds U[-0.5, 0.5).
    x = jnp.broadcast_to(jnp.linspace(-0.8, 0.8, B)[:, None, None, None], (B, H, W, C))
    out = np.asarray(diffaug.augment(jax.random.key(5), x, "color"))
    delta = out - np.asarray(x)
    per_image = delta.reshape(B, -1)
    np.testing.assert_allclose(per_image, per_image[:, :1].repeat(H * W * C, 1), atol=1e-5)
    assert np.all(np.abs(per_image[:, 0]) <= 0.5)
    assert np.std(per_image[:, 0]) > 0.05  # really random per sample


def test_color_changes_saturation_of_colored_images():
    x = _images(1)
    out = np.asarray(diffaug.augment(jax.random.key(6), x, "color"))
    spread_in = np.std(np.asarray(x) - np.asarray(x).mean(-1, keepdims=True), axis=(1, 2, 3))
    spread_out = np.std(out - out.mean(-1, keepdims=True), axis=(1, 2, 3))
    assert not np.allclose(spread_in, spread_out, rtol=1e-3)


def test_translation_is_a_zero_filled_shift_of_at_most_one_eighth():
    x = np.arange(B * H * W * C, dtype=np.float32).reshape(B, H, W, C) + 1.0  # all distinct, > 0
    out = np.asarray(diffaug.augment(jax.random.key(7), jnp.asarray(x), "translation"))
    s = int(H * 0.125 + 0.5)
    shifts = []
    for b in range(B):
        found = [
            (dy, dx)
            for dy in range(-s, s + 1)
            for dx in range(-s, s + 1)
            if np.array_equal(out[b], _np_shift(x[b], dy, dx))
        ]
        assert len(found) == 1, f"sample {b} is not a shift within +-{s}"
        shifts.append(found[0])
    assert any(sh != (0, 0) for sh in shifts)
    assert len(set(shifts)) > 1


def test_cutout_zeroes_one_clipped_half_size_square():
    x = np.ones((B, H, W, C), np.float32)
    out = np.asarray(diffaug.augment(jax.random.key(8), jnp.asarray(x), "cutout"))
    cut = int(H * 0.5 + 0.5)
    assert set(np.unique(out)) <= {0.0, 1.0}
    for b in range(B):
        zero = out[b, :, :, 0] == 0
        assert np.array_equal(zero[..., None].repeat(C, -1), out[b] == 0)  # all channels alike
        rows, cols = np.where(zero.any(1))[0], np.where(zero.any(0))[0]
        assert rows.size and cols.size, "every sample gets a cutout"
        # zeros form one full rectangle of at most cut x cut ...
        assert zero[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].all()
        assert zero.sum() == rows.size * cols.size
        assert rows.size <= cut and cols.size <= cut
        # ... and exactly cut x cut unless clipped by the border
        if rows[0] > 0 and rows[-1] < H - 1:
            assert rows.size == cut
        if cols[0] > 0 and cols[-1] < W - 1:
            assert cols.size == cut


def test_policy_order_and_composition_keep_shape():
    x = _images(2)
    out = diffaug.augment(jax.random.key(9), x, "cutout,translation")
    assert out.shape == x.shape
