"""Whether a run's outcome comes from its pictures' source or from its random numbers: one `fit` epoch that
records every training batch, and the same batches replayed through the in-memory data module.

    python benchmarks/replay_batches.py record FOLDER --seed 0 --stream true  --data.image_size 224
    python benchmarks/replay_batches.py replay FOLDER --seed 0 --stream true  --draws 1 --data.image_size 224

``record`` trains one epoch (batches of 16) streamed or in memory and keeps its batches in
``--work``; ``replay`` trains the same network, seeded alike, on exactly those batches in that order,
after drawing ``--draws`` numbers from torch's generator (the in-memory loader's shuffle draws one,
LitData's none), so that only the dropout masks differ. Each prints the validation accuracy and the
mean loss of every 15 steps. Options after the named ones go to `fit` as they are.
"""

import argparse
import os
import tempfile
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

from mnist_lit.commands.cli import build_cli, quiet_irrelevant_messages


class RecordSteps(Callback):
    """Each training step's loss, and its batch when asked to keep them."""

    def __init__(self, keep: bool) -> None:
        self.keep, self.losses, self.batches = keep, [], []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))
        if self.keep:
            self.batches.append((batch[0].cpu().clone(), batch[1].cpu().clone()))


class Replay:
    """Recorded batches as a training loader, after ``draws`` numbers drawn from torch's generator."""

    def __init__(self, batches: list, draws: int) -> None:
        self.batches, self.draws = batches, draws

    def __iter__(self):
        for _ in range(self.draws):
            torch.empty((), dtype=torch.int64).random_()
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("record", "replay"))
    parser.add_argument("folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stream", choices=("true", "false"), default="true", help="how the recorded run read the set")
    parser.add_argument("--draws", type=int, default=0)
    parser.add_argument("--work", default="/tmp/replay-batches")
    args, fit_options = parser.parse_known_args()
    saved = Path(args.work) / f"batches-stream-{args.stream}-seed-{args.seed}.pt"
    saved.parent.mkdir(parents=True, exist_ok=True)
    folder = str(Path(args.folder).resolve())
    os.chdir(tempfile.mkdtemp())  # the run's logs and checkpoints
    quiet_irrelevant_messages()
    stream = args.stream if args.what == "record" else "false"
    cli = build_cli(["--data.dataset", folder, "--data.batch_size", "16", "--data.eval_batch_size", "16",
                     "--trainer.max_epochs", "1", "--seed_everything", str(args.seed), "--data.stream", stream,
                     *fit_options], run=False)
    steps = RecordSteps(keep=args.what == "record")
    cli.trainer.callbacks.append(steps)
    if args.what == "replay":
        batches = torch.load(saved)
        cli.datamodule.train_dataloader = lambda: Replay(batches, args.draws)
    cli.trainer.fit(cli.model, cli.datamodule)
    if args.what == "record":
        torch.save(steps.batches, saved)
    losses = steps.losses
    windows = [round(sum(losses[i : i + 15]) / len(losses[i : i + 15]), 3) for i in range(0, len(losses), 15)]
    accuracy = float(cli.trainer.callback_metrics["val/acc"])
    print(f"{args.what} stream={args.stream} seed={args.seed} draws={args.draws}: validation accuracy {accuracy:.4f}; "
          f"mean loss of every 15 steps {windows}")


if __name__ == "__main__":
    main()
