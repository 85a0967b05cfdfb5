"""`python -m mnist_lit predict`: read handwritten digits from picture files with a trained model.

    python -m mnist_lit predict photo.jpg scans/ 'more/*.png'      # best checkpoint of the latest run
    python -m mnist_lit predict --ckpt_path last digits/ --output predictions.csv

A thin command beside LightningCLI's: it reads pictures, not a datamodule. Each picture goes
through preprocess.py (the steps that made MNIST) and gets one line: the path, the predicted
digit, its probability and the three most probable digits. A file that cannot be read gets one
`error:` line and the others are still predicted; the exit status is 1 if any failed.
"""

import argparse
import csv
import glob
import json
import sys
from pathlib import Path
from typing import Optional

import torch

from mnist_lit.checkpoints import add_checkpoint_arguments, load_classifier, resolve_checkpoint
from mnist_lit.errors import UserError
from mnist_lit.files import cannot_write, replaced_atomically
from mnist_lit.model import DigitClassifier
from mnist_lit.preprocess import load_digit

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
TOP = 3


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files as given, the pictures inside folders, and the matches of glob patterns, in order."""
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            paths += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif not path.exists() and glob.has_magic(item):
            # A pattern the shell did not expand (quoted, or on Windows); no match is reported as missing.
            paths += [Path(match) for match in sorted(glob.glob(item, recursive=True))] or [path]
        else:
            paths.append(path)
    return paths


@torch.inference_mode()
def predict(model: DigitClassifier, paths: list[Path]) -> list[dict]:
    """One result per path: digit, confidence and the top three, or the error that stopped it."""
    results, images, readable = [], [], []
    for path in paths:
        try:
            images.append(load_digit(path))
            readable.append(len(results))
            results.append({"path": str(path)})
        except UserError as error:
            results.append({"path": str(path), "error": str(error)})
    if images:
        probabilities = model(torch.stack(images)).float().softmax(dim=1)
        top = probabilities.topk(TOP, dim=1)
        for row, values, digits in zip(readable, top.values.tolist(), top.indices.tolist()):
            results[row].update(
                digit=digits[0], confidence=values[0], top=[[d, p] for d, p in zip(digits, values)]
            )
    return results


def write_results(results: list[dict], output: Path) -> None:
    """Results as CSV or JSON (by the file's suffix), written whole or not at all."""
    with replaced_atomically(output) as temporary, temporary.open("w", newline="") as file:
        if output.suffix.lower() == ".json":
            json.dump(results, file, indent=2)
        else:
            columns = ["path", "digit", "confidence"] + [f"top{k}_{x}" for k in range(1, TOP + 1) for x in ("digit", "p")]
            writer = csv.writer(file)
            writer.writerow(columns + ["error"])
            for result in results:
                top = [value for pair in result.get("top", []) for value in pair]
                writer.writerow([result["path"], result.get("digit", ""), result.get("confidence", "")]
                                + (top or [""] * 2 * TOP) + [result.get("error", "")])


def format_line(result: dict) -> str:
    top = ", ".join(f"{digit} {p:.3f}" for digit, p in result["top"])
    return f"{result['path']}: {result['digit']} ({result['confidence']:.1%}; top {TOP}: {top})"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_lit predict",
        description="Predict the digit in each picture (PNG, JPEG, BMP, GIF...; any size, either polarity).",
    )
    parser.add_argument("inputs", nargs="+", help="picture files, folders of pictures, or glob patterns")
    add_checkpoint_arguments(parser)
    parser.add_argument("--output", type=Path, help="also write the results to this .csv or .json file")
    args = parser.parse_args(argv)
    if args.output is not None and args.output.suffix.lower() not in (".csv", ".json"):
        raise UserError(f"--output must end in .csv or .json, got {args.output}.")
    model = load_classifier(resolve_checkpoint(args.ckpt_path, args.checkpoint_dir))
    results = predict(model, expand_inputs(args.inputs))
    for result in results:
        if "error" in result:
            print(f"error: {result['error']}", file=sys.stderr)
        else:
            print(format_line(result))
    if args.output is not None:
        try:
            write_results(results, args.output)
        except OSError as error:
            raise cannot_write(error, "--output") from None
    return 1 if any("error" in result for result in results) else 0
