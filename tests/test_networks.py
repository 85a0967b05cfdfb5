import pytest
import torch

from mnist_lit.data.sets import DATASETS
from mnist_lit.models.classifier import ImageClassifier
from mnist_lit.models.networks import (
    BatchNormCNN,
    DigitCNN,
    LeanCNN,
    build_network,
    chosen_network,
    network_from_hparams,
)


def test_maps_images_to_one_logit_per_class():
    net = DigitCNN(10)
    assert net(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_has_the_keras_example_layer_sizes():
    # conv 1*32*9+32, conv 32*64*9+64, dense 64*5*5*128+128, dense 128*10+10
    expected = (9 * 32 + 32) + (32 * 64 * 9 + 64) + (1600 * 128 + 128) + (128 * 10 + 10)
    assert sum(p.numel() for p in DigitCNN(10).parameters()) == expected


def test_dropout_only_acts_in_training_mode():
    net = DigitCNN(10, dropout=0.5)
    x = torch.randn(4, 1, 28, 28)
    net.eval()
    assert torch.equal(net(x), net(x))
    net.train()
    torch.manual_seed(0)
    assert not torch.equal(net(x), net(x))


def test_computes_the_keras_order_relu_then_pool():
    # The network pools before its ReLUs for speed; the function must stay the Keras one.
    import torch.nn.functional as F

    net = DigitCNN(10).eval()
    conv1, conv2 = net.features[0], net.features[3]
    dense1, dense2 = net.classifier[1], net.classifier[4]
    x = torch.randn(5, 1, 28, 28)
    h = F.max_pool2d(F.relu(conv1(x)), 2)
    h = F.max_pool2d(F.relu(conv2(h)), 2)
    expected = dense2(F.relu(dense1(h.flatten(1))))
    torch.testing.assert_close(net(x), expected)


def test_the_batchnorm_network_maps_pictures_to_logits_and_normalizes_batches():
    net = BatchNormCNN(47)
    assert net(torch.randn(3, 1, 28, 28)).shape == (3, 47)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 7
    before = norms[0].running_mean.clone()
    net.eval()
    net(torch.randn(8, 1, 28, 28) + 3)
    assert torch.equal(norms[0].running_mean, before)  # evaluation does not move the statistics
    net.train()
    net(torch.randn(8, 1, 28, 28) + 3)
    assert not torch.equal(norms[0].running_mean, before)


@pytest.mark.parametrize("size", [28, 32, 64])
def test_the_lean_network_takes_every_side_and_does_a_third_of_the_keras_arithmetic(size):
    from torch.utils.flop_counter import FlopCounterMode

    def forward_flops(net: torch.nn.Module) -> int:
        with FlopCounterMode(display=False) as counter:
            assert net(torch.randn(2, 1, size, size)).shape == (2, 10)
        return counter.get_total_flops()

    lean, keras = build_network("lean_cnn", 10, size=size), build_network("keras_cnn", 10, size=size)
    assert forward_flops(lean) < 0.4 * forward_flops(keras)


def test_the_lean_network_answers_each_picture_alone_once_trained():
    # Batch normalization uses each batch's statistics in training only: in evaluation a picture's
    # logits must not depend on the pictures beside it.
    net = LeanCNN(10, hidden_units=24)
    assert [m.num_features for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)] == [16, 32, 24]
    x = torch.randn(6, 1, 28, 28)
    net.train()
    assert not torch.allclose(net(x)[:3], net(x[:3]))
    net.eval()
    torch.testing.assert_close(net(x)[:3], net(x[:3]))


def test_the_default_network_is_twice_the_keras_one_for_handwriting_and_the_keras_one_otherwise():
    widths = lambda net: [m.out_channels for m in net.modules() if isinstance(m, torch.nn.Conv2d)] + [net.classifier[1].out_features]
    for name, pictures, expected in (("mnist", "handwriting", [64, 128, 256]), ("fashion_mnist", "clothing", [32, 64, 128]),
                                     ("cifar10", "photos", [32, 64, 128])):
        model = ImageClassifier()
        model.build(DATASETS[name])
        assert DATASETS[name].pictures == pictures and widths(model.net) == expected
        assert model.hparams.net == ("wide_cnn" if pictures == "handwriting" else "keras_cnn")  # what the checkpoint keeps
    assert ImageClassifier(net="keras_cnn").hparams.net == "keras_cnn" == chosen_network("keras_cnn", "handwriting")
    assert widths(network_from_hparams({}, num_classes=10)) == [32, 64, 128]  # no name: written before networks had names
    assert widths(build_network("wide_cnn", 10, hidden_units=96)) == [64, 128, 96]


@pytest.mark.parametrize("hparams, expected", [
    ({}, DigitCNN),  # a checkpoint from before networks were a choice
    ({"net": "keras_cnn", "hidden_units": 32}, DigitCNN),
    ({"net": "batchnorm_cnn", "conv1_channels": 8}, BatchNormCNN),
    ({"net": "lean_cnn", "conv1_channels": 8}, LeanCNN),
])
def test_a_checkpoints_hyperparameters_name_its_network(hparams, expected):
    net = network_from_hparams(hparams, num_classes=10)
    assert type(net) is expected
    if "hidden_units" in hparams:
        assert net.classifier[1].out_features == 32
    if "conv1_channels" in hparams:
        assert next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d)).out_channels == 8
