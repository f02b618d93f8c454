"""`python -m adapt_jax.inspect`: the command of `adapt_jax/tools/inspect_model.py`."""

from adapt_jax.tools.inspect_model import cli

if __name__ == "__main__":
    cli()
