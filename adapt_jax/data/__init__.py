"""Input pipeline: random-access image sources, resumable batches, global sharded arrays.

    info = describe(cfg.data)                       # size and classes, nothing decoded
    source = make_source(cfg.data, cfg.model.resolution, cfg.model.num_classes,
                         batch_size=cfg.train.batch_d)
    it = BatchIterator(source, batch_size, seed, flip=cfg.data.flip, position=saved_position)
    images, labels = it.next()                      # host numpy, float32 in [-1, 1]
    images = to_global(mesh, images)                # jax.Array sharded P('data')
"""

from adapt_jax.data.factory import SOURCES, make_source
from adapt_jax.data.iterator import BatchIterator
from adapt_jax.data.preflight import DataInfo, check_batch, describe, resolve_num_classes
from adapt_jax.data.sharding import to_global
from adapt_jax.data.source import Source

__all__ = ["SOURCES", "BatchIterator", "DataInfo", "Source", "check_batch", "describe",
           "make_source", "resolve_num_classes", "to_global"]
