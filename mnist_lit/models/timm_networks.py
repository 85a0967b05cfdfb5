"""Any of timm's image models by name: ``--model.net timm/resnet18``.

timm (PyTorch Image Models) is the library of image networks, most with published pretrained
weights. Its models take the channels and the class count of the data set (``in_chans``,
``num_classes``), and a checkpoint rebuilds one from its name alone through ``timm.create_model``:
only names in timm's own table are taken, never a hub address or a file path, so nothing a
checkpoint holds can name other code or another place to load from. timm is imported only for a
network that is timm's.
"""

import re
from pathlib import Path
from typing import Optional

from torch import nn

from mnist_lit.core.errors import UserError

TIMM_PREFIX = "timm/"


def is_timm(name: str) -> bool:
    return name.startswith(TIMM_PREFIX)


def timm_model_name(name: str) -> str:
    """timm's name for ``timm/<name>``; one line for a name timm's table does not have."""
    model = name[len(TIMM_PREFIX):]
    try:
        import timm
    except ImportError:
        raise UserError(f"--model.net {name} needs timm: pip install 'mnist-lit[timm]'") from None
    # A plain table name: "hf-hub:..." or "local-dir:..." would make timm download or read files.
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", model) or not timm.is_model(model):
        raise UserError(f"timm has no model {model!r}: --model.net timm/NAME takes a name of timm.list_models(), "
                        "e.g. timm/resnet18.")
    return model


def timm_network(
    name: str, num_classes: int, channels: int, dropout: Optional[float] = None,
    pretrained: bool = False, weights: Optional[Path] = None,
) -> nn.Module:
    """The timm network ``timm/<name>`` for the set's channels and classes. With ``pretrained``, timm's
    published weights (downloaded once into its cache); with ``weights``, those of a local file. Either
    way the classifier is new when the class count differs, and a first convolution of other channels
    is adapted (timm sums or repeats its RGB weights)."""
    import timm

    model = timm_model_name(name)
    options = {} if dropout is None else {"drop_rate": dropout}
    if weights is not None:
        options["pretrained_cfg_overlay"] = {"file": str(weights)}
    try:
        return timm.create_model(model, pretrained=pretrained or weights is not None, num_classes=num_classes,
                                 in_chans=channels, **options)
    except RuntimeError as error:  # unknown tag, weights of another network, or shapes that do not fit
        source = f"the weights in {weights}" if weights is not None else f"timm's weights for {model}"
        raise UserError(f"{source} do not fit timm/{model} ({str(error).splitlines()[0][:200]}).") from None
    except OSError as error:  # no network, no cache
        raise UserError(
            f"Could not fetch timm's pretrained weights for {model} ({type(error).__name__}). On a machine without "
            "a network, save them once elsewhere (docs/networks.md) and pass the file with --model.weights PATH."
        ) from None


def pretrained_normalization(net: nn.Module, channels: int) -> Optional[tuple[tuple[float, ...], tuple[float, ...]]]:
    """The mean and std the network's pretrained weights were trained with, per input channel, or None.
    For one channel, the average of the RGB values: timm's one-channel first convolution sums RGB's."""
    config = getattr(net, "pretrained_cfg", None) or {}
    mean, std = config.get("mean"), config.get("std")
    if mean is None or std is None:
        return None
    if channels == len(mean):
        return tuple(mean), tuple(std)
    return (sum(mean) / len(mean),) * channels, (sum(std) / len(std),) * channels
