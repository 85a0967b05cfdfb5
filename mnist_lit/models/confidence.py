"""How far to trust an answer: calibrated probabilities, a score for pictures of no class, and the
answer in words. Torch alone: `predict` and `serve` use it.

- **Calibration** (temperature scaling, Guo et al. 2017): the logits are divided by one number
  fitted on the validation pictures, so that of the answers given with 90% about 90% are right.
  It never changes which class comes first.
- **Not one of the set's kinds**: the energy of the logits, -logsumexp (Liu et al. 2020), which
  is low when some class's logit stands out. The network learns to keep it high for pictures of
  no class by seeing some while it trains (outliers.py); benchmarks/ood.py compares it with the
  top probability and with distances on the network's features. A picture is accepted when its
  energy is at most the threshold that accepts ``accept`` of the validation pictures.
- **Three answers**: a class; unsure between the top two when their calibrated probabilities
  are close; or not one of the set's kinds.
"""

import argparse
from dataclasses import dataclass
from typing import Any, Optional

import torch

# 98% of the set's own validation pictures: with training in other styles (data/augment.py's restyle),
# the threshold where digits scanned, typed or drawn otherwise are accepted about as often (benchmarks/ood.py).
DEFAULT_ACCEPT = 0.98
# The top two are "close" when the first's calibrated probability leads the second's by less than this.
UNSURE_MARGIN = 0.5


@dataclass(frozen=True)
class Confidence:
    """What a checkpoint keeps to calibrate its probabilities and to tell pictures of no class."""

    temperature: float
    threshold: float  # the highest energy accepted
    accept: float  # the share of validation pictures the threshold accepts

    def record(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "threshold": self.threshold, "accept": self.accept}

    @staticmethod
    def from_record(record: Optional[dict]) -> Optional["Confidence"]:
        """The calibration a checkpoint holds; None for checkpoints written without one."""
        if not record:
            return None
        return Confidence(float(record["temperature"]), float(record["threshold"]), float(record["accept"]))

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return (logits.float() / self.temperature).softmax(dim=1)

    def accepted(self, logits: torch.Tensor) -> torch.Tensor:
        return energy(logits) <= self.threshold

    def answered(self, logits: torch.Tensor) -> torch.Tensor:
        """(N,) bool: answered with one class, neither refused nor "unsure" between the top two."""
        return self.accepted(logits) & ~unsure(self.probabilities(logits))


def energy(logits: torch.Tensor) -> torch.Tensor:
    """(N,) -logsumexp of each row of logits: lower means more like the set's own pictures."""
    return -torch.logsumexp(logits.float(), dim=1)


def unsure(probabilities: torch.Tensor) -> torch.Tensor:
    """(N,) bool: the top two (calibrated) probabilities too close to name one class."""
    top = probabilities.topk(2, dim=1).values  # every set has at least two classes
    return top[:, 0] - top[:, 1] < UNSURE_MARGIN


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature that minimizes the negative log-likelihood of ``labels`` under ``logits / T``."""
    # `validate` calls this under inference_mode, which enable_grad alone does not lift; tensors made
    # in inference mode cannot be saved for backward, hence the copies made outside it.
    with torch.inference_mode(False), torch.enable_grad():
        logits, labels = logits.float().clone(), labels.clone()
        log_t = torch.zeros((), requires_grad=True)  # log T: T stays positive
        optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=100, line_search_fn="strong_wolfe")

        def loss() -> torch.Tensor:
            optimizer.zero_grad()
            value = torch.nn.functional.cross_entropy(logits / log_t.exp(), labels)
            value.backward()
            return value

        optimizer.step(loss)
    return float(log_t.detach().exp())


def calibrate(logits: torch.Tensor, labels: torch.Tensor, accept: float = DEFAULT_ACCEPT) -> Confidence:
    """Temperature and threshold from the logits of the validation pictures and their classes.

    The threshold is the energy below which ``accept`` of them fall plus two standard errors of a
    share measured on that many pictures, so that new pictures of the set are accepted at least
    that often: on 5,000 validation pictures, the 98.4% quantile for 98%.
    """
    share = min(accept + 2 * (accept * (1 - accept) / len(labels)) ** 0.5, 1.0)
    threshold = float(torch.quantile(energy(logits).double().cpu(), share))
    return Confidence(fit_temperature(logits.cpu(), labels.cpu()), threshold, accept)


@dataclass(frozen=True)
class Answer:
    """One picture's answer: ``kind`` is "class", "unsure" or "unknown"; ``text`` says it in words."""

    kind: str
    text: str
    energy: Optional[float]


def kind_of_set(pictures: str, classes: list[str]) -> str:
    """What the set's pictures are, for "doesn't look like ...": a digit, a character, clothing, or its classes."""
    if pictures == "handwriting":
        return "a digit" if all(name.isdigit() for name in classes) else "a character"
    if pictures == "clothing":
        return "clothing"
    return "any of: " + ", ".join(classes[:5]) + (", ..." if len(classes) > 5 else "")


def answer(
    probabilities: torch.Tensor, logits: torch.Tensor, classes: list[str], confidence: Optional[Confidence],
    pictures: str, accept_all: bool = False,
) -> Answer:
    """The answer for one picture's (calibrated) ``probabilities`` and ``logits``. Without a calibration
    (checkpoints written before there was one) or with ``accept_all``, no picture is rejected."""
    score = float(energy(logits[None])[0])
    top = probabilities.topk(2)
    first, second = (classes[i] for i in top.indices.tolist())
    if confidence is not None and not accept_all and score > confidence.threshold:
        # The closest class, without its probability: a refusal that printed "96%" would read as an answer.
        return Answer("unknown", f"doesn't look like {kind_of_set(pictures, classes)} (closest: {first})", score)
    if bool(unsure(probabilities[None])[0]):
        return Answer("unsure", f"{first} or {second}?", score)
    return Answer("class", first, score)


def add_accept_all_argument(parser: argparse.ArgumentParser) -> None:
    """--accept_all, for the commands that answer (predict, serve)."""
    parser.add_argument("--accept_all", action="store_true",
                        help="always answer a class, even for pictures unlike any of the set's (no \"doesn't look like\")")
