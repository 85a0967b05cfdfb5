"""How well a checkpoint accepts its own kind of picture in other styles and refuses others, per proxy set.

    python benchmarks/ood.py --ckpt_path checkpoints/version_0/last.ckpt [--held_out] [--compare_scores]

First, at the threshold the checkpoint stores: for digits in other styles (tests/helpers/digit_styles.py;
for other greyscale sets, their own test pictures scanned and photographed) the share accepted, the
top class's accuracy and the accuracy on the accepted, the same for those answered with one class
(not "unsure" between two), with the AUROC of energy against all the sets of no class pooled; for
each set of no class the share refused, with the AUROC against the set's own test pictures. The
held-out sets (the styles ``typeset`` and ``marker``, the drawings of ``glyph``s) are left out
unless ``--held_out``: they are for the final figure of a choice, never for making it. They gave
0.13.0's (benchmarks/NOTES.md, "Things among the outliers, on a wider network"): a next choice
needs held-out sets of its own. ``photo``, ``optdigits`` (which needs scikit-learn) and the
``symbol`` drawings were held out until a choice was measured on them on 2026-12-07 (benchmarks/NOTES.md, "Things among the outliers"); they are
reported with every run since. ``--compare_scores`` adds the comparison of scores below.

In-distribution: the set's 10,000 test pictures. Proxies: another set's test pictures (Fashion-MNIST
for a handwriting model, MNIST for the others), for greyscale sets also as PNG files read as
`predict` reads them (cropped to the ink, centred, stretched), uniform noise, and, for greyscale
sets, drawings that are not digits (tests/helpers/not_digits.py: scribbles, letters, smileys,
squares, single lines, pictographs) read through the same preprocessing. None of them is drawn by
the code that makes `fit`'s outliers (outliers.py), though letters, faces, boxes and filled
silhouettes are kinds it also draws. Scores (for ``--compare_scores``), higher meaning less like the set: energy (the one
mnist-lit uses), 1 - the top probability, the Mahalanobis distance of the penultimate features to
the nearest class mean (Lee et al. 2018) and the cosine distance to the 50th nearest training
picture's features (Sun et al. 2022), as AUROC and the share accepted at the energy that accepts
95% of the test pictures.
"""

import argparse
import importlib.util
import platform
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers.digit_styles import digit_set, encoded  # noqa: E402
from helpers.not_digits import HELD_OUT_KINDS, KINDS, drawing  # noqa: E402

from mnist_lit.core.errors import UserError  # noqa: E402
from mnist_lit.data.builtin_files import load_builtin, resolve_data_dir  # noqa: E402
from mnist_lit.data.datamodule import ImageDataModule  # noqa: E402
from mnist_lit.data.sets import DATASETS  # noqa: E402
from mnist_lit.models.confidence import energy  # noqa: E402
from mnist_lit.models.predictor import load_predictor  # noqa: E402

NEIGHBOURS = 50
CHOICE_STYLES = ("scan", "pen")  # what options are chosen on
REPORT_STYLES = ("typed", "photo", "optdigits")  # reported while choosing
HELD_OUT_STYLES = ("typeset", "marker")  # the final figure only (--held_out)
OWN_STYLES, OWN_HELD_OUT = ("scan",), ("photo",)  # the same for the other greyscale sets (Fashion-MNIST)


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


