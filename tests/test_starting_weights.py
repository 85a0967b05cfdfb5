"""Networks by name (timm's too), and where training starts: a weights file, timm's pretrained weights,
another checkpoint; the optimizer and schedule by class path."""

import dataclasses
import json

import pytest
import torch
import yaml
from helpers.checkpoints import untrained_checkpoint
from helpers.cli import run_cli
from helpers.files import digit_picture
from safetensors.torch import save_file

from mnist_lit.core.errors import UserError
from mnist_lit.data.sets import DATASETS
from mnist_lit.models.classifier import ImageClassifier
from mnist_lit.models.networks import (
    DEFAULT_NETWORK,
    build_network,
    network_from_hparams,
)

MNIST = DATASETS["mnist"]
# Five classes of greyscale pictures with their own statistics, as a user's folder of digits would be.
FIVE = dataclasses.replace(MNIST, name="five", classes=tuple("01234"), mean=(0.3,), std=(0.4,), path="/nowhere")


def started(net: str, dataset=MNIST, **options) -> ImageClassifier:
    """A model as `fit` builds it when training starts on ``dataset``."""
    model = ImageClassifier(net=net, **options)
    model.build(dataset, start=True)
    return model


def test_a_timm_network_takes_the_sets_channels_and_classes():
    net = build_network("timm/test_resnet", num_classes=5, channels=1, size=28)
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 5)
    assert build_network("timm/test_resnet", num_classes=3, channels=3, size=32)(torch.zeros(2, 3, 32, 32)).shape == (2, 3)


@pytest.mark.parametrize("name, says", [
    ("timm/no_such_model", "timm has no model 'no_such_model'"),
    ("timm/hf-hub:someone/model", "timm has no model 'hf-hub:someone/model'"),  # a hub address: no download
    ("timm/local-dir:/tmp/model", "timm has no model 'local-dir:/tmp/model'"),  # a folder: no file read
    ("resnet18", "No network 'resnet18': --model.net takes auto, wide_cnn, keras_cnn, batchnorm_cnn, lean_cnn or timm/NAME"),
])
def test_a_name_that_is_no_network_is_one_line(name, says):
    with pytest.raises(UserError, match=says.replace("(", r"\(")):
        ImageClassifier(net=name)


def test_the_sizes_of_mnist_lits_networks_are_refused_for_timms():
    with pytest.raises(UserError, match="--model.hidden_units sizes mnist-lit's own networks; timm/test_resnet takes --model.dropout alone"):
        build_network("timm/test_resnet", 10, hidden_units=64)


