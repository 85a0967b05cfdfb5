"""Reading a checkpoint file safely, and the data set it learned, with torch alone (no Lightning, no weights built).

A checkpoint is loaded with torch's safe loader (tensors and plain values, no code run), after its
zip members' sizes are checked, and refused when it names code to build its model or data with.
``dataset_of`` is the one way the commands learn which set a checkpoint was trained on.
"""

import pickle
import re
import zipfile
from pathlib import Path

import torch

from mnist_lit.core.errors import UserError
from mnist_lit.data.sets import DatasetInfo

# What LightningCLI records about how to rebuild a model (Lightning's load_from_checkpoint imports and
# calls it): the values it writes for mnist-lit's own classes; any other is refused.
BUILDERS = {
    "_instantiator": {"lightning.pytorch.cli.instantiate_module"},
    # Every path the classes were known by: their modules before sub-packages (0.1.0-0.5.0), and now.
    "_class_path": {
        f"mnist_lit.{module}.{name}"
        for module, names in (
            ("model", ("ImageClassifier", "DigitClassifier")), ("models.classifier", ("ImageClassifier", "DigitClassifier")),
            ("data", ("ImageDataModule", "MNISTDataModule")), ("data.datamodule", ("ImageDataModule", "MNISTDataModule")),
        )
        for name in names
    },
}
# The LightningModule keeps its network as `self.net`: its weights are the state_dict's "net.*".
NETWORK_PREFIX = "net."
# The largest tensor a checkpoint may hold: far above any network of networks.py at any supported size.
MAX_MEMBER_BYTES = 2 * 2**30


def dataset_of(checkpoint: dict, path: Path) -> DatasetInfo:
    """The data set a checkpoint already read (``read_checkpoint``) learned; ``path`` is for messages."""
    hparams = checkpoint.get("hyper_parameters") or {}
    if "dataset_info" not in hparams and not any(name.startswith(NETWORK_PREFIX) for name in checkpoint["state_dict"]):
        raise UserError(f"{path} is not a checkpoint of mnist-lit's ImageClassifier (no network weights); pass a .ckpt written by `fit`.")
    try:
        return DatasetInfo.from_record(hparams.get("dataset_info"))
    except (KeyError, TypeError, ValueError) as error:
        raise UserError(f"{path} records its data set in a form mnist-lit cannot read ({type(error).__name__}: {error}).") from None


def optimizer_class_trusted(class_path: str) -> bool:
    """Whether --optimizer or --lr_scheduler (a config's, a checkpoint's) names a class of torch.optim, or Lightning's
    ReduceLROnPlateau: importing any other module could run its code."""
    return class_path.startswith("torch.optim.") or class_path == "lightning.pytorch.cli.ReduceLROnPlateau"


def network_weights(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The network's tensors of an ImageClassifier checkpoint, named as in the network itself."""
    return {name[len(NETWORK_PREFIX):]: value for name, value in checkpoint["state_dict"].items()
            if name.startswith(NETWORK_PREFIX)}


def read_dataset(path: Path) -> DatasetInfo:
    """The data set the checkpoint at ``path`` learned, without building its network."""
    return dataset_of(read_checkpoint(path), path)


def read_checkpoint(path: Path) -> dict:
    """Load a checkpoint with torch's safe loader: tensors and plain values only, no code run."""
    if path.stat().st_size == 0:
        raise UserError(f"{path} is empty; pass a .ckpt written by `fit`.")
    damaged = f"{path} is not a readable checkpoint: truncated, damaged or another kind of file"
    refuse_huge_members(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
        if found is None:  # not a pickle torch could read at all
            raise UserError(f"{damaged}; pass a .ckpt written by `fit`.") from None
        raise UserError(
            f"{path} holds pickled Python objects ({found.group(1)}) besides tensors and plain values; mnist-lit "
            "loads checkpoints with torch's safe loader and runs no code from them. Pass a .ckpt written by `fit`."
        ) from None
    except Exception as error:  # torch raises several unrelated types for a damaged file
        raise UserError(f"{damaged} ({type(error).__name__}); pass a .ckpt written by `fit`.") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UserError(f"{path} is not a Lightning checkpoint (no state_dict); pass a .ckpt written by `fit`.")
    chosen = [(checkpoint.get("hyper_parameters") or {}).get(key) for key in ("optimizer", "lr_scheduler")]
    for named in (str(option.get("class_path")) for option in chosen if isinstance(option, dict)):
        if not optimizer_class_trusted(named):
            raise UserError(f"{path} names code to train its model with ({named!r}, not a class of torch.optim); mnist-lit "
                            "runs nothing a file names. Pass a .ckpt written by `fit`.")
    for key in ("hyper_parameters", "datamodule_hyper_parameters"):
        options = checkpoint.get(key)
        for name, trusted in BUILDERS.items():
            named = options.get(name) if isinstance(options, dict) else None
            if named is not None and named not in trusted:
                raise UserError(f"{path} names code to build its model or data with ({name} {named!r}); mnist-lit builds "
                                "its own classes from a checkpoint and runs nothing a file names. Pass a .ckpt written by `fit`.")
    return checkpoint


def refuse_huge_members(path: Path) -> None:
    """Refuse a checkpoint whose zip members claim more than a checkpoint of ours could hold.

    torch reads a member into memory of the size its header declares, so a crafted header (or a
    deflated member of zeros) could take all the memory before anything fails.
    """
    if not zipfile.is_zipfile(path):
        return  # torch's message names what else it is
    try:
        with zipfile.ZipFile(path) as archive:
            largest = max(archive.infolist(), key=lambda member: member.file_size, default=None)
    except (zipfile.BadZipFile, OSError):
        return
    if largest is not None and largest.file_size > MAX_MEMBER_BYTES:
        raise UserError(f"{path} holds a member ({largest.filename}) of {largest.file_size / 2**30:.1f} GiB, more than a "
                        f"checkpoint of mnist-lit could ({MAX_MEMBER_BYTES / 2**30:.0f} GiB); it is not read.")
