import gzip
import hashlib
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from torchvision.datasets import MNIST

from mnist_lit.data.datamodule import ImageDataModule, resolve_data_dir, split_indices
from mnist_lit.data.sets import DATASETS, normalize

MNIST_SPEC = DATASETS["mnist"]
RAW_FILES = MNIST_SPEC.files.raw_files
from mnist_lit.core.errors import UserError
from mnist_lit.models.classifier import ImageClassifier


def test_normalize_maps_pixels_with_the_mean_and_std_given():
    pixels = torch.tensor([0, 255], dtype=torch.uint8)
    expected = torch.tensor([(0 - 0.25) / 0.5, (1 - 0.25) / 0.5])
    assert torch.allclose(normalize(pixels, 0.25, 0.5), expected)
    assert normalize(pixels, 0.25, 0.5).dtype == torch.float32


def test_split_is_disjoint_complete_and_repeatable():
    train, val = split_indices(100, 20, seed=7)
    assert len(train) == 80 and len(val) == 20
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(100))
    assert torch.equal(split_indices(100, 20, seed=7)[1], val)
    assert not torch.equal(split_indices(100, 20, seed=8)[1], val)


@pytest.mark.parametrize("val_size", [0, 100, 150])
def test_split_rejects_impossible_validation_sizes(val_size):
    with pytest.raises(UserError, match="val_size"):
        split_indices(100, val_size, seed=0)


def test_data_dir_comes_from_option_then_environment_then_default(monkeypatch):
    monkeypatch.delenv("MNIST_LIT_DATA_DIR", raising=False)
    assert str(resolve_data_dir(None)) == "data"
    monkeypatch.setenv("MNIST_LIT_DATA_DIR", "/somewhere")
    assert str(resolve_data_dir(None)) == "/somewhere"
    assert str(resolve_data_dir("mine")) == "mine"


def test_datamodule_batches_are_pixels_and_labels_that_the_model_normalizes(tiny_mnist):
    dm = ImageDataModule(data_dir=str(tiny_mnist), batch_size=16, eval_batch_size=7, val_size=20, download=False)
    dm.prepare_data()
    dm.setup("fit")
    images, labels = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert images.shape == (16, 1, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (16,) and labels.dtype == torch.int64
    # The network inside the model sees them standardized with the set's mean and std.
    model = ImageClassifier(dataset_info=MNIST_SPEC.record())
    seen = []
    model.net.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0]))
    model(images)
    assert torch.allclose(seen[0], normalize(images, MNIST_SPEC.mean, MNIST_SPEC.std))
    assert torch.allclose(seen[0], (images.float() / 255 - 0.1307) / 0.3081)


def test_split_sizes_and_no_sample_dropped_from_evaluation(tiny_mnist):
    dm = ImageDataModule(data_dir=str(tiny_mnist), batch_size=16, eval_batch_size=7, val_size=20, download=False)
    dm.setup("fit")
    dm.setup("test")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (80, 20, 30)
    # 20 and 30 are not multiples of 7: the last partial batch must still be evaluated.
    assert sum(len(labels) for _, labels in dm.val_dataloader()) == 20
    assert sum(len(labels) for _, labels in dm.test_dataloader()) == 30
    # Training batches all have the same shape.
    assert {len(labels) for _, labels in dm.train_dataloader()} == {16}


def test_train_and_validation_images_are_disjoint(tiny_mnist):
    dm = ImageDataModule(data_dir=str(tiny_mnist), val_size=20, download=False)
    dm.setup("fit")
    train_rows = {bytes(img.numpy()) for img in dm.train_set.images}
    val_rows = {bytes(img.numpy()) for img in dm.val_set.images}
    assert not train_rows & val_rows


def test_setup_twice_keeps_the_same_split(tiny_mnist):
    dm = ImageDataModule(data_dir=str(tiny_mnist), val_size=20, download=False)
    dm.setup("fit")
    val_images = dm.val_set.images.clone()
    dm.setup("fit")
    dm.setup("validate")
    assert torch.equal(dm.val_set.images, val_images)
    assert len(dm.train_set) == 80