def test_a_checkpoint_rebuilds_its_timm_network_by_name_and_fetches_nothing(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a download would fail, and so would reading the file
    hparams = {"net": "timm/test_resnet", "pretrained": True, "weights": "/nowhere/weights.safetensors"}
    assert network_from_hparams(hparams, 10, 1, 28)(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_weights_from_a_file_fill_the_body_and_a_new_head_learns_the_sets_classes(tmp_path):
    torch.manual_seed(1)
    source = build_network("timm/test_resnet", num_classes=7, channels=1)
    path = tmp_path / "body.safetensors"
    save_file(source.state_dict(), str(path))
    model = started("timm/test_resnet", weights=str(path))
    learned = model.net.state_dict()
    body = [name for name in source.state_dict() if not name.startswith("fc.")]
    assert body and all(torch.equal(learned[name], source.state_dict()[name]) for name in body)
    assert learned["fc.weight"].shape[0] == 10  # MNIST's ten classes, not the file's seven
    # Normalized as the weights were trained (timm's test_resnet: 0.5 and 0.5), and so recorded for predict.
    assert model.dataset_info.mean == (0.5,) and model.hparams.dataset_info["std"] == [0.5]


def test_own_networks_take_the_fitting_tensors_of_a_pytorch_file(tmp_path):
    torch.manual_seed(1)
    source = build_network("keras_cnn", num_classes=10)
    torch.save(source.state_dict(), tmp_path / "digits.pt")
    model = started("keras_cnn", FIVE, weights=str(tmp_path / "digits.pt"))
    learned = model.net.state_dict()
    assert torch.equal(learned["features.0.weight"], source.state_dict()["features.0.weight"])
    assert torch.equal(learned["classifier.1.weight"], source.state_dict()["classifier.1.weight"])
    assert learned["classifier.4.weight"].shape == (5, 128)  # a new head for five classes
    assert model.dataset_info.mean == (0.3,)  # no pretrained statistics: the set's own


def test_init_from_another_checkpoint_takes_its_body_and_normalization_with_a_new_head(tmp_path):
    checkpoint = untrained_checkpoint(tmp_path / "mnist.ckpt")
    source = torch.load(checkpoint, weights_only=True)["state_dict"]
    model = started(DEFAULT_NETWORK, FIVE, init_from=str(checkpoint), hidden_units=32)
    learned = model.net.state_dict()
    assert torch.equal(learned["features.3.weight"], source["net.features.3.weight"])
    assert learned["classifier.4.weight"].shape == (5, 32)
    assert model.dataset_info.mean == MNIST.mean and model.dataset_info.std == MNIST.std
    with pytest.raises(UserError, match="is a checkpoint of another network; give the same --model.net"):
        started("batchnorm_cnn", FIVE, init_from=str(checkpoint))


@pytest.mark.parametrize("content, says", [
    (None, "No weights file at"),
    ({"weights": 1}, "holds no state_dict of tensors"),
    ({"nothing.like.this": torch.zeros(3)}, "None of the weights in .* fits the network"),
    (b"not a weights file", "is not a readable weights file"),
])
def test_a_weights_file_that_cannot_start_the_network_is_one_line(tmp_path, content, says):
    path = tmp_path / "weights.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(UserError, match=says):
        started("keras_cnn", weights=str(path))


def test_pretrained_weights_out_of_reach_say_how_to_give_a_file(monkeypatch):
    import huggingface_hub.constants

    # HF_HUB_OFFLINE=1, as huggingface_hub reads it: once, when first imported (here by an earlier test);
    # without it, the hub's retries on a machine with no network take most of a minute.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match="Could not fetch timm's pretrained weights for test_resnet .* --model.weights PATH"):
        started("timm/test_resnet", pretrained=True)
    with pytest.raises(UserError, match="--model.pretrained takes timm's published weights"):
        ImageClassifier(net="keras_cnn", pretrained=True)


@pytest.mark.parametrize("option", ["optimizer", "lr_scheduler"])
def test_an_optimizer_of_elsewhere_is_refused_before_anything_imports_it(option):
    with pytest.raises(UserError, match=f"--{option} takes a class of torch.optim"):
        ImageClassifier(**{option: {"class_path": "helpers.payload.Evil", "init_args": {}}})


def test_fit_with_a_timm_network_a_weights_file_adamw_and_cosine_then_predict_and_export(tmp_path, tiny_mnist):
    torch.manual_seed(1)
    save_file(build_network("timm/test_resnet", num_classes=10, channels=1).state_dict(), str(tmp_path / "start.safetensors"))
    run_cli(tmp_path, tiny_mnist, "fit", "--model.net", "timm/test_resnet", "--model.weights", "start.safetensors",
            "--optimizer", "AdamW", "--optimizer.lr", "0.001", "--lr_scheduler", "CosineAnnealingLR",
            "--lr_scheduler.T_max", "2", "--trainer.max_epochs", "2", "--data.val_size", "20", "--data.batch_size", "16")
    config = yaml.safe_load((tmp_path / "logs" / "version_0" / "config.yaml").read_text())
    assert config["model"]["optimizer"]["class_path"] == "torch.optim.AdamW"
    assert config["model"]["lr_scheduler"]["init_args"]["T_max"] == 2
    checkpoint = torch.load(tmp_path / "checkpoints" / "version_0" / "last.ckpt", weights_only=True)
    assert checkpoint["normalization"]["from"] == "the pretrained weights of timm/test_resnet"
    # The second epoch's rate: half way down the cosine from 0.001 (saved before the epoch's scheduler step).
    assert [group["lr"] for group in checkpoint["optimizer_states"][0]["param_groups"]] == [pytest.approx(0.0005)]
    picture = digit_picture(tmp_path / "seven.png")
    run_cli(tmp_path, tiny_mnist, "predict", str(picture), "--output", "answers.json")
    assert json.loads((tmp_path / "answers.json").read_text())[0]["kind"] in ("class", "unsure", "unknown")
    run_cli(tmp_path, tiny_mnist, "export", "--format", "onnx", "--output", "resnet.onnx")
    assert json.loads((tmp_path / "resnet.json").read_text())["normalization"]["mean"] == [0.5]


def test_backbone_finetuning_trains_the_head_first_then_the_body_at_a_lower_rate(tmp_path, tiny_mnist):
    torch.manual_seed(3)
    start = build_network("wide_cnn", num_classes=10).state_dict()  # what the default builds for digits
    torch.save(start, tmp_path / "start.pt")
    finetuning = ["--model.weights", "start.pt", "--trainer.callbacks+=BackboneFinetuning",
                  "--trainer.callbacks.unfreeze_backbone_at_epoch", "1", "--data.val_size", "20", "--data.batch_size", "16",
                  "--checkpoint.save_top_k", "-1"]  # last.ckpt every epoch, whether or not random pictures are learned
    learned = {}
    for epochs in (1, 2):
        folder = tmp_path / f"{epochs}_epochs"
        folder.mkdir()
        (folder / "start.pt").write_bytes((tmp_path / "start.pt").read_bytes())
        run_cli(folder, tiny_mnist, "fit", *finetuning, "--trainer.max_epochs", str(epochs))
        learned[epochs] = torch.load(folder / "checkpoints" / "version_0" / "last.ckpt", weights_only=True)
    first = learned[1]["state_dict"]
    assert torch.equal(first["net.features.0.weight"], start["features.0.weight"])  # the body frozen in epoch 1
    assert not torch.equal(first["net.classifier.4.weight"], start["classifier.4.weight"])  # the head trained
    assert not torch.equal(learned[2]["state_dict"]["net.features.0.weight"], start["features.0.weight"])
    head, body = learned[2]["optimizer_states"][0]["param_groups"]
    assert body["lr"] == pytest.approx(head["lr"] / 10)  # BackboneFinetuning's default ratio
