"""`python -m adapt_jax.export`: the command of `adapt_jax/tools/export.py`."""

from adapt_jax.tools.export import cli

if __name__ == "__main__":
    cli()
