"""A folder or CSV set too large for memory: decoded once into LitData's chunks, then streamed from them.

``litdata.optimize`` decodes the files in worker processes, with the in-memory path's own decoding
(pictures.py), and writes each part of the split into chunks of ``CHUNK_BYTES``. A
``StreamingDataset`` reads them back a chunk at a time, shuffled chunk by chunk, so memory holds a
few chunks and never the set; its loader's position goes into the checkpoint, so a run resumes in
the middle of an epoch. The chunks sit next to the decoded cache (decoded_cache.py), keyed like
it and by the split, never in the pictures' folder. They are written into a temporary folder that
is renamed into place once whole, so a folder under the final name is complete: a run killed while
writing leaves only a temporary one, which the next run removes. Each decoding task also leaves a
note of what it read (whether every picture was grey, a histogram of the pixels, the files it
skipped), from which the set's channels, mean and std are made exactly as in memory.
"""

import contextlib
import hashlib
import io
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from mnist_lit.core.errors import UserError
from mnist_lit.core.hardware import usable_cores
from mnist_lit.core.progress_lines import progress
from mnist_lit.data.decoded_cache import CACHE_DIR_ENV, cache_file
from mnist_lit.data.decoding import CHUNK
from mnist_lit.data.pictures import decode_files, to_channels
from mnist_lit.data.sets import histogram_stats

CHUNK_BYTES = 16 * 2**20  # the chunk being read is mapped into memory: small, yet a hundred 224x224 pictures per file
BUDGET_SHARE = 4  # --data.memory_budget's default: a quarter of the machine's memory
UNITS = {"": 1, "b": 1, "kb": 2**10, "mb": 2**20, "gb": 2**30, "tb": 2**40}


def machine_memory() -> int:
    """The machine's physical memory in bytes (8 GiB where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # Windows has no sysconf
        return 8 * 2**30


def budget_bytes(text: Union[str, int, None]) -> int:
    """``--data.memory_budget`` in bytes: a number of bytes, or "512MB", "4GB"... (powers of 1024); null is a
    quarter of the machine's memory."""
    if text is None:
        return machine_memory() // BUDGET_SHARE
    number = str(text).strip().lower().replace("ib", "b").replace(" ", "")
    unit = number.lstrip("0123456789.")
    try:
        value = float(number[: len(number) - len(unit)]) * UNITS[unit]
    except (ValueError, KeyError):
        raise UserError(f"--data.memory_budget takes a size such as 4GB or 512MB, got {text!r}.") from None
    if value <= 0:
        raise UserError(f"--data.memory_budget must be above 0, got {text!r}.")
    return int(value)


def readable_size(count: float) -> str:
    """Bytes in words: "36.0 KB", "2.8 GB"."""
    for unit in ("B", "KB", "MB"):
        if count < 1024:
            return f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GB"


def litdata() -> Any:
    """The litdata module, imported on first use: only streamed sets need it, and it takes a second to import."""
    try:
        import litdata
    except ImportError:
        raise UserError("streaming a set needs LitData: pip install 'mnist-lit[stream]', or hold the set in memory with "
                        "--data.stream false.") from None
    return litdata


# --- writing --------------------------------------------------------------------------------------


def chunk_folder(root: Path, key: str, size: int, parts: dict[str, tuple[list[str], list[int]]]) -> Path:
    """Beside the decoded cache's file of the same set (decoded_cache.py, whose ``key`` it takes), one folder
    per decoding and split: the side and every part's files and labels are in its name."""
    digest = hashlib.sha256(json.dumps([size, parts]).encode()).hexdigest()[:12]
    return cache_file(root, f"{key}-{digest}").with_suffix(".chunks")


def count_pixels(histograms: np.ndarray, rgb: np.ndarray) -> None:
    """Add a (side, side, 3) picture's pixels to (4, 256) counts: of R, G, B and of the luminance a greyscale
    reading would use, so that the statistics suit either choice of channels."""
    for channel in range(3):
        histograms[channel] += np.bincount(rgb[..., channel].reshape(-1), minlength=256)
    histograms[3] += np.bincount(to_channels(rgb, 1).reshape(-1), minlength=256)


