"""mnist-lit: train, test and inspect CNNs on MNIST and other MNIST-format data sets with PyTorch Lightning."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mnist-lit")  # pyproject.toml is the one place the version is written
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "unknown"

from mnist_lit import old_paths

old_paths.install()
