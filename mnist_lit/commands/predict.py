"""`python -m mnist_lit predict`: name what is in picture files with a trained model.

    python -m mnist_lit predict photo.jpg scans/ 'more/*.png'      # best checkpoint of the latest run
    python -m mnist_lit predict --ckpt_path last digits/ --output predictions.csv

A thin command beside LightningCLI's: it reads pictures, not a datamodule, and imports neither
Lightning nor torchmetrics (models/predictor.py). Each picture is preprocessed like the pictures of the
data set the checkpoint learned (data/pictures.py) and gets one line: the path, the answer in words
(the class; "4 or 9?" when the top two are close; "doesn't look like a digit (closest: 4)" when the picture is
like none of the set's, unless --accept_all), the top probability and the three most probable
classes (confidence.py; calibrated probabilities when the checkpoint has a temperature). Pictures
are read in worker processes on every core and predicted in batches, so a folder of any size fits
in memory; a progress bar (a line every few seconds when stderr is not a terminal) shows how far
it is through thousands. A file that cannot be read gets one `error:` line and the others are
still predicted; the exit status is 1 if any failed.
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

import numpy as np
import torch

from mnist_lit.checkpoints.finding import add_checkpoint_arguments, resolve_checkpoint
from mnist_lit.core.atomic_files import cannot_write, replaced_atomically
from mnist_lit.core.errors import UserError
from mnist_lit.core.hardware import usable_cores
from mnist_lit.core.progress_lines import progress
from mnist_lit.data.decoding import chunked, workers
from mnist_lit.data.pictures import IMAGE_SUFFIXES, load_like
from mnist_lit.data.sets import DatasetInfo
from mnist_lit.models.confidence import add_accept_all_argument
from mnist_lit.models.predictor import Predictor, load_predictor

TOP = 3
CSV_COLUMNS = ["path", "answer", "kind", "class", "label", "confidence", "energy", "closest_class", "closest_label"]
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


Read = Callable[[list[Path]], list[torch.Tensor | str]]


def pixels_of(paths: list[str], dataset: DatasetInfo) -> list[np.ndarray | str]:
    """Each picture's pixels made like ``dataset``'s own, or why it could not be read: in a worker process."""
    read: list[np.ndarray | str] = []
    for path in paths:
        try:
            read.append(load_like(path, dataset, path))
        except UserError as error:
            read.append(str(error))
    return read


def read_in_workers(predictor: Predictor, run: Callable[..., Iterator]) -> Read:
    """A batch's pictures read by ``run`` (decoding.workers), a share of the batch per worker process."""
    def read(batch: list[Path]) -> list[torch.Tensor | str]:
        share = max(1, -(-len(batch) // usable_cores()))
        read = [item for chunk in run(pixels_of, chunked([str(path) for path in batch], share), predictor.dataset_info) for item in chunk]
        return [item if isinstance(item, str) else predictor.normalize(torch.from_numpy(item).reshape(predictor.input_shape))
                for item in read]
    return read


def read_here(predictor: Predictor) -> Read:
    def read(batch: list[Path]) -> list[torch.Tensor | str]:
        pictures: list[torch.Tensor | str] = []
        for path in batch:
            try:
                pictures.append(predictor.load_picture(path))
            except UserError as error:
                pictures.append(str(error))
        return pictures
    return read


def predict(
    predictor: Predictor, paths: Iterable[Path], batch_size: int = 256, accept_all: bool = False, read: Optional[Read] = None,
) -> Iterator[dict]:
    """One result per path, in order: the answer in words and its kind ("class", "unsure" or "unknown"), the
    top class, label and probability, the energy score and the top three; or the error that stopped it.

    At most ``batch_size`` pictures are in memory at a time; ``read`` reads a batch (default: in this process).
    """
    paths, classes, read = iter(paths), predictor.classes, read or read_here(predictor)
    while batch := list(islice(paths, batch_size)):
        results, images, readable = [], [], []
        for path, picture in zip(batch, read(batch)):
            if isinstance(picture, str):
                results.append({"path": str(path), "error": picture})
            else:
                images.append(picture)
                readable.append(len(results))
                results.append({"path": str(path)})
        if images:
            logits = predictor.logits(torch.stack(images))
            probabilities = predictor.probabilities(logits)
            top = probabilities.topk(min(TOP, len(classes)), dim=1)
            for i, (row, values, indices) in enumerate(zip(readable, top.values.tolist(), top.indices.tolist())):
                said = predictor.answer(probabilities[i], logits[i], accept_all)
                ranked = [{"class": c, "label": classes[c], "p": p} for c, p in zip(indices, values)]
                results[row].update({"answer": said.text, "kind": said.kind, **answered_class(said.kind, ranked[0]),
                                     "energy": said.energy, "top": ranked})
        yield from results


def answered_class(kind: str, best: dict) -> dict:
    """``class``, ``label`` and ``confidence`` of an answer; null for a refusal, whose closest class has a key of its
    own, so that a client reading ``label`` never takes a refusal for an answer."""
    if kind == "unknown":
        return {"class": None, "label": None, "confidence": None, "closest": best}
    return {"class": best["class"], "label": best["label"], "confidence": best["p"]}


def csv_row(result: dict) -> list:
    top = [entry[key] for entry in result.get("top", []) for key in ("class", "label", "p")]
    top += [""] * (3 * TOP - len(top))
    fields = ("answer", "kind", "class", "label", "confidence", "energy")
    closest = result.get("closest") or {}
    values = [result.get(key) for key in fields]
    return [result["path"], *("" if value is None else value for value in values), closest.get("class", ""),
            closest.get("label", ""), *top, result.get("error", "")]


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
    if result["kind"] == "unknown":  # no percentage: the closest class is named in the answer itself
        return f"{result['path']}: {result['answer']}"
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
    paths = list(expand_inputs(args.inputs))
    failed = False
    try:
        with result_file(args.output) as write, workers(len(paths)) as run, progress("Predicting", len(paths)) as advance:
            for result in predict(predictor, paths, args.batch_size, args.accept_all, read_in_workers(predictor, run)):
                advance(1)
                if "error" in result:
                    failed = True
                    print(f"error: {result['error']}", file=sys.stderr)
                else:
                    print(format_line(result))
                write(result)
    except OSError as error:
        raise cannot_write(error, "--output") from None
    return 1 if failed else 0
