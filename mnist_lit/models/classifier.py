"""The LightningModule: loss, optimizer, learning-rate schedule, summary metrics and logging.

The network itself is a plain nn.Module chosen by name (networks.py), built for the data set the
model learns (data/sets.py): its classes, channels and picture size. The model takes uint8 pixels
and normalizes them with that set's per-channel mean and std, so a checkpoint alone says how its
input is made. The evaluation report (report.py) is a callback fed with the logits that the
steps return.
"""

import dataclasses
import math
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal, Optional

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import BaseFinetuning
from lightning.pytorch.cli import instantiate_class
from torchmetrics import MaxMetric, MeanMetric

from mnist_lit.checkpoints.reading import (
    dataset_of,
    network_weights,
    optimizer_class_trusted,
    read_checkpoint,
)
from mnist_lit.core.errors import UserError
from mnist_lit.data.datamodule import ImageDataModule
from mnist_lit.data.sets import DatasetInfo, normalize
from mnist_lit.models.batch_norm import real_statistics, recompute_statistics
from mnist_lit.models.confidence import DEFAULT_ACCEPT, Confidence, calibrate
from mnist_lit.models.metrics import summary_metrics
from mnist_lit.models.networks import (
    DEFAULT_NETWORK,
    SIZE_OPTIONS,
    NetworkName,
    body_of,
    build_network,
    check_network_name,
    chosen_network,
    network_name,
)
from mnist_lit.models.starting_weights import load_fitting, read_weights
from mnist_lit.models.timm_networks import is_timm, pretrained_normalization

# Pictures of no class added to each training batch, per picture of the batch.
OUTLIER_SHARE = 0.25
# Training pictures whose batch-norm statistics replace the running ones before each validation (recompute_batch_norm).
STATISTICS_PICTURES = 10_000
# Schedules whose steps are the optimizer's steps; the others' are epochs.
STEPPED_SCHEDULERS = ("OneCycleLR", "CyclicLR")


def schedule_name(chosen: Optional[dict[str, Any]], lr_schedule: str = "") -> str:
    """The class name of --lr_scheduler's choice, or of the model's own schedule without one."""
    if chosen:
        return str(chosen.get("class_path", "")).rsplit(".", 1)[-1]
    return "OneCycleLR" if lr_schedule == "one_cycle" else "ExponentialLR"


def check_schedule_for_finetuning(lr_schedule: str, lr_scheduler: Optional[dict[str, Any]]) -> None:
    """One line for a schedule that cannot take the parameter group BackboneFinetuning adds when it unfreezes."""
    name = schedule_name(lr_scheduler, lr_schedule)
    if name in STEPPED_SCHEDULERS:
        raise UserError(f"{name} keeps a rate for each parameter group it starts with, and BackboneFinetuning adds "
                        "the body's group later; with it, use --model.lr_schedule exponential or an epoch schedule "
                        "(--lr_scheduler CosineAnnealingLR).")


def torch_optim_class(chosen: dict[str, Any], option: str) -> dict[str, Any]:
    """``{"class_path", "init_args"}`` of an optimizer or schedule of torch.optim (or Lightning's ReduceLROnPlateau),
    a copy; one line for any other class, which a config or a checkpoint would have the model import."""
    path = str(chosen.get("class_path", ""))
    if not optimizer_class_trusted(path):
        raise UserError(f"{option} takes a class of torch.optim (e.g. AdamW, SGD; CosineAnnealingLR), not {path!r}.")
    return {"class_path": path, "init_args": dict(chosen.get("init_args") or {})}


