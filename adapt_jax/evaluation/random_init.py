"""Random weights drawn with numpy from traced shapes.

Running (or even jitting) a linen `init` costs seconds to tens of seconds of XLA compilation on a
small CPU host, while `jax.eval_shape` + numpy is instantaneous and just as deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
from flax import traverse_util


def traced_shapes(init: Callable[..., Any], *example_inputs: Any) -> dict[str, tuple[int, ...]]:
    """Flat '/'-joined variable name -> shape of `init(key, *example_inputs)`, nothing computed."""
    shapes = jax.eval_shape(init, jax.random.PRNGKey(0), *example_inputs)
    return {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(shapes, sep="/").items()}


def random_variables(shapes: Mapping[str, tuple[int, ...]], seed: int,
                     random_affine: bool = False) -> dict[str, np.ndarray]:
    """He-normal kernels; biases/means 0 and scales/variances 1, or random when `random_affine`.

    `random_affine` makes every BatchNorm array non-trivial, so tests comparing two
    implementations (or a weight-file round trip) exercise all of them.
    """
    rng = np.random.default_rng(seed)
    flat = {}
    for name, shape in shapes.items():
        leaf = name.rsplit("/", 1)[-1]
        if leaf == "kernel":
            value = rng.normal(0.0, np.sqrt(2.0 / int(np.prod(shape[:-1]))), shape)
        elif leaf in ("bias", "mean"):
            value = rng.normal(0.0, 0.1, shape) if random_affine else np.zeros(shape)
        elif leaf in ("scale", "var"):
            value = rng.uniform(0.5, 1.5, shape) if random_affine else np.ones(shape)
        else:
            raise ValueError(f"no initialiser for variable {name!r}")
        flat[name] = value.astype(np.float32)
    return flat
