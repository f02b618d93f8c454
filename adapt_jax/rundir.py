"""The one owner of a run directory's layout: every module asks here where a file lives.

    <workdir>/config.json          the run's config (a resumed run must match it)
    <workdir>/summary.json         written once the run has finished
    <workdir>/samples.png          EMA generator samples, one column per class
    <workdir>/balance.png          time-averaged BR with its band, and D's density
    <workdir>/layer_density.md     per-layer densities (ERK start, final, ever active)
    <workdir>/checkpoints/         orbax steps (device state + host state)
    <workdir>/checkpoints_best/    the best-scoring step
    <workdir>/checkpoints_damaged/ steps that failed to restore (moved aside, never deleted)
    <workdir>/eval_cache/          offline-score classifier and reference statistics
"""

from __future__ import annotations

import dataclasses
import os


@dataclasses.dataclass(frozen=True)
class RunDir:
    """Paths of one run directory."""

    root: str

    def _path(self, name: str) -> str:
        return os.path.join(self.root, name)

    @property
    def config(self) -> str:
        return self._path("config.json")

    @property
    def summary(self) -> str:
        return self._path("summary.json")

    @property
    def samples(self) -> str:
        return self._path("samples.png")

    @property
    def balance_plot(self) -> str:
        return self._path("balance.png")

    @property
    def layer_table(self) -> str:
        return self._path("layer_density.md")

    @property
    def checkpoints(self) -> str:
        return self._path("checkpoints")

    @property
    def best_checkpoints(self) -> str:
        return self._path("checkpoints_best")

    @property
    def eval_cache(self) -> str:
        return self._path("eval_cache")