def style_pictures(predictor, style: str, count: int, own: tuple[np.ndarray, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` pictures of ``style`` read as `predict` reads them, and their classes; ``scan`` and ``photo``
    redraw ``own`` (28x28 test pictures and classes)."""
    pictures, labels = zip(*((predictor.pixels(data), label) for data, label in digit_set(style, count, own, seed=1)))
    return torch.stack(pictures), torch.tensor(labels)


def acceptance_tables(predictor, data, proxies: dict[str, torch.Tensor], styles: tuple[str, ...], count: int) -> None:
    """At the stored threshold: digits of other styles accepted, sets of no class refused, with AUROCs."""
    confidence = predictor.confidence
    if confidence is None:
        raise SystemExit(f"{predictor.checkpoint} has no calibration: run `python -m mnist_lit calibrate` on it first.")
    test_logits = predictor.logits(predictor.normalize(data.test_set.images))
    test_energy = energy(test_logits)
    outside = {name: energy(predictor.logits(predictor.normalize(pictures))) for name, pictures in proxies.items()}
    pooled = torch.cat(list(outside.values()))
    print(f"energy threshold {confidence.threshold:.3f} (stored; accepts {confidence.accept:.0%} of the fitting pictures), "
          f"temperature {confidence.temperature:.3f}")
    print("| the set's kinds | pictures | top class right | accepted | right among the accepted | answered with one class "
          "| right among those | AUROC against no class |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    sets = {f"{predictor.dataset_info.name} test": (data.test_set.images, data.test_set.labels)}
    if styles:
        half = len(data.test_set.images) // 2  # the half of the test set `test`'s reports do not print
        own = (data.test_set.images[half:, 0].numpy(), data.test_set.labels[half:].numpy())
        sets.update({style: style_pictures(predictor, style, count, own) for style in styles})
    for name, (pictures, labels) in sets.items():
        logits = predictor.logits(predictor.normalize(pictures))
        accepted, answered = confidence.accepted(logits), confidence.answered(logits)
        right = logits.argmax(dim=1) == labels
        print(f"| {name} | {len(pictures):,} | {float(right.float().mean()):.1%} | {float(accepted.float().mean()):.1%} | "
              f"{float(right[accepted].float().mean()):.1%} | {float(answered.float().mean()):.1%} | "
              f"{float(right[answered].float().mean()):.1%} | {area_under_roc(energy(logits), pooled):.4f} |")
    print("| no class | pictures | refused | AUROC against the test pictures |")
    print("|---|---:|---:|---:|")
    for name, scores in outside.items():
        print(f"| {name} | {len(scores):,} | {float((scores > confidence.threshold).float().mean()):.1%} | "
              f"{area_under_roc(test_energy, scores):.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt_path", required=True)
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--drawings", type=int, default=200, help="drawings of each kind")
    parser.add_argument("--styled", type=int, default=500, help="digits of each style")
    parser.add_argument("--held_out", action="store_true", help="also the held-out styles: for a final figure only")
    parser.add_argument("--compare_scores", action="store_true", help="also compare energy with other scores")
    args = parser.parse_args()
    torch.manual_seed(0)
    predictor = load_predictor(Path(args.ckpt_path))
    spec = predictor.dataset_info
    data = ImageDataModule.load_from_checkpoint(args.ckpt_path, data_dir=args.data_dir, weights_only=True)
    data.setup("test")
    other = "fashion_mnist" if spec.pictures == "handwriting" else "mnist"
    rng = np.random.default_rng(0)
    others = load_builtin(DATASETS[other], resolve_data_dir(args.data_dir), train=False)[0][:2000]
    proxies = {f"{other} (test)": others}
    if spec.channels == 1:  # the same pictures as files: cropped, centred and stretched as `predict` reads them
        files = (encoded(Image.fromarray(picture[0].numpy())) for picture in others)
        proxies[f"{other} (test, as files)"] = torch.stack([predictor.pixels(data) for data in files])
    proxies["uniform noise"] = torch.randint(0, 256, (2000, *predictor.input_shape), dtype=torch.uint8)
    if spec.channels == 1:
        kinds = KINDS + (HELD_OUT_KINDS if args.held_out else ())
        proxies.update({f"{kind}s": drawings(predictor, kind, args.drawings, rng) for kind in kinds})
    digits = spec.pictures == "handwriting" and list(spec.classes) == [str(i) for i in range(10)]
    if digits:
        styles = CHOICE_STYLES + REPORT_STYLES + (HELD_OUT_STYLES if args.held_out else ())
    else:  # any other greyscale set's own test pictures, scanned or photographed
        styles = OWN_STYLES + (OWN_HELD_OUT if args.held_out else ()) if spec.channels == 1 else ()
    if "optdigits" in styles and importlib.util.find_spec("sklearn") is None:
        raise SystemExit("The optdigits style reads UCI's optdigits from scikit-learn: pip install scikit-learn")
    print(f"{spec.name} checkpoint {args.ckpt_path}, on {platform.machine()}:")
    acceptance_tables(predictor, data, proxies, styles, args.styled)
    if args.compare_scores:
        compare_scores(predictor, data, proxies, args.ckpt_path)


def compare_scores(predictor, data, proxies: dict[str, torch.Tensor], ckpt_path: str) -> None:
    """AUROC / FPR at 95% TPR of energy, the top probability, Mahalanobis and kNN distances, per proxy set."""
    spec = predictor.dataset_info
    data.setup("fit")
    train_features, _ = features_and_logits(predictor, data.train_set.images)
    means, whitening = class_gaussians(train_features, data.train_set.labels, spec.num_classes)
    train_unit = torch.nn.functional.normalize(train_features, dim=1)

    def scores(features: torch.Tensor, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        unit = torch.nn.functional.normalize(features, dim=1)
        distances = torch.cdist(features @ whitening, means, compute_mode="donot_use_mm_for_euclid_dist")
        return {
            "energy": energy(logits),
            "top probability": 1 - logits.softmax(dim=1).max(dim=1).values,
            "Mahalanobis": distances.min(dim=1).values,
            f"kNN (k={NEIGHBOURS})": -(unit @ train_unit.T).topk(NEIGHBOURS, dim=1).values[:, -1],
        }

    test_features, test_logits = features_and_logits(predictor, data.test_set.images)
    inside = scores(test_features, test_logits)
    print(f"\nAUROC / FPR at 95% TPR against its {len(data.test_set):,} test pictures ({ckpt_path}):")
    print("| proxy set | pictures | " + " | ".join(inside) + " |")
    print("|---|---:|" + "---:|" * len(inside))
    for proxy, pictures in proxies.items():
        outside = scores(*features_and_logits(predictor, pictures))
        cells = []
        for name, ins in inside.items():
            fpr = float((outside[name] <= torch.quantile(ins.double(), 0.95).float()).float().mean())
            cells.append(f"{area_under_roc(ins, outside[name]):.4f} / {fpr:.3f}")
        print(f"| {proxy} | {len(pictures):,} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
