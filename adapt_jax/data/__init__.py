"""Input pipeline: random-access image sources, resumable batches, global sharded arrays.

    source = make_source(cfg.data, cfg.model.resolution, cfg.model.num_classes)
    it = BatchIterator(source, batch_size, seed, flip=cfg.data.flip, position=saved_position)
    images, labels = it.next()                      # host numpy, float32 in [-1, 1]
    images = to_global(mesh, images)                # jax.Array sharded P('data')
"""

from adapt_jax.data.factory import SOURCES, make_source
from adapt_jax.data.iterator import BatchIterator
from adapt_jax.data.sharding import to_global
from adapt_jax.data.source import Source

__all__ = ["SOURCES", "BatchIterator", "Source", "make_source", "to_global"]
