"""The decoded pictures of a folder or CSV set, kept on disk so that the next run on the same files decodes nothing.

The key is a digest of every file's path, class, size and modification time and of the decoding
options; a file that does not hold what its key promises is rebuilt, never trusted.
"""

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Optional

import platformdirs
import torch

from mnist_lit.core.atomic_files import replaced_atomically
from mnist_lit.data.decoding import DecodedPart, DecodedSet, decode_set
from mnist_lit.data.layouts import Listing, SetListing

CACHE_DIR_ENV = "MNIST_LIT_CACHE_DIR"
CACHE_VERSION = 2


def read_decoded(
    listing: SetListing, image_size: Optional[int], channels: Optional[int], resize: str, default_size: Optional[int] = None,
) -> DecodedSet:
    """The set of ``listing`` decoded, from the cache when the files and options are those it was made from.
    ``default_size``: the training headers' default side when already read (decode_set reads it otherwise)."""
    key = cache_key(listing.root, listing.parts, resize)
    cached = load_cache(listing.root, key)
    # The cache holds one decoding per folder: null options take it when it was decoded at the sizes they
    # default to, not at sizes another run asked for.
    if cached is not None and (image_size or cached.default_size, channels or cached.default_channels) == (cached.size, cached.channels):
        return cached
    del cached  # mapped from the file about to be replaced, which Windows would refuse
    decoded = decode_set(listing, image_size, channels, resize, default_size)
    save_cache(listing.root, key, decoded)
    return decoded


def cache_dir() -> Path:
    """$MNIST_LIT_CACHE_DIR, else the operating system's cache folder for mnist-lit ($XDG_CACHE_HOME/mnist-lit or
    ~/.cache/mnist-lit on Linux, ~/Library/Caches/mnist-lit on macOS, %LOCALAPPDATA%\\mnist-lit\\Cache on
    Windows): never the data set's own folder, which may be read-only or shared."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    return Path(platformdirs.user_cache_dir("mnist-lit", appauthor=False))


def cache_key(path: Path, listings: dict[str, Listing], resize: str) -> str:
    """A digest of every file's path, class, size and modification time, and of how they are fitted."""
    digest = hashlib.sha256(json.dumps([CACHE_VERSION, str(path.resolve()), resize]).encode())
    for part, listing in sorted(listings.items()):
        digest.update(part.encode())
        for file, label in zip(listing.files, listing.labels):
            stat = os.stat(file)
            digest.update(f"{file}\0{label}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def cache_file(path: Path, key: str) -> Path:
    return cache_dir() / f"{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]}-{key}.pt"


def load_cache(path: Path, key: str) -> Optional[DecodedSet]:
    """The cached decoding, or None when there is none or it does not hold what its key promises (then rebuilt)."""
    file = cache_file(path, key)
    if not file.is_file():
        return None
    try:
        # Mapped, not read: the pages come from the operating system's file cache as batches touch them,
        # and processes training on one machine (DDP) share them. The file is replaced, never rewritten
        # in place, so the mapping stays valid.
        saved = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
        decoded = DecodedSet(
            {part: DecodedPart(*arrays) for part, arrays in saved["parts"].items()},
            int(saved["size"]), int(saved["channels"]), list(saved["skipped"]),
            int(saved["default_size"]), int(saved["default_channels"]),
        )
        shape = (decoded.channels, decoded.size, decoded.size)
        for part in decoded.parts.values():
            if part.images.dtype != torch.uint8 or tuple(part.images.shape[1:]) != shape or not len(part.images) == len(part.labels) == len(part.positions):
                raise ValueError("inconsistent shapes")
        if saved["key"] != key:
            raise ValueError("another key")
        return decoded
    except Exception:  # noqa: BLE001 - a damaged or foreign cache file is rebuilt, never trusted
        return None


def save_cache(path: Path, key: str, decoded: DecodedSet) -> None:
    """Write the decoding for next time and drop older ones of the same folder; a cache that cannot be
    written only costs the next run its decoding time."""
    file = cache_file(path, key)
    try:
        with replaced_atomically(file) as temporary:
            torch.save({
                "key": key, "parts": {name: [part.images, part.labels, part.positions] for name, part in decoded.parts.items()},
                "size": decoded.size, "channels": decoded.channels, "skipped": decoded.skipped,
                "default_size": decoded.default_size, "default_channels": decoded.default_channels,
            }, temporary)
        for old in file.parent.glob(f"{file.name.split('-')[0]}-*.pt"):
            if old != file:
                old.unlink(missing_ok=True)
    except OSError as error:
        warnings.warn(f"could not cache the decoded pictures in {file.parent} ({error.strerror}); set {CACHE_DIR_ENV} to a writable folder", stacklevel=2)
