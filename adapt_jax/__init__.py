"""adapt_jax: balanced dynamic sparse training for GANs (ADAPT) in JAX/Flax.

`adapt_jax.sparse` is a standalone sparse-training library (jax + optax + numpy only); the rest
of the package is the GAN trainer built on it.
"""

__version__ = "0.1.0"
