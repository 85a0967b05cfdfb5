"""Batch normalization with the real pictures' statistics alone, while outliers share the pass (batch_norm.py)."""

import torch
from torch import nn

from mnist_lit.models.batch_norm import real_statistics, recompute_statistics


def layers() -> nn.Module:
    """A small network with both kinds of batch normalization, the same on every call."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 5), nn.BatchNorm1d(5))
    with torch.no_grad():
        net[1].weight.uniform_(0.5, 2)
        net[1].bias.uniform_(-1, 1)
    return net


def test_real_pictures_are_normalized_and_averaged_as_if_the_outliers_were_not_there():
    net = layers()
    real, outliers = torch.randn(16, 1, 8, 8), 50 * torch.rand(4, 1, 8, 8)  # outliers far from the real pictures
    alone = layers().train()
    expected = alone(real)
    with real_statistics(net.train(), real=16):
        mixed = net(torch.cat([real, outliers]))
    assert torch.allclose(mixed[:16], expected, atol=1e-5)
    for ours, theirs in ((net[1], alone[1]), (net[4], alone[4])):
        assert torch.allclose(ours.running_mean, theirs.running_mean, atol=1e-6)
        assert torch.allclose(ours.running_var, theirs.running_var, atol=1e-5)
        assert ours.momentum == 0.1 and not ours._forward_hooks  # the layers as they were
    # Gradients reach the weights through the outliers' rows too.
    mixed[16:].sum().backward()
    assert net[0].weight.grad.abs().sum() > 0


def test_a_network_in_evaluation_or_without_outliers_is_left_alone():
    net = layers()
    pictures = torch.randn(8, 1, 8, 8)
    net.eval()
    with real_statistics(net, real=4):
        inside = net(pictures)
    assert torch.equal(inside, net(pictures))


def test_timm_batch_norm_with_its_activation_treats_the_outliers_as_the_real_rows():
    from timm.layers import BatchNormAct2d

    torch.manual_seed(0)
    layer = BatchNormAct2d(3, act_layer=nn.ReLU).train()
    real, outliers = torch.randn(8, 3, 4, 4), 5 * torch.randn(4, 3, 4, 4)
    with real_statistics(layer, real=8):
        mixed = layer(torch.cat([real, outliers]))
    mean, variance = real.mean(dim=(0, 2, 3), keepdim=True), real.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    expected = torch.relu((outliers - mean) / torch.sqrt(variance + layer.eps))  # weight 1, bias 0, then the activation
    assert torch.allclose(mixed[8:], expected, atol=1e-5)


def test_recomputed_statistics_are_those_of_the_pictures_given_and_the_network_is_left_as_it_was():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Dropout(0.5), nn.BatchNorm2d(4)).eval()
    net[2].running_mean.fill_(7.0)  # what averaging over shifted training batches left
    pictures = torch.randn(3, 16, 1, 8, 8) + 2
    recompute_statistics(net, pictures)  # three batches of sixteen
    features = net[0](pictures.reshape(48, 1, 8, 8)).detach()  # dropout is off: what evaluation normalizes
    assert torch.allclose(net[2].running_mean, features.mean(dim=(0, 2, 3)), atol=1e-5)
    per_batch = features.reshape(3, 16, 4, 6, 6).transpose(1, 2).reshape(3, 4, -1).var(dim=2)  # each batch's, unbiased
    assert torch.allclose(net[2].running_var, per_batch.mean(dim=0), atol=1e-4)
    assert not net.training and not net[2].training and net[2].momentum == 0.1