class ImageClassifier(L.LightningModule):
    """Trains a network of networks.py with Adam and a per-epoch exponential learning-rate decay.

    Args:
        lr: Adam's learning rate in the first epoch.
        lr_decay: factor applied to the learning rate after every epoch (Keras'
            LearningRateScheduler with ``lr * lr_decay**epoch``); 1.0 keeps it constant.
            Used by the exponential schedule only.
        lr_schedule: "exponential" (the above) or "one_cycle": warm up to ``lr`` over the
            first quarter of training, then anneal towards zero, step by step (for short runs).
        weight_decay: Adam's L2 penalty.
        label_smoothing: the share of each training label's probability spread over the other classes
            (Szegedy et al. 2016): 0 (the default) is none; 0.1 is usual for photos.
        conv1_channels, conv2_channels, hidden_units, dropout: the network's sizes (every
            network takes the same four: two stage widths, a dense width (lean_cnn: its third
            convolution's), a dropout rate);
            null keeps the chosen network's own default.
        net: which network: "auto" (the default: "wide_cnn" for handwriting, "keras_cnn" for the rest),
            "keras_cnn" (the Keras example's), "wide_cnn" (the same twice as wide), "batchnorm_cnn" (the most
            accuracy), "lean_cnn" (the least work to 99% on MNIST), or "timm/NAME" for any of timm's
            models (e.g. "timm/resnet18").
        pretrained: start a timm network from timm's published weights (downloaded once into its cache);
            its input is then normalized with the mean and std those weights were trained with.
        weights: start from the weights in this file (.safetensors, .pt or .pth), for machines that
            cannot download: every tensor whose name and shape fit; a timm network's classifier is new
            when the classes differ, and its pretrained normalization is used.
        init_from: start from another mnist-lit checkpoint of the same network (e.g. the MNIST model, to
            learn a folder of one's own digits): its weights where they fit, a new classifier when the
            classes differ, and its normalization.
        recompute_batch_norm: before each validation in `fit`, set the batch-norm layers' running statistics to
            those of 10,000 of the set's own training pictures as they are read (no augmentation, no other
            styles, no outliers), under the weights as they are (batch_norm.py). Validation, the checkpoints,
            `test` and the answers then normalize pictures with statistics of pictures like them. No effect
            on a network without batch norm.
        accept: the share of the set's pictures that answers accept (confidence.py): the energy
            threshold is fitted on the validation pictures after every epoch, with the temperature
            that calibrates the probabilities, and kept in that epoch's checkpoint.
        optimizer: the optimizer instead of Adam, as ``{"class_path": ..., "init_args": {...}}`` (what
            ``--optimizer AdamW --optimizer.lr 0.001`` gives): any of torch.optim's.
        lr_scheduler: the learning-rate schedule instead of ``lr_schedule``, likewise (``--lr_scheduler
            CosineAnnealingLR --lr_scheduler.T_max 10``): any of torch.optim.lr_scheduler's, stepped every
            epoch (OneCycleLR and CyclicLR every step; OneCycleLR's ``total_steps`` is the run's own unless given).
        outlier_weight: the weight of the loss on pictures of no class (the data module's
            ``outliers``, a quarter of a batch's size added to each training batch): how far their
            answers are from every class equally likely, as in outlier exposure (Hendrycks et al. 2019).
        dataset_info: the record of the data set it learns (``DatasetInfo.record()``: name, class names,
            channels, size, mean/std...), kept in the checkpoint. Null (the default) takes it from
            the data module when training starts; a checkpoint's own is used to test or resume it.
    """

    def __init__(
        self,
        lr: float = 2e-3,
        lr_decay: float = 0.7,
        lr_schedule: Literal["exponential", "one_cycle"] = "exponential",
        weight_decay: float = 0.0,
        label_smoothing: float = 0.0,
        conv1_channels: Optional[int] = None,
        conv2_channels: Optional[int] = None,
        hidden_units: Optional[int] = None,
        dropout: Optional[float] = None,
        net: NetworkName = DEFAULT_NETWORK,
        pretrained: bool = False,
        weights: Optional[str] = None,
        init_from: Optional[str] = None,
        optimizer: Optional[dict[str, Any]] = None,
        lr_scheduler: Optional[dict[str, Any]] = None,
        outlier_weight: float = 0.5,
        recompute_batch_norm: bool = False,
        accept: float = DEFAULT_ACCEPT,
        dataset_info: Optional[dict[str, Any]] = None,
    ) -> None:
        super().__init__()
        valid = lr > 0 and 0 < lr_decay <= 1 and weight_decay >= 0 and 0 <= (dropout or 0) < 1 and 0 <= label_smoothing < 1
        if not valid or outlier_weight < 0 or not 0 < accept <= 1:
            raise UserError(
                "Need lr > 0, 0 < lr_decay <= 1, weight_decay >= 0, 0 <= label_smoothing < 1, 0 <= dropout < 1, outlier_weight >= 0 "
                f"and 0 < accept <= 1; got lr={lr}, lr_decay={lr_decay}, weight_decay={weight_decay}, label_smoothing={label_smoothing}, "
                f"dropout={dropout}, outlier_weight={outlier_weight}, accept={accept}."
            )
        check_network_name(net)
        for chosen, option in ((optimizer, "--optimizer"), (lr_scheduler, "--lr_scheduler")):
            if chosen:
                torch_optim_class(chosen, option)  # one line now for a class of elsewhere, not when training starts
        starts = [option for option, given in (("--model.pretrained", pretrained), ("--model.weights", weights),
                                               ("--model.init_from", init_from)) if given]
        if len(starts) > 1:
            raise UserError(f"{' and '.join(starts)} each name where the network starts; give one of them.")
        if pretrained and not is_timm(net):
            raise UserError(f"--model.pretrained takes timm's published weights, for --model.net timm/NAME; {net} has none "
                            "(--model.weights PATH or --model.init_from CKPT start it from weights of your own).")
        self.save_hyperparameters()
        self.dataset_info: Optional[DatasetInfo] = None
        self.normalization_source: Optional[str] = None  # where the input's mean and std came from, when trained here
        # Per class, when the data module balances the loss; a buffer, so that it moves with the model.
        self.register_buffer("loss_weights", None, persistent=False)
        self.register_buffer("outliers", None, persistent=False)  # the data module's pictures of no class
        self.val_acc_best = MaxMetric()
        self.train_loss = MeanMetric()
        # Set by any step whose loss is nan or inf. Not a buffer: DDP would broadcast it every step.
        self.loss_was_not_finite = torch.zeros((), dtype=torch.bool)
        # Fitted after each validation epoch and saved with the checkpoint; a checkpoint's own when loaded.
        self.confidence: Optional[Confidence] = None
        self._val_outputs: list[tuple[torch.Tensor, torch.Tensor]] = []
        if dataset_info is not None:  # a checkpoint's, or given: built now (load_from_checkpoint needs it)
            self.build(DatasetInfo.from_record(dataset_info))

    def build(self, dataset: DatasetInfo, start: bool = False) -> None:
        """The network and the metrics for ``dataset``'s classes and pictures. With ``start`` (training that
        begins here), from the starting weights the options name, and normalized as those weights were."""
        sizes = {key: self.hparams[key] for key in SIZE_OPTIONS}
        hparams = self.hparams
        hparams.net = chosen_network(hparams.net, dataset.pictures)  # the checkpoint names the network built
        weights = Path(hparams.weights) if start and hparams.weights else None
        network = build_network(hparams.net, dataset.num_classes, dataset.channels, dataset.size,
                                pretrained=start and hparams.pretrained, weights=weights if is_timm(hparams.net) else None,
                                **sizes)
        if start:
            dataset = self.start_from(network, dataset, weights)
        self.dataset_info = dataset
        self.hparams.dataset_info = dataset.record()  # what the checkpoint keeps, normalization included
        # Channels-last weights make every convolution run on channels-last activations, the
        # layout oneDNN and cuDNN are fastest with (1.3-1.5x for this network on a CPU).
        self.net = network.to(memory_format=torch.channels_last)
        # Not in the state_dict: the checkpoint's record holds them, and older checkpoints have no such entries.
        self.register_buffer("mean", torch.tensor(dataset.mean), persistent=False)
        self.register_buffer("std", torch.tensor(dataset.std), persistent=False)
        # One picture's pixels, which Lightning's model summary runs through the network to show
        # each layer's output size and FLOPs.
        self.example_input_array = torch.zeros(1, dataset.channels, dataset.size, dataset.size, dtype=torch.uint8)
        self.train_metrics = summary_metrics(dataset.num_classes, prefix="train/")
        self.val_metrics = summary_metrics(dataset.num_classes, prefix="val/")
        self.test_metrics = summary_metrics(dataset.num_classes, prefix="test/")

    def start_from(self, network: torch.nn.Module, dataset: DatasetInfo, weights: Optional[Path]) -> DatasetInfo:
        """Load the starting weights into ``network`` (a timm network has loaded its own); ``dataset`` with the
        normalization they were trained with."""
        hparams = self.hparams
        if weights is not None and not is_timm(hparams.net):
            load_fitting(network, read_weights(weights), str(weights))
        if (hparams.pretrained or weights is not None) and is_timm(hparams.net):
            normalization = pretrained_normalization(network, dataset.channels)
            if normalization is not None:
                self.normalization_source = f"the pretrained weights of {hparams.net}"
                return dataclasses.replace(dataset, mean=normalization[0], std=normalization[1])
        if hparams.init_from:
            source = Path(hparams.init_from)
            checkpoint = read_checkpoint(source)
            if network_name(checkpoint.get("hyper_parameters") or {}) != hparams.net:
                raise UserError(f"--model.init_from {source} is a checkpoint of another network; give the same "
                                f"--model.net as it was trained with.")
            load_fitting(network, network_weights(checkpoint), str(source))
            learned = dataset_of(checkpoint, source)
            if learned.channels != dataset.channels:
                raise UserError(f"--model.init_from {source} learned pictures of {learned.channels} channel(s), this set's "
                                f"have {dataset.channels}; start from a checkpoint of pictures like these.")
            self.normalization_source = f"the checkpoint {source}"
            return dataclasses.replace(dataset, mean=learned.mean, std=learned.std)
        return dataset

    @property
    def backbone(self) -> torch.nn.Module:
        """The network less its classifier, which Lightning's BackboneFinetuning freezes, then trains at a lower rate.
        The callback asks for it before Lightning calls configure_model: the network is built here then."""
        if self.dataset_info is None and self._trainer is not None:
            self.configure_model()
        return body_of(self.net)

    def configure_model(self) -> None:
        # Lightning calls this once the data module is set up: a model given no data set learns the data module's.
        if self._trainer is None:  # load_from_checkpoint: the checkpoint's record built it
            return
        datamodule = self.trainer.datamodule
        if not isinstance(datamodule, ImageDataModule):
            if self.dataset_info is None:
                raise UserError("ImageClassifier needs its data set: pass dataset_info, or train it with mnist-lit's ImageDataModule.")
            return
        data = datamodule.dataset_info
        if self.dataset_info is None:
            self.build(data, start=True)
        elif list(data.classes) != list(self.dataset_info.classes):
            raise UserError(
                f"The model learns {self.dataset_info.name} ({self.dataset_info.num_classes} classes) but the data module reads "
                f"{data.name} ({data.num_classes} classes); give both the same set."
            )
        weights = datamodule.loss_weights
        self.loss_weights = None if weights is None else weights.to(self.device, torch.float32)  # the buffer's value
        outliers = datamodule.outlier_pictures() if self.hparams.outlier_weight else None
        self.outliers = None if outliers is None else outliers.to(self.device)

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True, assign: bool = False):
        # Lightning loads a checkpoint's weights after the data is set up; weights of another network are one line.
        try:
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        except RuntimeError:
            raise UserError(
                "The checkpoint is not a checkpoint of mnist-lit's ImageClassifier (its weights do not fit the network its "
                "options describe); pass a .ckpt written by `fit`."
            ) from None

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 (or 0-255 float) pixels (N, C, S, S) -> logits (N, num_classes)."""
        return self.net(normalize(pixels, self.mean, self.std))

    def on_train_epoch_start(self) -> None:
        # Logged Metric objects are computed by Lightning from their whole-epoch state when the
        # epoch ends, so handing them over once here is enough. A self.log call costs about
        # 0.6 ms on a CPU, which per step would add up to a tenth of the training time.
        self.log("train/loss_epoch", self.train_loss, on_step=False, on_epoch=True)
        self.log_dict(self.train_metrics, on_step=False, on_epoch=True)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        count = len(images)
        if self.outliers is not None:  # one pass through the network for both
            pick = torch.randint(len(self.outliers), (max(1, round(OUTLIER_SHARE * count)),), device=images.device)
            images = torch.cat([images, self.outliers[pick]])
        # Batch normalization with the real pictures' statistics alone (batch_norm.py).
        with real_statistics(self.net, count) if len(images) > count else nullcontext():
            logits = self(images)
        logits, outlier_logits = logits[:count], logits[count:]
        # float32 logits when weighted: the weights are float32, and bf16 logits would not match them.
        loss = F.cross_entropy(logits if self.loss_weights is None else logits.float(), labels, weight=self.loss_weights,
                               label_smoothing=self.hparams.label_smoothing)
        if len(outlier_logits):
            # How far the outliers' answers are from every class equally likely: the cross-entropy
            # against the uniform distribution less its least value, log(classes), so that it is 0
            # there (a KL divergence).
            spread = -outlier_logits.float().log_softmax(dim=1).mean(dim=1) - math.log(logits.shape[1])
            loss = loss + self.hparams.outlier_weight * spread.mean()
        self.train_loss.update(loss.detach())
        self.train_metrics.update(logits, labels)
        # Reading the flag is a device sync, so it is read only where Lightning syncs anyway: at
        # the logged steps, and before any checkpoint can be written (validation, epoch end).
        self.loss_was_not_finite |= ~torch.isfinite(loss.detach())
        # Lightning writes step values every `log_every_n_steps` steps; only those need handing over.
        every = self.trainer.log_every_n_steps
        if every and (self.global_step + 1) % every == 0:
            self._stop_if_loss_was_not_finite()
            self.log("train/loss_step", loss, on_step=True, on_epoch=False)
        return loss

    def on_train_start(self) -> None:
        # The sanity check has already fed validation batches to this metric; start afresh.
        self.val_acc_best.reset()
        self.loss_was_not_finite = torch.zeros((), dtype=torch.bool, device=self.device)

    def on_validation_start(self) -> None:
        self._stop_if_loss_was_not_finite()

    def on_train_epoch_end(self) -> None:
        self._stop_if_loss_was_not_finite()  # runs before the checkpoint callbacks' own epoch end

    def _stop_if_loss_was_not_finite(self) -> None:
        # Raising (rather than trainer.should_stop) ends the run before any checkpoint is written,
        # so the checkpoints of the earlier epochs stay the last ones on disk.
        if self.loss_was_not_finite.item():
            raise UserError(
                f"The training loss became nan or inf in epoch {self.current_epoch + 1}; training stopped without "
                "saving these weights, so the checkpoints of earlier epochs are intact. "
                "Lower --model.lr, or try --trainer.precision 32-true."
            )

    # The evaluation steps return their logits for the callbacks that look closer (report.py).
    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        self.val_metrics.update(logits, labels)
        # sync_dist: in a multi-process run, the mean over every process's pictures (synced once, at epoch end).
        self.log("val/loss", F.cross_entropy(logits, labels), sync_dist=True)
        self.log_dict(self.val_metrics)
        self._val_outputs.append((logits.detach().float(), labels))
        return logits

    def on_validation_epoch_start(self) -> None:
        self._val_outputs = []
        fitting = self.trainer.state.fn == "fit" and not self.trainer.sanity_checking
        datamodule = self.trainer.datamodule
        if self.hparams.recompute_batch_norm and fitting and isinstance(datamodule, ImageDataModule):
            # In the precision training runs at: the statistics of the activations training normalizes.
            with self.trainer.precision_plugin.forward_context():
                pictures = datamodule.own_pictures(STATISTICS_PICTURES)
                batches = (normalize(batch.to(self.device), self.mean, self.std) for batch in pictures)
                recompute_statistics(self.net, batches)

    def on_validation_epoch_end(self) -> None:
        self.val_acc_best.update(self.val_metrics["acc"].compute())
        best = self.val_acc_best.compute()
        self.log("val/acc_best", best, sync_dist=True)  # the same on every process: computed from synced metrics
        if self._val_outputs and not self.trainer.sanity_checking:
            logits, labels = (torch.cat(parts) for parts in zip(*self._val_outputs))
            if self.trainer.world_size > 1:  # every process's pictures, so that all fit the same numbers
                # torch's object gather: the processes may hold one picture more or less (data/datamodule.py's sampler).
                gathered: list = [None] * self.trainer.world_size
                torch.distributed.all_gather_object(gathered, (logits.cpu(), labels.cpu()))
                logits, labels = (torch.cat(parts) for parts in zip(*gathered))
            # Before the checkpoint callbacks save this epoch: each checkpoint has its own weights' calibration.
            self.confidence = calibrate(logits, labels, self.hparams.accept)
        self._val_outputs = []

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.confidence is not None:
            checkpoint["confidence"] = self.confidence.record()
        if self.normalization_source is not None:  # the mean and std themselves are in dataset_info
            checkpoint["normalization"] = {"from": self.normalization_source, "mean": list(self.dataset_info.mean),
                                           "std": list(self.dataset_info.std)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.confidence = Confidence.from_record(checkpoint.get("confidence"))

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        self.test_metrics.update(logits, labels)
        self.log("test/loss", F.cross_entropy(logits, labels), sync_dist=True)
        self.log_dict(self.test_metrics)
        return logits

    def configure_optimizers(self):
        # Without what a callback froze (BackboneFinetuning): it adds them in a group of their own when it unfreezes them.
        trained = [parameter for parameter in self.parameters() if parameter.requires_grad]
        if self.hparams.optimizer:  # --optimizer
            optimizer = instantiate_class(trained, torch_optim_class(self.hparams.optimizer, "--optimizer"))
        else:
            # Fused: one kernel updates every parameter, instead of a few per parameter tensor. Under mixed
            # precision Lightning refuses to clip a fused optimizer's gradients, so clipping takes the other.
            clips = self._trainer is not None and bool(self.trainer.gradient_clip_val)
            optimizer = torch.optim.Adam(trained, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay, fused=not clips)
        if self._trainer is not None and any(isinstance(callback, BaseFinetuning) for callback in self.trainer.callbacks):
            check_schedule_for_finetuning(self.hparams.lr_schedule, self.hparams.lr_scheduler)
        if self.hparams.lr_scheduler:  # --lr_scheduler
            chosen = torch_optim_class(self.hparams.lr_scheduler, "--lr_scheduler")
            name, given = schedule_name(chosen), chosen["init_args"]
            if name == "OneCycleLR" and given.get("total_steps") is None and given.get("epochs") is None:
                given["total_steps"] = self.trainer.estimated_stepping_batches
            scheduler = instantiate_class(optimizer, chosen)
            every = "step" if name in STEPPED_SCHEDULERS else "epoch"
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": every, "monitor": "val/loss"}}
        if self.hparams.lr_schedule == "one_cycle":
            steps = self.trainer.estimated_stepping_batches
            if steps < 3:
                raise UserError(f"--model.lr_schedule one_cycle needs at least 3 training steps; this run has {steps}.")
            # A quarter of the run warms up. torch's warm-up must end after the first step (it divides by its
            # length), so a run of under 8 steps (a smoke test with --trainer.limit_train_batches) peaks at step 1.
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=self.hparams.lr, total_steps=steps, pct_start=0.25 if steps >= 8 else 2 / steps
            )
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=self.hparams.lr_decay)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}


DigitClassifier = ImageClassifier  # its name before 0.3.0: configs and checkpoints that name it keep working
