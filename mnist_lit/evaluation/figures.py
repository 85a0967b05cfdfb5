"""The evaluation's pictures: the confusion matrix, the most confident mistakes and the reliability diagram.

Plain matplotlib Figures (no pyplot state), so they can be saved as PNG files and handed to
TensorBoard's ``add_figure`` alike.
"""

from typing import Optional

import torch
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure


def confusion_matrix_figure(confusion: torch.Tensor, title: str, classes: list[str]) -> Figure:
    """Rows (true classes) normalized to fractions, every non-zero cell annotated with its count and share
    (up to 20 classes; beyond, the cells are too small to write in).

    The colours are on a log scale: with 99% on the diagonal, a linear scale would paint every
    mistake the same white, and mistakes are what a reader looks for.
    """
    counts = confusion.long().cpu()
    fractions = counts.double() / counts.sum(dim=1, keepdim=True).clamp(min=1)
    num_classes = len(counts)
    smallest = 1 / max(counts.sum(dim=1).max().item(), 1)  # one image of the largest class

    # Fixed margins: a layout engine would double the drawing time, which `fit` pays every epoch.
    scale = max(1.0, num_classes / 12)  # more classes, a larger canvas
    figure = Figure(figsize=(8.5 * scale, 7.5 * scale))
    axes = figure.add_axes((0.13, 0.14, 0.73, 0.8))
    masked = torch.where(counts > 0, fractions, torch.nan).numpy()  # empty cells stay white
    image = axes.imshow(masked, cmap="Blues", norm=LogNorm(vmin=smallest, vmax=1))
    colorbar = figure.colorbar(image, cax=figure.add_axes((0.87, 0.18, 0.025, 0.66)))
    colorbar.set_label("share of the true class (log scale)")
    # Percent labels at the decades, as in the cells. Matplotlib's own log ticks (minor ticks,
    # 10^-3-style labels) cost 30 of the 180 ms the picture took, which `fit` pays every epoch.
    decades = [10.0**-exponent for exponent in range(5) if 10.0**-exponent >= smallest]
    colorbar.set_ticks(decades, labels=[f"{100 * decade:g}%" for decade in decades])
    colorbar.minorticks_off()
    annotated = range(num_classes) if num_classes <= 20 else range(0)
    for true in annotated:
        for predicted in annotated:
            count = counts[true, predicted].item()
            if count == 0:
                continue
            share = fractions[true, predicted].item()
            colour = "white" if share > 0.3 else "black"
            axes.text(predicted, true, f"{count:,}\n{share:.1%}", ha="center", va="center", fontsize=7, color=colour)
    ticks = range(num_classes)
    long_names = max(len(name) for name in classes) > 2
    axes.set_xticks(ticks, labels=classes, rotation=45 if long_names else 0, ha="right" if long_names else "center")
    axes.set_yticks(ticks, labels=classes)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(f"{title}: {counts.trace().item():,} of {counts.sum().item():,} correct")
    return figure


def mistakes_figure(
    mistakes: dict[str, torch.Tensor], shown: int, classes: list[str], columns: int = 8, light_on_dark: bool = True
) -> Figure:
    """A grid of the ``shown`` most confident mistakes, each titled "true → predicted" with the confidence.

    ``mistakes`` is ``ConfidentMistakes.compute()``: pictures (N, C, H, W), targets, preds and
    confidences, most confident first. Greyscale pictures stored ``light_on_dark`` (MNIST's) are
    shown dark on white, as drawings and catalogue photos are usually seen.
    """
    total = len(mistakes["targets"])
    count = min(shown, total)
    rows = max(1, -(-count // columns))
    figure = Figure(figsize=(1.4 * columns, 1.8 * rows + 0.6), layout="constrained")
    figure.suptitle(f"The {count} most confident of {total:,} mistakes (true → predicted, confidence)")
    for index, axes in enumerate(figure.subplots(rows, columns, squeeze=False).flat):
        axes.set_axis_off()
        if index >= count:
            continue
        picture = mistakes["images"][index].float()
        if len(picture) == 3:
            axes.imshow((picture.permute(1, 2, 0) / 255).clamp(0, 1).numpy())
        else:
            axes.imshow(picture[0].numpy(), cmap="gray_r" if light_on_dark else "gray", vmin=0, vmax=255)
        true, predicted = classes[mistakes["targets"][index].item()], classes[mistakes["preds"][index].item()]
        axes.set_title(f"{true} → {predicted}\n{mistakes['confidences'][index].item():.1%}", fontsize=8)
    if count == 0:
        figure.text(0.5, 0.5, "no mistakes", ha="center", va="center", fontsize=14)
    return figure


def reliability_figure(before: dict[str, torch.Tensor], after: Optional[dict[str, torch.Tensor]] = None) -> Figure:
    """The reliability diagram: per bin of top probability, how often the answers were right, before and
    after calibration (``ReliabilityBins.compute()`` results); on the diagonal, the probabilities are honest."""
    figure = Figure(figsize=(6, 5.5))
    axes = figure.add_axes((0.13, 0.12, 0.82, 0.78))
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="calibrated")
    for name, bins, style in (("before", before, "o-"), ("after", after, "s-")):
        if bins is None:
            continue
        used = bins["count"] > 0
        label = f"{name}: ECE {bins['ece'].item():.2%}" if after is not None else f"ECE {bins['ece'].item():.2%}"
        axes.plot(bins["confidence"][used].numpy(), bins["accuracy"][used].numpy(), style, markersize=4, label=label)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("top probability (mean in each of 15 bins)")
    axes.set_ylabel("share right")
    axes.set_title("Reliability" + (" before and after calibration" if after is not None else ""))
    axes.legend(loc="upper left")
    return figure
