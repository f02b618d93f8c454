"""`python -m adapt_jax.export`, and `adapt_jax.export.load` for exported generators: the
command and loader of `adapt_jax/tools/export.py`."""

from adapt_jax.tools.export import cli, load

__all__ = ["load"]

if __name__ == "__main__":
    cli()
