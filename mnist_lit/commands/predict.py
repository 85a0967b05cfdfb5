"""`python -m mnist_lit predict`: name what is in picture files with a trained model.

    python -m mnist_lit predict photo.jpg scans/ 'more/*.png'      # best checkpoint of the latest run
    python -m mnist_lit predict --ckpt_path last digits/ --output predictions.csv

A thin command beside LightningCLI's: it reads pictures, not a datamodule, and imports neither
Lightning nor torchmetrics (inference.py). Each picture is preprocessed like the pictures of the
data set the checkpoint learned (preprocess.py) and gets one line: the path, the answer in words
(the class; "4 or 9?" when the top two are close; "doesn't look like a digit" when the picture is
like none of the set's, unless --accept_all), the top probability and the three most probable
classes (confidence.py; calibrated probabilities when the checkpoint has a temperature). Pictures
are read and predicted in batches, so a folder of any size fits in memory. A file that cannot be read gets one `error:` line and
the others are still predicted; the exit status is 1 if any failed.
"""

import argparse
import csv
import glob
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Optional

import torch

from mnist_lit.checkpoints.finding import add_checkpoint_arguments, resolve_checkpoint
from mnist_lit.core.atomic_files import cannot_write, replaced_atomically
from mnist_lit.core.errors import UserError
from mnist_lit.data.pictures import IMAGE_SUFFIXES
from mnist_lit.models.confidence import add_accept_all_argument
from mnist_lit.models.predictor import Predictor, load_predictor

TOP = 3
CSV_COLUMNS = ["path", "answer", "kind", "class", "label", "confidence", "energy"]
CSV_COLUMNS += [f"top{k}_{x}" for k in range(1, TOP + 1) for x in ("class", "label", "p")] + ["error"]


def expand_inputs(inputs: list[str]) -> Iterator[Path]:
    """Files as given, the pictures inside folders, and the matches of glob patterns, in order."""
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif not path.exists() and glob.has_magic(item):
            # A pattern the shell did not expand (quoted, or on Windows); no match is reported as missing.
            yield from [Path(match) for match in sorted(glob.glob(item, recursive=True))] or [path]
        else:
            yield path


def predict(predictor: Predictor, paths: Iterable[Path], batch_size: int = 256, accept_all: bool = False) -> Iterator[dict]:
    """One result per path, in order: the answer in words and its kind ("class", "unsure" or "unknown"), the
    top class, label and probability, the energy score and the top three; or the error that stopped it.

    At most ``batch_size`` pictures are in memory at a time.
    """
    paths, classes = iter(paths), predictor.classes
    while batch := list(islice(paths, batch_size)):
        results, images, readable = [], [], []
        for path in batch:
            try:
                images.append(predictor.load_picture(path))
                readable.append(len(results))
                results.append({"path": str(path)})
            except UserError as error:
                results.append({"path": str(path), "error": str(error)})
        if images:
            logits = predictor.logits(torch.stack(images))
            probabilities = predictor.probabilities(logits)
            top = probabilities.topk(min(TOP, len(classes)), dim=1)
            for i, (row, values, indices) in enumerate(zip(readable, top.values.tolist(), top.indices.tolist())):
                said = predictor.answer(probabilities[i], logits[i], accept_all)
                ranked = [{"class": c, "label": classes[c], "p": p} for c, p in zip(indices, values)]
                results[row].update({
                    "answer": said.text, "kind": said.kind, "class": indices[0], "label": ranked[0]["label"],
                    "confidence": values[0], "energy": said.energy, "top": ranked,
                })
        yield from results


def csv_row(result: dict) -> list:
    top = [entry[key] for entry in result.get("top", []) for key in ("class", "label", "p")]
    top += [""] * (3 * TOP - len(top))
    fields = ("answer", "kind", "class", "label", "confidence", "energy")
    return [result["path"], *(result.get(key, "") for key in fields), *top, result.get("error", "")]


@contextmanager
def result_file(output: Optional[Path]) -> Iterator[Callable[[dict], None]]:
    """A function that appends one result to ``output`` (.csv or .json), which appears whole when the block ends."""
    if output is None:
        yield lambda result: None
        return
    with replaced_atomically(output) as temporary, temporary.open("w", newline="") as file:
        if output.suffix.lower() == ".json":
            written = 0

            def write_json(result: dict) -> None:
                nonlocal written
                file.write((",\n" if written else "[\n") + json.dumps(result))
                written += 1

            yield write_json
            file.write("\n]\n" if written else "[]\n")
        else:
            writer = csv.writer(file)
            writer.writerow(CSV_COLUMNS)
            yield lambda result: writer.writerow(csv_row(result))


def format_line(result: dict) -> str:
    top = ", ".join(f"{entry['label']} {entry['p']:.3f}" for entry in result["top"])
    return f"{result['path']}: {result['answer']} ({result['confidence']:.1%}; top {len(result['top'])}: {top})"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_lit predict",
        description="Predict the class of each picture (PNG, JPEG, BMP, GIF...; any size, either polarity).",
    )
    parser.add_argument("inputs", nargs="+", help="picture files, folders of pictures, or glob patterns")
    add_checkpoint_arguments(parser)
    parser.add_argument("--output", type=Path, help="also write the results to this .csv or .json file")
    parser.add_argument("--batch_size", type=int, default=256, help="pictures read and predicted at a time (default: 256)")
    add_accept_all_argument(parser)
    args = parser.parse_args(argv)
    if args.output is not None and args.output.suffix.lower() not in (".csv", ".json"):
        raise UserError(f"--output must end in .csv or .json, got {args.output}.")
    if args.batch_size < 1:
        raise UserError(f"--batch_size must be a positive integer, got {args.batch_size}.")
    predictor = load_predictor(resolve_checkpoint(args.ckpt_path, args.checkpoint_dir))
    failed = False
    try:
        with result_file(args.output) as write:
            for result in predict(predictor, expand_inputs(args.inputs), args.batch_size, args.accept_all):
                if "error" in result:
                    failed = True
                    print(f"error: {result['error']}", file=sys.stderr)
                else:
                    print(format_line(result))
                write(result)
    except OSError as error:
        raise cannot_write(error, "--output") from None
    return 1 if failed else 0
