"""`python -m mnist_lit export`: the trained network as a file other programs can run.

    python -m mnist_lit export --format onnx                     # best checkpoint -> digit_cnn.onnx
    python -m mnist_lit export --ckpt_path last --format torchscript --output digits.pt

The exported model takes a batch of normalized (N, 1, 28, 28) float32 images, any N, and
returns (N, 10) logits. Beside it, a JSON sidecar (same name, .json) records how to get there
from pixels: the normalization constants, the class labels and the input and output names.
"""

import argparse
import importlib.util
import json
import warnings
from pathlib import Path

import torch

from mnist_lit import __version__
from mnist_lit.data import MNIST_MEAN, MNIST_STD
from mnist_lit.errors import UserError
from mnist_lit.network import DigitCNN
from mnist_lit.checkpoints import add_checkpoint_arguments, load_classifier, resolve_checkpoint
from mnist_lit.files import cannot_write, replaced_atomically

SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}
INPUT_NAME, OUTPUT_NAME = "images", "logits"


def export(net: DigitCNN, model_format: str, output: Path) -> None:
    """Write ``net`` (eval mode, fp32) to ``output`` as ONNX or TorchScript, whole or not at all."""
    net = net.eval().float()
    example = torch.zeros(2, 1, 28, 28)
    with replaced_atomically(output) as temporary:
        if model_format == "onnx":
            batch = torch.export.Dim("batch")
            torch.onnx.export(
                net, (example,), temporary, dynamo=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_shapes={"images": {0: batch}}, external_data=False, verbose=False,
            )
        else:
            # TorchScript is what many C++ and mobile runtimes load; torch now deprecates it in
            # favour of torch.export, and says so on every call.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                torch.jit.trace(net, example).save(str(temporary))


def sidecar(model_format: str, checkpoint: str) -> dict:
    """What a program needs besides the model file to use it on pixels."""
    return {
        "format": model_format,
        "input": {"name": INPUT_NAME, "shape": ["batch", 1, 28, 28], "dtype": "float32"},
        "output": {"name": OUTPUT_NAME, "shape": ["batch", 10], "meaning": "logits; softmax gives probabilities"},
        "normalization": {
            "formula": "(pixels / 255 - mean) / std, pixels 0-255 with a light digit on black",
            "mean": MNIST_MEAN,
            "std": MNIST_STD,
        },
        "preprocessing": "mnist_lit.preprocess.mnist_style: crop, longer side 20 px, centre of mass on pixel (14, 14)",
        "labels": [str(digit) for digit in range(10)],
        "checkpoint": checkpoint,
        "mnist_lit_version": __version__,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_lit export", description="Write the trained network as ONNX or TorchScript."
    )
    parser.add_argument("--format", required=True, choices=sorted(SUFFIXES))
    add_checkpoint_arguments(parser)
    parser.add_argument("--output", type=Path, help="the model file (default: digit_cnn.onnx or digit_cnn.pt)")
    args = parser.parse_args(argv)
    if args.format == "onnx" and not all(importlib.util.find_spec(name) for name in ("onnx", "onnxscript")):
        raise UserError("ONNX export needs the onnx and onnxscript packages: pip install 'mnist-lit[onnx]'.")
    output = args.output or Path(f"digit_cnn{SUFFIXES[args.format]}")
    checkpoint = resolve_checkpoint(args.ckpt_path, args.checkpoint_dir)
    net = load_classifier(checkpoint).net
    info = output.with_suffix(".json")
    try:
        export(net, args.format, output)
        with replaced_atomically(info) as temporary:
            temporary.write_text(json.dumps(sidecar(args.format, str(checkpoint)), indent=2) + "\n")
    except OSError as error:
        raise cannot_write(error, "--output") from None
    print(f"Wrote {output} and {info}")
    return 0
