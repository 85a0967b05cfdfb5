import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers.checkpoints import MNIST
from helpers.picture_sets import write_folder
from lightning.pytorch.utilities import grad_norm

import mnist_lit.data.datamodule
from mnist_lit.core.errors import UserError
from mnist_lit.data.datamodule import ImageDataModule
from mnist_lit.data.sets import DATASETS, normalize
from mnist_lit.models.classifier import ImageClassifier


def test_training_step_gives_a_finite_loss_that_reaches_every_weight():
    model = ImageClassifier(dataset_info=MNIST)
    model.trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    batch = (torch.randn(8, 1, 28, 28), torch.arange(8) % 10)
    loss = model.training_step(batch, 0)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_label_smoothing_leaves_a_loss_on_a_confident_right_answer_and_keeps_one_on_a_wrong_one():
    # A training step with the network's answers fixed: the right class 20 logits above the rest.
    labels = torch.arange(8) % 10
    confident = F.one_hot(labels, 10).float() * 20

    def loss_with(smoothing: float, logits: torch.Tensor) -> float:
        model = ImageClassifier(label_smoothing=smoothing, outlier_weight=0, dataset_info=MNIST)
        model.trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
        model.forward = lambda images: logits
        return float(model.training_step((torch.zeros(8, 1, 28, 28), labels), 0))

    assert loss_with(0.0, confident) < 1e-6
    assert loss_with(0.1, confident) > 1.0  # 0.1 of the probability belongs to the nine others
    wrong = confident.roll(1, dims=1)
    assert loss_with(0.1, wrong) > loss_with(0.1, confident) + 10


def test_learning_rate_decays_once_per_epoch():
    model = ImageClassifier(lr=0.01, lr_decay=0.5, dataset_info=MNIST)
    config = model.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert config["lr_scheduler"]["interval"] == "epoch"
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
    for _ in range(2):  # two epochs
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * 0.5**2)


@pytest.mark.parametrize(
    "bad", [{"lr": 0}, {"lr": -1e-3}, {"lr_decay": 0}, {"lr_decay": 1.5}, {"weight_decay": -1}, {"dropout": 1.0}, {"label_smoothing": 1.0}]
)
def test_impossible_hyperparameters_are_rejected(bad):
    with pytest.raises(UserError):
        ImageClassifier(**bad)


def test_fit_and_test_log_the_metrics_users_read(tiny_mnist):
    trainer = L.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    model = ImageClassifier()
    data = ImageDataModule(data_dir=str(tiny_mnist), batch_size=16, eval_batch_size=7, val_size=20, download=False)
    trainer.fit(model, data)
    logged = set(trainer.callback_metrics)
    expected = {"train/loss_epoch", "train/acc", "val/loss", "val/acc_best"}
    expected |= {f"val/{name}" for name in ("acc", "precision", "recall", "f1")}
    assert expected <= logged

    (results,) = trainer.test(model, data, verbose=False)
    assert set(results) >= {"test/acc", "test/precision", "test/recall", "test/f1", "test/loss"}
    # The module keeps no evaluation state beyond the summary metrics it logs: the report is a callback's.
    assert not hasattr(model, "test_results") and not hasattr(model, "val_confusion")


def test_the_model_learns_the_classes_of_its_data_set():
    fashion = DATASETS["fashion_mnist"].record()
    letters = DATASETS["emnist_letters"].record()
    assert ImageClassifier(dataset_info=letters)(torch.zeros(2, 1, 28, 28)).shape == (2, 26)
    model = ImageClassifier(dataset_info=fashion)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert model.hparams.dataset_info["classes"][0] == "T-shirt/top"
    assert model.dataset_info == DATASETS["fashion_mnist"] and model.hparams.dataset_info == DATASETS["fashion_mnist"].record()


