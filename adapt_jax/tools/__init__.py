"""Commands around training: sample, export, inspect a model, sweep and its report, FID reference
statistics (each also runs as `python -m adapt_jax.<name>`)."""
