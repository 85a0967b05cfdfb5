"""`python -m mnist_lit export`: the trained network as a file other programs can run.

    python -m mnist_lit export --format onnx                     # best checkpoint -> mnist_cnn.onnx
    python -m mnist_lit export --ckpt_path last --format torchscript --output digits.pt

The exported model takes a batch of normalized (N, channels, size, size) float32 images, any N
(the shape of the checkpoint's data set: (N, 1, 28, 28) for MNIST), and returns (N, number of
classes) logits. Beside it, a JSON sidecar (same name, .json) records how
to get there from pixels: the data set, its normalization constants and picture preprocessing,
the class labels and the input and output names, and how to turn the logits into calibrated
probabilities and the three answers (confidence.py), all from the checkpoint (models/predictor.py).
"""

import argparse
import importlib.util
import json
import warnings
from pathlib import Path
from typing import Optional

import torch

from mnist_lit import __version__
from mnist_lit.checkpoints.finding import add_checkpoint_arguments, resolve_checkpoint
from mnist_lit.core.atomic_files import cannot_write, replaced_atomically
from mnist_lit.core.errors import UserError
from mnist_lit.models.confidence import UNSURE_MARGIN
from mnist_lit.models.predictor import Predictor, load_predictor

SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}
INPUT_NAME, OUTPUT_NAME = "images", "logits"


def export(net: torch.nn.Module, model_format: str, output: Path, input_shape: tuple[int, int, int] = (1, 28, 28)) -> None:
    """Write ``net`` (eval mode, fp32) for (N, *input_shape) inputs to ``output`` as ONNX or TorchScript, whole or not at all."""
    net = net.eval().float()
    example = torch.zeros(2, *input_shape)
    with replaced_atomically(output) as temporary:
        if model_format == "onnx":
            batch = torch.export.Dim("batch")
            torch.onnx.export(
                net, (example,), temporary, dynamo=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: batch},), external_data=False, verbose=False,  # by position: timm's call it x
            )
        else:
            # TorchScript is what many C++ and mobile runtimes load; torch now deprecates it in
            # favour of torch.export, and says so on every call.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                torch.jit.trace(net, example).save(str(temporary))


PREPROCESSING = {
    "handwriting": "mnist_lit.data.pictures.handwriting_style: crop, longer side 20 px, centre of mass on pixel (14, 14)",
    "clothing": "mnist_lit.data.pictures.fashion_style: trim, longer side 28 px, sharpen, centre, negate",
    "photos": "mnist_lit.data.pictures.photo_style: EXIF orientation, transparency over white, RGB, fitted into the square",
}


def sidecar(predictor: Predictor, model_format: str) -> dict:
    """What a program needs besides the model file to use it on pixels."""
    dataset = predictor.dataset_info
    resize = {"pad": "the longer side fitted, the rest padded with the border colour", "crop": "the centre square"}
    return {
        "format": model_format,
        "network": predictor.network,
        "dataset": dataset.name,
        "input": {"name": INPUT_NAME, "shape": ["batch", *predictor.input_shape], "dtype": "float32"},
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["batch", len(predictor.classes)],
            "meaning": "logits in the order of labels; softmax gives probabilities",
        },
        "normalization": {
            "formula": f"(pixels / 255 - mean) / std per channel, pixels 0-255, {dataset.polarity}",
            "mean": list(dataset.mean),
            "std": list(dataset.std),
        },
        "preprocessing": PREPROCESSING[dataset.pictures] + (
            f" ({dataset.size}x{dataset.size}, {resize[dataset.resize]}; {'RGB' if dataset.channels == 3 else 'greyscale'})"
            if dataset.pictures == "photos" else ""
        ),
        "labels": predictor.classes,
        "calibration": calibration(predictor),
        "checkpoint": str(predictor.checkpoint),
        "mnist_lit_version": __version__,
    }


def calibration(predictor: Predictor) -> Optional[dict]:
    """The temperature and threshold, with the rules that use them; None for a checkpoint without them."""
    confidence = predictor.confidence
    if confidence is None:
        return None
    return {
        "temperature": confidence.temperature,
        "probabilities": "softmax(logits / temperature)",
        "energy": "-logsumexp(logits)",
        "energy_threshold": confidence.threshold,
        "accept": confidence.accept,
        "answer": f"energy > energy_threshold: not one of the set's kinds; else top two probabilities less than "
                  f"{UNSURE_MARGIN} apart: unsure between them; else the top class",
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_lit export", description="Write the trained network as ONNX or TorchScript."
    )
    parser.add_argument("--format", required=True, choices=sorted(SUFFIXES))
    add_checkpoint_arguments(parser)
    parser.add_argument("--output", type=Path, help="the model file (default: <data set>_cnn.onnx or .pt, e.g. mnist_cnn.onnx)")
    args = parser.parse_args(argv)
    if args.format == "onnx" and not all(importlib.util.find_spec(name) for name in ("onnx", "onnxscript")):
        raise UserError("ONNX export needs the onnx and onnxscript packages: pip install 'mnist-lit[onnx]'.")
    predictor = load_predictor(resolve_checkpoint(args.ckpt_path, args.checkpoint_dir))
    output = args.output or Path(f"{predictor.dataset_info.name}_cnn{SUFFIXES[args.format]}")
    info = output.with_suffix(".json")
    try:
        export(predictor.net, args.format, output, predictor.input_shape)
        with replaced_atomically(info) as temporary:
            temporary.write_text(json.dumps(sidecar(predictor, args.format), indent=2) + "\n")
    except OSError as error:
        raise cannot_write(error, "--output") from None
    print(f"Wrote {output} and {info}")
    return 0
