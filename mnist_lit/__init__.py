"""mnist-lit: train, test and inspect a digit-recognition CNN on MNIST with PyTorch Lightning."""

__version__ = "0.1.0"
