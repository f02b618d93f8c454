"""Runnable examples of `adapt_jax.sparse`; they may import more than it does (flax, sklearn)."""
