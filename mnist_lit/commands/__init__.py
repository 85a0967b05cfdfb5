"""The commands of `python -m mnist_lit`: the LightningCLI (fit, validate, test) and the commands beside it."""
