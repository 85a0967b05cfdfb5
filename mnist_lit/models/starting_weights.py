"""Where training starts from, other than random weights: a file of weights (``--model.weights``) or
another mnist-lit checkpoint (``--model.init_from``).

Every tensor whose name and shape fit is taken; the rest keeps its fresh initialization, which is
what a new classifier needs when the classes differ (10 digits -> 5 shapes). Files are read with
safetensors or torch's safe loader: tensors only, no code run.
"""

from pathlib import Path

import torch
from torch import nn

from mnist_lit.core.errors import UserError


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, or of a PyTorch file holding a state_dict (or one under "state_dict")."""
    if not path.is_file():
        raise UserError(f"No weights file at {path}; --model.weights takes a .safetensors, .pt or .pth file.")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise UserError("Reading .safetensors weights needs safetensors: pip install 'mnist-lit[timm]'.") from None
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # safetensors and torch raise several unrelated types for a damaged file
        raise UserError(f"{path} is not a readable weights file ({type(error).__name__}); pass a .safetensors, .pt "
                        "or .pth file of tensors.") from None
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(isinstance(value, torch.Tensor) for value in loaded.values()):
        raise UserError(f"{path} holds no state_dict of tensors; save one with torch.save(model.state_dict(), PATH).")
    return loaded


def load_fitting(net: nn.Module, weights: dict[str, torch.Tensor], source: str) -> list[str]:
    """Copy into ``net`` each tensor of ``weights`` whose name and shape fit; the names of ``net``'s
    tensors left as they were (a new classifier). One line when nothing fits."""
    own = net.state_dict()
    fitting = {name: value for name, value in weights.items() if name in own and own[name].shape == value.shape}
    if not fitting:
        raise UserError(f"None of the weights in {source} fits the network (no tensor of the same name and shape); "
                        "was it saved from the same --model.net?")
    net.load_state_dict(fitting, strict=False)
    return [name for name in own if name not in fitting]
