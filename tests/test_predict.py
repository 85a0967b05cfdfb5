import csv
import json
import re
import shutil
import textwrap
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from helpers.checkpoints import save_checkpoint
from helpers.files import digit_picture
from PIL import Image, ImageDraw

from mnist_lit.__main__ import main
from mnist_lit.commands import predict as predict_command
from mnist_lit.commands.predict import expand_inputs, predict
from mnist_lit.models.confidence import Answer, answer
from mnist_lit.models.predictor import load_predictor


def run_predict(capsys, *args) -> tuple[int, list[str], list[str]]:
    with pytest.raises(SystemExit) as exit:
        main(["predict", *map(str, args)])
    captured = capsys.readouterr()
    return exit.value.code, captured.out.splitlines(), captured.err.splitlines()


def test_every_readable_picture_is_predicted_and_every_bad_one_named(capsys, tmp_path, checkpoint):
    good = digit_picture(tmp_path / "seven.png")
    (tmp_path / "notes.png").write_text("not a picture")
    Image.new("L", (50, 50), 255).save(tmp_path / "blank.png")
    Image.new("1", (15000, 15000), 0).save(tmp_path / "bomb.png")  # 225 million pixels, 27 kB
    bad = ["missing.png", "notes.png", "blank.png", "bomb.png"]
    code, out, err = run_predict(capsys, "--ckpt_path", checkpoint, good, *(tmp_path / name for name in bad))
    assert code == 1
    assert len(out) == 1 and out[0].startswith(f"{good}: ")
    assert len(err) == len(bad)
    for line, name in zip(err, bad):
        assert line.startswith(f"error: {tmp_path / name}: ")


def test_all_good_exits_zero_and_writes_csv_and_json(capsys, tmp_path, checkpoint):
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    for name in ("a.png", "b.jpg"):
        digit_picture(pictures / name)
    for output in ("out.csv", "out.json"):
        code, out, err = run_predict(capsys, "--ckpt_path", checkpoint, pictures, "--output", tmp_path / output)
        assert code == 0 and len(out) == 2 and err == []
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    records = json.loads((tmp_path / "out.json").read_text())
    assert [Path(r["path"]).name for r in rows] == [Path(r["path"]).name for r in records] == ["a.png", "b.jpg"]
    for row, record in zip(rows, records):
        assert int(row["class"]) == record["class"] == record["top"][0]["class"]
        assert row["label"] == record["label"] == str(record["class"])  # MNIST's classes are named by their digit
        assert float(row["confidence"]) == pytest.approx(record["confidence"])
        probabilities = [entry["p"] for entry in record["top"]]
        assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1 + 1e-6
    assert not list(tmp_path.glob("*.tmp"))


