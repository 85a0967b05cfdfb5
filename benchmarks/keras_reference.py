"""The Keras MNIST CNN that mnist-lit reimplements, timed the same way, for a side-by-side.

Needs TensorFlow, which mnist-lit does not: run it from its own environment.

    python -m venv /tmp/keras-env && /tmp/keras-env/bin/pip install tensorflow-cpu
    /tmp/keras-env/bin/python benchmarks/keras_reference.py --data_dir /path/to/mnist

The classic recipe: Conv(32)-MaxPool-Conv(64)-MaxPool-Dense(128)-Dropout(0.5)-Dense(10),
Adam, batch 128, five epochs on 54,000 digits with 6,000 held out (validation_split=0.1),
EarlyStopping, ModelCheckpoint and a LearningRateScheduler. Prints the wall time from
process start, the time per epoch and the test accuracy, as benchmarks/speed.py does.
"""

import time

STARTED = time.time()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


def read_idx(path: Path) -> np.ndarray:
    """An uncompressed MNIST idx file as a numpy array."""
    data = path.read_bytes()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default=os.environ.get("MNIST_LIT_DATA_DIR", "data"),
                        help="folder holding MNIST/raw/ (as for mnist-lit)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    args = parser.parse_args()
    raw = Path(args.data_dir) / "MNIST" / "raw"
    x_train = read_idx(raw / "train-images-idx3-ubyte")[..., None].astype("float32") / 255
    y_train = read_idx(raw / "train-labels-idx1-ubyte")
    x_test = read_idx(raw / "t10k-images-idx3-ubyte")[..., None].astype("float32") / 255
    y_test = read_idx(raw / "t10k-labels-idx1-ubyte")

    import keras
    from keras import layers

    keras.utils.set_random_seed(42)
    model = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    class EpochTimes(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.first_step, self.seconds = None, []

        def on_train_batch_begin(self, batch, logs=None):
            self.first_step = self.first_step or time.time()

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.time()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.time() - self.started)

    times = EpochTimes()
    with tempfile.TemporaryDirectory() as tmp:
        callbacks = [
            keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=3),
            keras.callbacks.ModelCheckpoint(str(Path(tmp) / "best.keras"), monitor="val_accuracy", save_best_only=True),
            keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr if epoch == 0 else lr * 0.7),
            times,
        ]
        model.fit(x_train, y_train, batch_size=128, epochs=args.epochs, validation_split=0.1,
                  callbacks=callbacks, verbose=0 if args.json else 2)
        fit_wall = time.time() - STARTED
        best = keras.models.load_model(Path(tmp) / "best.keras")
    _, test_accuracy = best.evaluate(x_test, y_test, batch_size=1000, verbose=0)
    if args.json:
        print(json.dumps({"keras": keras.__version__, "wall_s": fit_wall, "startup_s": times.first_step - STARTED,
                          "epoch_s": statistics.median(times.seconds), "test_acc": test_accuracy}))
        return
    print(f"keras {keras.__version__}: wall time to the end of fit {fit_wall:.1f} s, "
          f"start-up {times.first_step - STARTED:.1f} s, epochs (training + validation) "
          f"{', '.join(f'{s:.1f}' for s in times.seconds)} s, test accuracy {test_accuracy:.2%}")


if __name__ == "__main__":
    main()
