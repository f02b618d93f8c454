"""Sample-quality evaluation: FID/IS with a JAX InceptionV3, or an offline classifier score.

    from adapt_jax import evaluation
    ev = evaluation.create_evaluator(cfg.eval, source, cache_dir)
    scores = ev.evaluate(generate)   # {'fid', 'is_mean', 'is_std'} or {'cfd'}, each with
                                     # 'precision' and 'recall'; ev.name is primary. When
                                     # generate(n) returns (images, labels), cfd on a labelled
                                     # source adds 'class_accuracy'.
"""

from adapt_jax.evaluation.best import update_best
from adapt_jax.evaluation.evaluator import Evaluator, create_evaluator
from adapt_jax.evaluation.inception import InceptionV3, load_inception_params
from adapt_jax.evaluation.metrics import (
    StatsAccumulator,
    feature_statistics,
    frechet_distance,
    inception_score,
    load_stats,
    save_stats,
)

__all__ = [
    "Evaluator",
    "InceptionV3",
    "StatsAccumulator",
    "create_evaluator",
    "feature_statistics",
    "frechet_distance",
    "inception_score",
    "load_inception_params",
    "load_stats",
    "save_stats",
    "update_best",
]