class StepLosses(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(outputs["loss"].item())


def test_epoch_metrics_cover_every_step_though_logged_once_per_epoch(tiny_mnist):
    # The model hands its train metrics to Lightning once per epoch (self.log is slow), so check
    # the epoch values still summarize every step of the epoch, not just the first.
    steps = StepLosses()
    trainer = L.Trainer(
        max_epochs=2, log_every_n_steps=2, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[steps],
    )
    data = ImageDataModule(data_dir=str(tiny_mnist), batch_size=10, val_size=20, download=False)
    trainer.fit(ImageClassifier(), data)
    assert len(steps.losses) == 16  # 8 steps per epoch
    last_epoch = steps.losses[8:]
    assert trainer.callback_metrics["train/loss_epoch"].item() == pytest.approx(sum(last_epoch) / 8, rel=1e-5)
    # train/loss_step is the loss of the last step that Lightning wrote (every 2nd step).
    assert trainer.callback_metrics["train/loss_step"].item() == pytest.approx(last_epoch[-1], rel=1e-5)


class StepLearningRates(L.Callback):
    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_one_cycle_warms_up_to_lr_then_anneals_over_the_whole_run(tiny_mnist):
    rates = StepLearningRates()
    trainer = L.Trainer(
        max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[rates],
    )
    data = ImageDataModule(data_dir=str(tiny_mnist), batch_size=10, val_size=20, download=False)
    trainer.fit(ImageClassifier(lr=0.01, lr_schedule="one_cycle"), data)
    assert len(rates.rates) == 16
    peak = max(range(16), key=rates.rates.__getitem__)
    assert rates.rates[peak] == pytest.approx(0.01)
    assert 2 <= peak <= 5  # a quarter of the way through
    assert rates.rates[0] < 0.001 and rates.rates[-1] < 0.001


@pytest.mark.parametrize("batches", [2, 3, 4, 7])
def test_one_cycle_runs_of_a_few_steps_warm_up_and_anneal(tiny_mnist, batches):
    # A quarter of four steps ended torch's warm-up at step 0, which divided by zero.
    rates = StepLearningRates()
    trainer = L.Trainer(
        max_epochs=1, limit_train_batches=batches, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[rates],
    )
    data = ImageDataModule(data_dir=str(tiny_mnist), batch_size=10, val_size=20, download=False)
    if batches < 3:
        with pytest.raises(UserError, match="one_cycle needs at least 3 training steps; this run has 2"):
            trainer.fit(ImageClassifier(lr=0.01, lr_schedule="one_cycle"), data)
        return
    trainer.fit(ImageClassifier(lr=0.01, lr_schedule="one_cycle"), data)
    assert len(rates.rates) == batches and rates.rates[1] == pytest.approx(0.01)  # the peak
    assert rates.rates[0] < 0.001 and rates.rates[-1] < 0.001


def test_convolutions_stay_channels_last_through_a_checkpoint(tmp_path):
    # The layout oneDNN and cuDNN run fastest with; losing it silently costs a third of the speed.
    model = ImageClassifier(dataset_info=MNIST)
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    restored = ImageClassifier.load_from_checkpoint(tmp_path / "model.ckpt", weights_only=True)
    for net in (model.net, restored.net):
        convolutions = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
        assert len(convolutions) == 2
        assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convolutions)


def test_step_logging_can_be_switched_off(tiny_mnist):
    trainer = L.Trainer(
        max_epochs=1, log_every_n_steps=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )
    data = ImageDataModule(data_dir=str(tiny_mnist), batch_size=10, val_size=20, download=False)
    trainer.fit(ImageClassifier(), data)
    assert "train/loss_step" not in trainer.callback_metrics
    assert "train/loss_epoch" in trainer.callback_metrics