def test_missing_files_without_download_give_one_clear_line(tmp_path):
    dm = ImageDataModule(data_dir=str(tmp_path), download=False)
    with pytest.raises(UserError) as error:
        dm.prepare_data()
    message = str(error.value)
    assert "\n" not in message
    for expected in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "--data.data_dir", "MNIST_LIT_DATA_DIR", str(tmp_path)):
        assert expected in message


def test_failed_download_gives_one_clear_line(tmp_path, monkeypatch):
    # Stand in for an offline machine without touching the network: fail the way torchvision does.
    from torchvision.datasets import MNIST

    def offline(self):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://x/, got:\n<urlopen error no network>\n")

    monkeypatch.setattr(MNIST, "download", offline)
    dm = ImageDataModule(data_dir=str(tmp_path))
    with pytest.raises(UserError) as error:
        dm.prepare_data()
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("Could not download MNIST (<urlopen error no network>)")
    assert "MNIST_LIT_DATA_DIR" in message


def test_present_files_are_never_downloaded(tiny_mnist, monkeypatch):
    from torchvision.datasets import MNIST

    monkeypatch.setattr(MNIST, "download", lambda self: pytest.fail("tried to download"))
    ImageDataModule(data_dir=str(tiny_mnist), val_size=20).prepare_data()


@pytest.mark.parametrize("option", ["batch_size", "eval_batch_size"])
def test_batch_sizes_must_be_positive(option):
    with pytest.raises(UserError, match=option):
        ImageDataModule(**{option: 0})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_the_digits_live_in_gpu_memory(tiny_mnist):
    import lightning as L

    data = ImageDataModule(data_dir=str(tiny_mnist), batch_size=16, val_size=20, download=False)
    data.trainer = L.Trainer(accelerator="gpu", devices=1, logger=False)
    data.setup("fit")
    assert data.train_set.images.is_cuda and data.val_set.labels.is_cuda
    images, labels = next(iter(data.train_dataloader()))
    assert images.is_cuda and labels.is_cuda and images.dtype == torch.uint8


@pytest.fixture
def local_mirror(tiny_mnist, tmp_path, monkeypatch) -> Iterator[Path]:
    """torchvision's MNIST mirrors replaced by an HTTP server on 127.0.0.1 serving the tiny files, gzipped."""
    served = tmp_path / "served"
    served.mkdir()
    resources = []
    for name in RAW_FILES:
        archive = served / f"{name}.gz"
        archive.write_bytes(gzip.compress((tiny_mnist / "MNIST" / "raw" / name).read_bytes()))
        resources.append((archive.name, hashlib.md5(archive.read_bytes()).hexdigest()))
    quiet = type("Quiet", (SimpleHTTPRequestHandler,), {"log_message": lambda *args: None})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(quiet, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(MNIST, "mirrors", [f"http://127.0.0.1:{server.server_port}/"])
    monkeypatch.setattr(MNIST, "resources", resources)  # the checksums of these files, not of the real ones
    yield tiny_mnist
    server.shutdown()
    server.server_close()


def test_missing_files_are_downloaded_through_torchvision(local_mirror, tmp_path):
    data_dir = tmp_path / "fresh"
    ImageDataModule(data_dir=str(data_dir)).prepare_data()
    for name in RAW_FILES:
        assert (data_dir / "MNIST" / "raw" / name).read_bytes() == (local_mirror / "MNIST" / "raw" / name).read_bytes()


def test_offline_download_fails_in_one_line_that_says_where_the_files_go(local_mirror, tmp_path, monkeypatch):
    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])  # the discard port: nothing listens
    with pytest.raises(UserError) as error:
        ImageDataModule(data_dir=str(tmp_path / "fresh")).prepare_data()
    message = str(error.value)
    assert "Could not download MNIST" in message and "\n" not in message
    assert f"{tmp_path / 'fresh' / 'MNIST' / 'raw'}/" in message and "MNIST_LIT_DATA_DIR" in message