def test_folders_and_patterns_expand_in_order(tmp_path):
    for name in ("b.png", "a.PNG", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert list(expand_inputs([str(tmp_path)])) == [tmp_path / "a.PNG", tmp_path / "b.png"]
    assert list(expand_inputs([str(tmp_path / "*.png")])) == [tmp_path / "b.png"]
    assert list(expand_inputs([str(tmp_path / "none-*.png")])) == [tmp_path / "none-*.png"]  # reported as missing


class CountingPredictor:
    """A predictor's stand-in that records how many pictures each batch held, and when pictures are read."""

    classes = [str(digit) for digit in range(10)]

    def __init__(self, events: list) -> None:
        self.events = events

    def load_picture(self, path: Path) -> torch.Tensor:
        self.events.append("read")
        return torch.full((1, 28, 28), float(path.stem))

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        self.events.append(len(images))
        return 20 * torch.nn.functional.one_hot(images[:, 0, 0, 0].long() % 10, 10).float()

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.softmax(dim=1)

    def answer(self, probabilities: torch.Tensor, logits: torch.Tensor, accept_all: bool = False) -> Answer:
        return answer(probabilities, logits, self.classes, None, "handwriting")


def test_pictures_are_read_and_predicted_a_batch_at_a_time(tmp_path):
    events = []
    many = (tmp_path / f"{n}.png" for n in range(10_000))  # a generator: never a list of every path
    results = predict(CountingPredictor(events), many, batch_size=3)
    first = [next(results) for _ in range(4)]
    # Four results need two batches of three: the other 9,994 pictures are not read yet.
    assert events == ["read"] * 3 + [3] + ["read"] * 3 + [3]
    assert [r["class"] for r in first] == [0, 1, 2, 3] and first[3]["label"] == "3"
    rest = list(results)
    assert len(rest) == 9_996 and rest[-1]["class"] == 9_999 % 10
    assert max(event for event in events if event != "read") == 3


def test_batch_size_does_not_change_the_results(tmp_path, checkpoint):
    paths = [digit_picture(tmp_path / f"{n}.png") for n in range(5)] + [tmp_path / "missing.png"]
    predictor = load_predictor(checkpoint)
    one_by_one, all_at_once = list(predict(predictor, paths, batch_size=1)), list(predict(predictor, paths, batch_size=64))
    assert [r.get("class") for r in one_by_one] == [r.get("class") for r in all_at_once]
    assert [r.get("confidence") for r in one_by_one] == pytest.approx([r.get("confidence") for r in all_at_once][:5] + [None])
    assert "error" in one_by_one[-1] and "error" in all_at_once[-1]


class OtherModel(L.LightningModule):
    def __init__(self, width: int = 3) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(width, 1)


@pytest.mark.parametrize(
    "make",
    [
        lambda p: p.write_text("not a checkpoint") or p,
        lambda p: save_checkpoint(p, OtherModel()),
        lambda p: torch.save({"state_dict": {}, "hyper_parameters": {"hidden_units": 64}}, p) or p,
    ],
    ids=["not-a-checkpoint", "another-model", "wrong-shapes"],
)
def test_a_checkpoint_that_is_not_ours_gives_one_line(capsys, tmp_path, make):
    checkpoint = make(tmp_path / "other.ckpt")
    code, out, err = run_predict(capsys, "--ckpt_path", checkpoint, digit_picture(tmp_path / "seven.png"))
    assert code == 1 and out == []
    assert len(err) == 1 and err[0].startswith("error: ") and str(checkpoint) in err[0]


def test_output_must_be_csv_or_json(capsys, tmp_path, checkpoint):
    code, out, err = run_predict(capsys, "--ckpt_path", checkpoint, digit_picture(tmp_path / "7.png"), "--output", tmp_path / "o.txt")
    assert code == 1 and len(err) == 1 and ".csv or .json" in err[0]
    assert not (tmp_path / "o.txt").exists()


def test_the_documented_python_lines_name_the_class_of_a_picture(capsys, tmp_path, checkpoint, monkeypatch):
    readme = (Path(__file__).resolve().parents[1] / "docs" / "predict.md").read_text()
    block = re.search(r"\n(    from pathlib import Path\n    from mnist_lit\.models\.predictor .*\n(?:    .*\n)+)", readme).group(1)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "checkpoints" / "version_0").mkdir(parents=True)
    shutil.copy(checkpoint, tmp_path / "checkpoints" / "version_0" / "last.ckpt")
    digit_picture(tmp_path / "seven.png")
    exec(textwrap.dedent(block), {})
    # An answer in words: a digit, two close ones, or none (the model here is untrained).
    assert re.fullmatch(r"\d|\d or \d\?|doesn't look like a digit \(closest: \d\)", capsys.readouterr().out.strip())


def test_a_folder_of_many_pictures_is_read_in_worker_processes_with_progress_and_the_same_answers(capsys, tmp_path, checkpoint, monkeypatch):
    import mnist_lit.core.progress_lines as progress_lines
    import mnist_lit.data.decoding as decoding

    rng = np.random.default_rng(0)
    pictures = tmp_path / "many"
    pictures.mkdir()
    for n in range(300):  # more than one worker's chunk: read by two processes on two cores or more
        image = Image.new("L", (60, 80), 255)
        ImageDraw.Draw(image).line([tuple(rng.integers(5, 55, 2)), tuple(rng.integers(5, 75, 2))], fill=0, width=8)
        image.save(pictures / f"{n:03d}.png")
    (pictures / "999_damaged.png").write_bytes(b"\x89PNG not really")
    pools = []
    real_workers = decoding.workers
    monkeypatch.setattr(predict_command, "workers", lambda files: pools.append(files) or real_workers(files))
    monkeypatch.setattr(progress_lines, "SHOWN_FROM", 100)
    monkeypatch.setattr(progress_lines, "LINE_EVERY_S", 0.0)
    code, out, err = run_predict(capsys, "--ckpt_path", checkpoint, pictures, "--batch_size", "64", "--output", tmp_path / "out.json")
    assert code == 1 and pools == [301]
    in_process = list(predict(load_predictor(checkpoint), sorted(pictures.iterdir()), batch_size=64))
    records = json.loads((tmp_path / "out.json").read_text())
    assert [r.get("top") for r in records] == [r.get("top") for r in in_process] and "error" in records[-1]
    assert [line for line in err if line.startswith("error:")] == [f"error: {records[-1]['error']}"]
    assert "Predicting: 301 of 301 pictures" in err and len(out) == 300  # progress on stderr, answers alone on stdout
