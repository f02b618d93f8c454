"""RigL at 10% density on a plain-JAX MLP over scikit-learn's digits (offline, seconds on CPU).

The code of :func:`train` is shown verbatim in docs/sparse.md; a test keeps the two in sync.
Run from the repository root: ``python -m examples.digits_classifier``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adapt_jax import sparse


def load_digits_split(seed: int = 0) -> tuple[np.ndarray, ...]:
    """8x8 digits scaled to [0, 1], a fixed 75/25 train/test split."""
    from sklearn.datasets import load_digits  # only the example needs scikit-learn

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order].astype(np.float32) / 16.0, y[order]
    cut = len(x) * 3 // 4
    return x[:cut], y[:cut], x[cut:], y[cut:]


def init_mlp(key: jax.Array, sizes: tuple[int, ...] = (64, 256, 256, 10)) -> dict:
    """Flax-style names (``Dense_i/kernel``) so the default maskable rule applies."""
    keys = jax.random.split(key, len(sizes) - 1)
    return {
        f"Dense_{i}": {
            "kernel": jax.random.normal(k, (n_in, n_out)) * np.sqrt(2.0 / n_in),
            "bias": jnp.zeros(n_out),
        }
        for i, (k, n_in, n_out) in enumerate(zip(keys, sizes[:-1], sizes[1:], strict=True))
    }


def mlp(params: dict, x: jax.Array) -> jax.Array:
    """ReLU MLP logits."""
    *hidden, last = params.values()
    for layer in hidden:
        x = jax.nn.relu(x @ layer["kernel"] + layer["bias"])
    return x @ last["kernel"] + last["bias"]


def loss_fn(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(mlp(params, x), y).mean()


def train(density: float = 0.1, steps: int = 800, batch: int = 128, seed: int = 0) -> dict:
    """Train with RigL (density < 1) or densely (density 1: every update is then a no-op)."""
    x_train, y_train, x_test, y_test = load_digits_split(seed)
    key, init_key, mask_key = jax.random.split(jax.random.key(seed), 3)
    params = jax.jit(init_mlp)(init_key)  # one compile, not one per eager op
    masks = sparse.init_masks(mask_key, params, density, distribution="erk")
    params = sparse.apply_masks(params, masks)  # invariant: stored params are masked
    opt = sparse.keep_sparse(optax.adam(1e-3))
    opt_state = opt.init(params)
    stop_updates = steps * 3 // 4  # RigL freezes the mask for the last quarter
    drop_fraction = sparse.drop_fraction_schedule("cosine", 0.3, total_steps=stop_updates)
    update_every = 50

    @jax.jit
    def train_step(params, opt_state, masks, x, y):
        grads = jax.grad(loss_fn)(params, x, y)
        updates, opt_state = opt.update(grads, opt_state, params, masks=masks)
        return optax.apply_updates(params, updates), opt_state, grads

    update_masks = jax.jit(sparse.drop_grow, static_argnames=("grow", "scope"))
    rng = np.random.default_rng(seed)
    for t in range(1, steps + 1):
        idx = rng.integers(0, len(x_train), batch)
        # grads come from the pre-update weights, as RigL (and the reference) grow by them
        params, opt_state, grads = train_step(params, opt_state, masks, x_train[idx], y_train[idx])
        if t % update_every == 0 and t < stop_updates:
            key, sub = jax.random.split(key)
            params, masks = update_masks(sub, params, masks, grads, drop_fraction(t))
    accuracy = float(jnp.mean(jnp.argmax(jax.jit(mlp)(params, x_test), -1) == y_test))
    return {"accuracy": accuracy, **sparse.density_stats(masks)._asdict()}


if __name__ == "__main__":
    dense, rigl = train(density=1.0), train(density=0.1)
    print(f"dense  accuracy {dense['accuracy']:.4f}")
    print(f"RigL   accuracy {rigl['accuracy']:.4f} at density {rigl['density']:.3f}")
