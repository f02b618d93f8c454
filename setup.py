"""adapt_jax: balanced dynamic sparse training for GANs (ADAPT) in JAX/Flax."""

from setuptools import find_packages, setup

# Library users (`import adapt_jax.sparse`) need only jax/optax/numpy; the trainer needs the rest.
# Everything is installed by default because the README's one-command promise is "train now".
INSTALL_REQUIRES = [
    "jax>=0.8",
    "jaxlib>=0.8",
    "flax>=0.12",
    "optax>=0.2.8",
    "orbax-checkpoint>=0.12",
    "ml-collections>=1.0",
    "clu>=0.0.12",
    "tensorflow-datasets>=4.9",
    "tensorflow-cpu>=2.16",  # clu's metric writers import TensorFlow at module level
    "tensorboard>=2.16",
    "scikit-learn>=1.3",  # offline digits data for the default config and tests
    "scipy>=1.10",
    "numpy>=1.26",
    "absl-py",
    "pillow",
    "matplotlib",
]

EXTRAS = {
    # nbclient + ipykernel execute launch/colab_tpu.ipynb in tests.
    "test": ["pytest>=8", "pytest-xdist>=3", "hypothesis>=6", "ruff>=0.5", "nbclient",
             "nbformat", "ipykernel"],
}

setup(
    name="adapt_jax",
    version="0.1.0",
    description="Balanced dynamic sparse training for GANs (ADAPT, NeurIPS 2023) in JAX/Flax",
    packages=find_packages(include=["adapt_jax", "adapt_jax.*"]),
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
)
