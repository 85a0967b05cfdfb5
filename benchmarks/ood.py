"""How well scores tell a checkpoint's own kind of picture from others: AUROC and FPR at 95% TPR per proxy set.

    python benchmarks/ood.py --ckpt_path checkpoints/version_0/last.ckpt

In-distribution: the set's 10,000 test pictures. Proxies: another set's test pictures (Fashion-MNIST
for a handwriting model, MNIST for the others), uniform noise, and, for greyscale sets, drawings
that are not digits (tests/helpers/not_digits.py: scribbles, letters, smileys, squares, single lines) read
through the same preprocessing as `predict`. None of them is what `fit` trains on as outliers
(outliers.py makes its own tangles and noise). Scores, higher meaning less like the set: energy
(the one mnist-lit uses), 1 - the top probability, the Mahalanobis distance of the penultimate
features to the nearest class mean (Lee et al. 2018) and the cosine distance to the 50th nearest
training picture's features (Sun et al. 2022). Then the coverage and the accuracy on the accepted
test pictures at the threshold `fit` stores.
"""

import argparse
import platform
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers.not_digits import KINDS, drawing  # noqa: E402

from mnist_lit.models.confidence import calibrate, energy  # noqa: E402
from mnist_lit.data.datamodule import ImageDataModule  # noqa: E402
from mnist_lit.data.sets import DATASETS  # noqa: E402
from mnist_lit.core.errors import UserError  # noqa: E402
from mnist_lit.models.predictor import load_predictor  # noqa: E402
from mnist_lit.data.builtin_files import load_builtin, resolve_data_dir  # noqa: E402

NEIGHBOURS = 50


@torch.inference_mode()
def features_and_logits(predictor, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The penultimate features (the last layer's input) and the logits, a thousand pictures at a time."""
    net, features, logits = predictor.net, [], []
    for start in range(0, len(pixels), 1000):
        penultimate = net.classifier[:-1](net.features(predictor.normalize(pixels[start : start + 1000])))
        features.append(penultimate)
        logits.append(net.classifier[-1](penultimate))
    return torch.cat(features), torch.cat(logits)


def class_gaussians(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class means and the shared covariance as a whitening matrix W (W W' = covariance⁻¹), means whitened."""
    features = features.double()
    means = torch.stack([features[labels == c].mean(dim=0) for c in range(num_classes)])
    centred = features - means[labels]
    covariance = centred.T @ centred / (len(features) - 1)
    covariance += 1e-3 * covariance.diagonal().mean() * torch.eye(len(covariance), dtype=covariance.dtype)
    whitening = torch.linalg.cholesky(torch.linalg.inv(covariance))
    return (means @ whitening).float(), whitening.float()


def area_under_roc(inside: torch.Tensor, outside: torch.Tensor) -> float:
    """The chance that an outside picture scores above an inside one (ties count half)."""
    above = (outside[:, None] > inside[None, :]).double().mean()
    tied = (outside[:, None] == inside[None, :]).double().mean()
    return float(above + tied / 2)


def drawings(predictor, kind: str, count: int, rng: np.random.Generator) -> torch.Tensor:
    pictures = []
    for _ in range(count):
        try:
            pictures.append(predictor.pixels(drawing(kind, rng)))
        except UserError:  # nothing left after preprocessing: the page says "blank" for those
            pass
    return torch.stack(pictures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt_path", required=True)
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--drawings", type=int, default=200, help="drawings of each kind")
    args = parser.parse_args()
    torch.manual_seed(0)
    predictor = load_predictor(Path(args.ckpt_path))
    spec = predictor.dataset
    data = ImageDataModule.load_from_checkpoint(args.ckpt_path, data_dir=args.data_dir, weights_only=True)
    data.setup("fit")
    data.setup("test")
    train_features, _ = features_and_logits(predictor, data.train_set.images)
    means, whitening = class_gaussians(train_features, data.train_set.labels, spec.num_classes)
    train_unit = torch.nn.functional.normalize(train_features, dim=1)
    confidence = calibrate(features_and_logits(predictor, data.val_set.images)[1], data.val_set.labels)

    def scores(features: torch.Tensor, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        unit = torch.nn.functional.normalize(features, dim=1)
        distances = torch.cdist(features @ whitening, means, compute_mode="donot_use_mm_for_euclid_dist")
        return {
            "energy": energy(logits),
            "top probability": 1 - logits.softmax(dim=1).max(dim=1).values,
            "Mahalanobis": distances.min(dim=1).values,
            f"kNN (k={NEIGHBOURS})": -(unit @ train_unit.T).topk(NEIGHBOURS, dim=1).values[:, -1],
        }

    other = "fashion_mnist" if spec.pictures == "handwriting" else "mnist"
    rng = np.random.default_rng(0)
    proxies = {
        f"{other} (test)": load_builtin(DATASETS[other], resolve_data_dir(args.data_dir), train=False)[0][:2000],
        "uniform noise": torch.randint(0, 256, (2000, *predictor.input_shape), dtype=torch.uint8),
    }
    if spec.channels == 1:
        proxies.update({f"{kind}s": drawings(predictor, kind, args.drawings, rng) for kind in KINDS})
    test_features, test_logits = features_and_logits(predictor, data.test_set.images)
    inside = scores(test_features, test_logits)
    print(f"{spec.name} checkpoint {args.ckpt_path}, on {platform.machine()}; AUROC / FPR at 95% TPR "
          f"against its {len(data.test_set):,} test pictures:")
    print("| proxy set | pictures | " + " | ".join(inside) + " |")
    print("|---|---:|" + "---:|" * len(inside))
    for proxy, pictures in proxies.items():
        outside = scores(*features_and_logits(predictor, pictures))
        cells = []
        for name, ins in inside.items():
            fpr = float((outside[name] <= torch.quantile(ins.double(), 0.95).float()).float().mean())
            cells.append(f"{area_under_roc(ins, outside[name]):.4f} / {fpr:.3f}")
        print(f"| {proxy} | {len(pictures):,} | " + " | ".join(cells) + " |")
    accepted = confidence.accepted(test_logits)
    right = test_logits.argmax(dim=1) == data.test_set.labels
    print(f"temperature {confidence.temperature:.3f}, energy threshold {confidence.threshold:.3f} (accepts "
          f"{confidence.accept:.0%} of validation pictures); test: coverage {float(accepted.float().mean()):.4f}, "
          f"accuracy on the accepted {float(right[accepted].float().mean()):.4f}, on all {float(right.float().mean()):.4f}")


if __name__ == "__main__":
    main()
