"""RigL at 10% density on a flax MLP over scikit-learn's digits, with a flax ``TrainState``.

``sparse.dynamic_sparse`` holds the masks in the optimizer state and runs drop/grow inside
``apply_gradients``, so the training step is the usual flax one. :func:`create_state`,
:func:`train_step` and :func:`train` are shown verbatim in docs/sparse.md; a test keeps the two
in sync. Run from the repository root: ``python -m examples.digits_classifier`` (offline, seconds
on a CPU).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training.train_state import TrainState

from adapt_jax import sparse


def load_digits_split(seed: int = 0) -> tuple[np.ndarray, ...]:
    """8x8 digits scaled to [0, 1], a fixed 75/25 train/test split."""
    from sklearn.datasets import load_digits  # only the example needs scikit-learn

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order].astype(np.float32) / 16.0, y[order]
    cut = len(x) * 3 // 4
    return x[:cut], y[:cut], x[cut:], y[cut:]


class MLP(nn.Module):
    """ReLU MLP; its ``Dense_i/kernel`` leaves are what the default maskable rule picks."""

    features: Sequence[int] = (256, 256, 10)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for width in self.features[:-1]:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(self.features[-1])(x)


def create_state(key: jax.Array, density: float = 0.1, steps: int = 800,
                 update_every: int = 50) -> TrainState:
    """Masked params and a RigL optimizer: ERK masks, drop fraction 0.3 decayed by a cosine."""
    init_key, mask_key, dst_key = jax.random.split(key, 3)
    model = MLP()
    params = model.init(init_key, jnp.zeros((1, 64)))["params"]
    masks = sparse.init_masks(mask_key, params, density, distribution="erk")
    end_step = steps * 3 // 4  # RigL freezes the masks for the last quarter
    tx = sparse.dynamic_sparse(
        optax.adam(1e-3), masks, key=dst_key, update_every=update_every,
        drop_fraction=optax.cosine_decay_schedule(0.3, end_step), end_step=end_step)
    return TrainState.create(apply_fn=model.apply, params=sparse.apply_masks(params, masks),
                             tx=tx)


def train_step(state: TrainState, x: jax.Array, y: jax.Array) -> TrainState:
    """The plain flax step: masks, drop/grow and zeroing all happen in ``apply_gradients``."""

    def loss_fn(params):
        logits = state.apply_fn({"params": params}, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    return state.apply_gradients(grads=jax.grad(loss_fn)(state.params))


def train(density: float = 0.1, steps: int = 800, batch: int = 128, seed: int = 0) -> dict:
    """Train with RigL (density < 1) or densely (density 1: every mask update is a no-op)."""
    x_train, y_train, x_test, y_test = load_digits_split(seed)
    state = create_state(jax.random.key(seed), density, steps)
    step = jax.jit(train_step)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        idx = rng.integers(0, len(x_train), batch)
        state = step(state, x_train[idx], y_train[idx])
    logits = jax.jit(state.apply_fn)({"params": state.params}, x_test)
    accuracy = float(jnp.mean(jnp.argmax(logits, -1) == y_test))
    return {"accuracy": accuracy, "stats": sparse.density_stats(state.opt_state.masks)}


if __name__ == "__main__":
    dense, rigl = train(density=1.0), train(density=0.1)
    print(f"dense  accuracy {dense['accuracy']:.4f}")
    print(f"RigL   accuracy {rigl['accuracy']:.4f} at density {rigl['stats'].density:.3f}")