class GradientNorms(L.Callback):
    """The norm of all the gradients each step used, read after the step (they stay until the next one)."""

    def __init__(self) -> None:
        self.norms: list[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.norms.append(float(grad_norm(module, norm_type=2)["grad_2.0_norm_total"]))


@pytest.mark.parametrize("precision", ["bf16-mixed", "32-true"])
def test_gradients_are_clipped_in_either_precision(tiny_mnist, precision):
    norms = GradientNorms()
    trainer = L.Trainer(
        max_epochs=1, limit_train_batches=2, limit_val_batches=0, gradient_clip_val=1e-3, precision=precision,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, callbacks=[norms],
    )
    data = ImageDataModule(data_dir=str(tiny_mnist), batch_size=10, val_size=20, download=False)
    trainer.fit(ImageClassifier(outlier_weight=0.0), data)
    assert len(norms.norms) == 2 and all(0 < norm <= 1.001e-3 for norm in norms.norms)


class DivergesInTheSecondEpoch(ImageClassifier):
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = super().forward(images)
        return logits * float("nan") if self.training and self.current_epoch == 1 else logits


def test_a_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(tiny_mnist, tmp_path):
    folder = tmp_path / "checkpoints"
    checkpoints = L.pytorch.callbacks.ModelCheckpoint(folder, monitor="val/acc", mode="max", save_last=True)
    trainer = L.Trainer(
        max_epochs=3, logger=False, callbacks=[checkpoints], enable_progress_bar=False, enable_model_summary=False
    )
    data = ImageDataModule(data_dir=str(tiny_mnist), batch_size=10, val_size=20, download=False)
    with pytest.raises(UserError, match="loss became nan or inf in epoch 2.*checkpoints of earlier epochs are intact"):
        trainer.fit(DivergesInTheSecondEpoch(), data)
    last = torch.load(folder / "last.ckpt", weights_only=True)
    assert last["epoch"] == 0
    assert all(torch.isfinite(weights).all() for weights in last["state_dict"].values())
    assert sorted(p.name for p in folder.iterdir()) == ["epoch=0-step=8.ckpt", "last.ckpt"]


@pytest.mark.parametrize(
    "outlier_weight, outliers, trained_with",
    [(0.5, "auto", True), (0.5, "none", False), (0.0, "auto", False)],
)
def test_outliers_are_drawn_only_for_a_model_that_trains_with_them(tiny_mnist, monkeypatch, outlier_weight, outliers, trained_with):
    # Drawing them takes about a second of a run's start, which a model that ignores them should not wait for.
    drawn = []
    real = mnist_lit.data.datamodule.synthetic_outliers
    monkeypatch.setattr(mnist_lit.data.datamodule, "synthetic_outliers", lambda *args, **kwargs: drawn.append(args) or real(*args, **kwargs))
    trainer = L.Trainer(
        max_epochs=1, limit_train_batches=2, limit_val_batches=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )
    data = ImageDataModule(data_dir=str(tiny_mnist), batch_size=10, val_size=20, download=False, outliers=outliers)
    model = ImageClassifier(outlier_weight=outlier_weight)
    trainer.fit(model, data)
    assert (model.outliers is not None) == trained_with == bool(drawn)
    if trained_with:
        assert model.outliers.shape == (4096, 1, 28, 28) and model.outliers.dtype == torch.uint8


def test_pictures_of_no_class_for_large_pictures_are_drawn_small_and_kept_within_their_budget(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_LIT_CACHE_DIR", str(tmp_path / "cache"))
    data = ImageDataModule(dataset=str(write_folder(tmp_path / "shapes", 4)), image_size=224, channels=3, outliers="synthetic")
    data.setup("fit")
    drawn = data.outlier_pictures()
    assert drawn.shape[1:] == (3, 224, 224) and drawn.dtype == torch.uint8
    assert drawn.numel() <= 2**28 and len(drawn) > 1000  # 256 MB at most, and still many
    assert drawn.float().std() > 10  # drawn, not blank


def test_recomputed_batch_norm_statistics_in_the_checkpoint_are_those_of_the_training_pictures_as_read(tiny_mnist, tmp_path):
    # Trained on pictures all redrawn in other styles: the running statistics alone would be theirs.
    trainer = L.Trainer(
        max_epochs=1, logger=False, callbacks=[L.pytorch.callbacks.ModelCheckpoint(tmp_path / "checkpoints", save_last=True)],
        enable_progress_bar=False, enable_model_summary=False,
    )
    data = ImageDataModule(data_dir=str(tiny_mnist), batch_size=10, val_size=20, download=False, augment_style=1.0)
    trainer.fit(ImageClassifier(net="batchnorm_cnn", recompute_batch_norm=True), data)
    model = ImageClassifier.load_from_checkpoint(tmp_path / "checkpoints" / "last.ckpt", weights_only=True).eval()
    pictures = torch.cat(data.own_pictures(10_000))
    assert len(pictures) == len(data.train_set) == 80
    convolution, batch_norm = model.net.features[0][:2]
    with torch.no_grad():
        features = convolution(normalize(pictures, model.mean, model.std))
    assert torch.allclose(batch_norm.running_mean, features.mean(dim=(0, 2, 3)), atol=1e-4)
