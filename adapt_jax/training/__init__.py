"""The GAN trainer: build a run's components, iterate, checkpoint, evaluate, finish.

`build` (the frozen components) → `trainer` (one iteration over device + host state) →
`loop.run` (schedule, logging, checkpoints, the end of a run). `host_state` is everything a
checkpoint holds besides the device state; `events` and `outputs` are what a run shows.
"""

from adapt_jax.training.loop import run
from adapt_jax.training.trainer import NonFiniteError, Trainer

__all__ = ["NonFiniteError", "Trainer", "run"]