def pixel_stats_of(histograms: np.ndarray, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The mean and std (sets.py's histogram_stats) of the pictures counted by ``count_pixels``, read in ``channels``."""
    return histogram_stats(torch.from_numpy(histograms[:3] if channels == 3 else histograms[3:]))


def decode_task(task: tuple[str, list[str], list[int], list[int], int, str]) -> Any:
    """litdata.optimize's function: the pictures of one task's files as items, then the task's note beside the
    chunks. Runs in a worker process."""
    note_path, files, labels, positions, size, resize = task
    pixels, greys, errors = decode_files(files, size, resize)
    histogram = np.zeros((4, 256), np.int64)
    kept = []
    for array, grey, label, position in zip(pixels, greys, labels, positions):
        if array is None:
            continue
        kept.append((position, label, grey))
        count_pixels(histogram, array)
        yield {"image": array, "label": int(label), "position": int(position)}
    note = {"kept": kept, "histogram": histogram.tolist(), "skipped": [error for error in errors if error]}
    temporary = f"{note_path}.tmp"
    with open(temporary, "w") as handle:
        json.dump(note, handle)
    os.replace(temporary, note_path)


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process
        return True
    return True


@contextlib.contextmanager
def counting(tasks: list[tuple], advance: Callable[[int], None]) -> Iterator[None]:
    """Advance a progress bar by each task's pictures as its note appears, while the block runs: litdata's own bar
    moves only when a worker has finished its whole share."""
    waiting, stop = {task[0]: len(task[1]) for task in tasks}, threading.Event()

    def poll() -> None:
        while not stop.wait(0.5):
            for note in [note for note in waiting if os.path.exists(note)]:
                advance(waiting.pop(note))

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()


def write_chunks(folder: Path, parts: dict[str, tuple[list[str], list[int]]], size: int, resize: str) -> None:
    """Decode each part's files and labels into litdata chunks under ``folder``, whole or not at all."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    for stale in folder.parent.glob(f"{folder.name}.partial-*"):
        if not running(int(stale.name.rsplit("-", 1)[1])):  # a run killed while writing
            shutil.rmtree(stale, ignore_errors=True)
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    try:
        for name, (files, labels) in parts.items():
            notes = partial / "notes" / name
            notes.mkdir(parents=True, exist_ok=True)
            tasks = [
                (str(notes / f"{start:09d}.json"), files[start : start + CHUNK], labels[start : start + CHUNK],
                 list(range(start, min(start + CHUNK, len(files)))), size, resize)
                for start in range(0, len(files), CHUNK)
            ]
            with progress(f"Writing the {name} part into chunks", len(files)) as advance, counting(tasks, advance):
                with contextlib.redirect_stdout(io.StringIO()):  # litdata's own lines, from each worker
                    litdata().optimize(
                        fn=decode_task, inputs=tasks, output_dir=str(partial / name), chunk_bytes=CHUNK_BYTES,
                        num_workers=max(1, min(usable_cores(), len(tasks))), reorder_files=False, verbose=False,
                    )
            unfinished = sum(not os.path.exists(task[0]) for task in tasks)
            if unfinished:  # litdata writes an empty index when its workers die before their first item
                raise UserError(
                    f"writing the {name} part into chunks stopped: {unfinished} of {len(tasks)} decoding tasks did not "
                    "finish. LitData's workers start a fresh Python that imports the script you ran: if `fit` runs "
                    "from a script of your own, put its code under `if __name__ == \"__main__\":`."
                )
        try:
            os.replace(partial, folder)
        except OSError:
            if not is_whole(folder, parts):
                raise
            # Another run on the same files wrote them first: theirs are the same, and already in place.
        for old in folder.parent.glob(f"{folder.name.split('-')[0]}-*.chunks"):  # another decoding or split of the set
            if old != folder:
                shutil.rmtree(old, ignore_errors=True)
    except OSError as error:
        raise UserError(
            f"cannot write the streamed chunks to {folder.parent} ({error.strerror or error}); free some space there or "
            f"set {CACHE_DIR_ENV} to a folder with room for the decoded set."
        ) from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)


# --- reading --------------------------------------------------------------------------------------


@dataclass
class Notes:
    """What the decoding tasks of one part read: each readable picture's position and label, whether all were
    grey, the pixels' histograms (R, G, B, luminance) and the files skipped."""

    positions: list[int]
    labels: list[int]
    grey: bool
    histograms: np.ndarray
    skipped: list[str]


def read_notes(folder: Path, part: str) -> Notes:
    kept, histograms, skipped = [], np.zeros((4, 256), np.int64), []
    for path in sorted((folder / "notes" / part).glob("*.json")):
        note = json.loads(path.read_text())
        kept += note["kept"]
        histograms += np.asarray(note["histogram"], np.int64)
        skipped += note["skipped"]
    return Notes([k[0] for k in kept], [k[1] for k in kept], all(k[2] for k in kept), histograms, skipped)


def is_whole(folder: Path, parts: Iterable[str]) -> bool:
    """Whether ``folder`` holds every part's index (written last by litdata) and notes."""
    return all((folder / part / "index.json").is_file() and (folder / "notes" / part).is_dir() for part in parts)


def as_rgb(pixels: Any) -> np.ndarray:
    """(side, side, 3) uint8 pixels of a picture given as (side, side), (side, side, 1) or (side, side, 3) pixels."""
    pixels = np.asarray(pixels, dtype=np.uint8)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    return np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels[..., :3]


def rgb_item(item: dict) -> tuple[np.ndarray, int]:
    """StreamingDataset's transform: an item's (side, side, 3) pixels and its label."""
    return as_rgb(item["image"]), int(item["label"])


class ToPictures:
    """The loader's collate function: a batch of items as the in-memory path's (N, C, S, S) uint8 pictures and their
    labels, made greyscale (or not) for the whole batch at once: per picture it cost a sixth of the training speed."""

    def __init__(self, channels: int) -> None:
        self.channels = channels

    def __call__(self, items: list[tuple[np.ndarray, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = np.stack([pixels for pixels, _ in items])
        return torch.from_numpy(to_channels(pixels, self.channels)), torch.tensor([label for _, label in items])


# Object stores that cannot be reached are tried a few times, not LitData's thousand times with backoff.
S3_RETRIES = {"connect_timeout": 10, "read_timeout": 60, "retries": {"max_attempts": 3, "mode": "standard"}}
NO_CREDENTIALS = ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError", "DefaultCredentialsError")


def open_part(place: str, part: Optional[str] = None, missing_ok: bool = False, **options: Any) -> Any:
    """LitData's StreamingDataset of the optimized folder ``place`` (or its ``part``), local or at a URL; None for a
    missing part where ``missing_ok``. A store that refuses or cannot be reached is one line that says why."""
    where = f"{place.rstrip('/')}/{part}" if part else place
    local = "://" not in where
    if local and not (Path(where) / "index.json").is_file():
        if missing_ok:
            return None
        raise UserError(f"{where} is not a folder written by litdata.optimize (it has no index.json).")
    storage = {}
    if where.startswith("s3://"):
        import botocore.config  # LitData's own dependency, for its S3 client

        storage = {"config": botocore.config.Config(**S3_RETRIES)}
    try:
        return litdata().StreamingDataset(where, storage_options=storage, **options)
    except UserError:
        raise
    except Exception as error:  # noqa: BLE001 - each store's SDK has its own exceptions; all become one line
        name, text = type(error).__name__, str(error).splitlines()[0] if str(error) else type(error).__name__
        if name in NO_CREDENTIALS:
            raise UserError(f"no credentials to read {where} ({text}): for s3:// set AWS_ACCESS_KEY_ID and "
                            "AWS_SECRET_ACCESS_KEY or AWS_PROFILE; for gs:// GOOGLE_APPLICATION_CREDENTIALS.") from None
        if missing_ok and ("404" in text or "NoSuchKey" in text or "Not Found" in text or isinstance(error, FileNotFoundError)):
            return None
        raise UserError(f"cannot read {where} ({name}: {text}); check the URL, the network and your access to it.") from None


def streaming_loader(dataset: Any, batch_size: int, drop_last: bool = False, collate_fn: Optional[Callable] = None) -> Any:
    """The loader of a streamed part (streamed_loader.py), in this process: no workers, reading the chunks is
    not the bottleneck (28,000 pictures of 64x64 a second on one core). Lightning keeps its position in
    each checkpoint."""
    litdata()  # one line saying what to install, where LitData is missing
    from mnist_lit.data.streamed_loader import StreamedLoader

    return StreamedLoader(dataset, batch_size=batch_size, drop_last=drop_last, collate_fn=collate_fn)


class StreamedPictures:
    """One part of a streamed set: the place of its chunks (a folder or a URL), and the labels and files of its
    pictures (in the notes' order, not the chunks', which only counts and the record need)."""

    def __init__(self, place: Union[str, Path], labels: torch.Tensor, files: list[str], channels: int) -> None:
        self.place, self.labels, self.files, self.channels = str(place), labels, files, channels

    def __len__(self) -> int:
        return len(self.labels)

    def loader(self, batch_size: int, shuffle: bool = False, seed: int = 0, drop_last: bool = False) -> Any:
        """Batches of pictures and labels, in the chunks' order or shuffled chunk by chunk (``seed`` and the epoch)."""
        dataset = open_part(self.place, shuffle=shuffle, seed=seed, drop_last=drop_last, transform=rgb_item)
        return streaming_loader(dataset, batch_size, drop_last, collate_fn=ToPictures(self.channels))

    def batches(self, size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The pictures and labels in batches of ``size``, in the chunks' order."""
        yield from self.loader(size)

    def pictures(self, indices: torch.Tensor) -> torch.Tensor:
        """The pictures at ``indices`` of the chunks' order."""
        dataset = open_part(self.place, transform=rgb_item)
        return ToPictures(self.channels)([dataset[int(index)] for index in indices])[0]
