"""`python -m adapt_jax.fid_stats`: the command of `adapt_jax/tools/fid_stats.py`."""

from adapt_jax.tools.fid_stats import run_cli

if __name__ == "__main__":
    run_cli()
