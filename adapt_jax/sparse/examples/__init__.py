"""Runnable examples of `adapt_jax.sparse` (they may import extra packages, e.g. scikit-learn)."""
