"""`python -m adapt_jax.sweep`: the command of `adapt_jax/tools/sweep.py`."""

from adapt_jax.tools.sweep import cli

if __name__ == "__main__":
    cli()
