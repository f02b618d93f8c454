"""adapt_jax: balanced dynamic sparse training for GANs (ADAPT) in JAX/Flax."""

from setuptools import find_packages, setup

# `pip install adapt_jax` is the sparse library alone (`import adapt_jax.sparse`: jax, optax,
# numpy); the `train` extra adds what the GAN trainer, its data, evaluation and tools need.
# TensorFlow is not needed anywhere: TensorBoard event files are written by the `tensorboard`
# package itself (adapt_jax/training/writers.py) and TFDS datasets are read with `tfds.data_source`.
INSTALL_REQUIRES = [
    "jax>=0.8",
    "jaxlib>=0.8",
    "optax>=0.2.8",
    "numpy>=1.26",
]

TRAIN_REQUIRES = [
    "flax>=0.12",
    "orbax-checkpoint>=0.12",
    "etils[epath]",  # adapt_jax/paths.py: gs:// and other URL workdirs (orbax uses it too)
    "ml-collections>=1.0",
    "tensorflow-datasets>=4.9",
    "tensorboard>=2.16",
    "scikit-learn>=1.3",  # offline digits data for the default config and tests
    "scipy>=1.10",
    "absl-py",
    "pillow",
    "matplotlib",
]

EXTRAS = {
    "train": TRAIN_REQUIRES,
    # nbclient + ipykernel execute launch/colab.ipynb in tests.
    "test": TRAIN_REQUIRES + ["pytest>=8", "pytest-xdist>=3", "hypothesis>=6", "ruff>=0.5",
                              "nbclient", "nbformat", "ipykernel"],
}

setup(
    name="adapt_jax",
    version="0.1.0",
    description="Balanced dynamic sparse training for GANs (ADAPT, NeurIPS 2023) in JAX/Flax",
    packages=find_packages(include=["adapt_jax", "adapt_jax.*"]),
    python_requires=">=3.11",  # jax >= 0.7, flax 0.12 and orbax 0.12 need it
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
)
