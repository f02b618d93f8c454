"""`python -m adapt_jax.sample`: the command of `adapt_jax/tools/sample.py`."""

from adapt_jax.tools.sample import cli

if __name__ == "__main__":
    cli()
