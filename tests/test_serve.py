"""`serve` as an HTTP client sees it: real servers on 127.0.0.1, started as docs/serving.md says."""

import io
import json
import os
import re
import signal
import socket
import struct
import time
import urllib.error
import urllib.request
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
import torch
from helpers.checkpoints import save_checkpoint, untrained_checkpoint
from helpers.cli import run_cli
from helpers.files import digit_picture
from helpers.server_process import (
    free_port,
    healthy,
    running_server,
    server_process,
    session_processes,
)
from PIL import Image, ImageDraw
from prometheus_client.parser import text_string_to_metric_families

from mnist_lit.commands.predict import predict
from mnist_lit.data.pictures import load_picture
from mnist_lit.data.sets import DATASETS
from mnist_lit.models.classifier import ImageClassifier
from mnist_lit.models.confidence import Confidence
from mnist_lit.models.predictor import load_predictor

pytestmark = pytest.mark.slow  # servers and commands in processes of their own
MAX_UPLOAD_MB = 0.25
MAX_MEGAPIXELS = 1.0


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    return untrained_checkpoint(tmp_path_factory.mktemp("serve") / "model.ckpt")


@pytest.fixture(scope="module")
def server(model_file) -> str:
    with running_server(model_file, "--max_upload_mb", str(MAX_UPLOAD_MB), "--max_megapixels", str(MAX_MEGAPIXELS)) as url:
        yield url


def counts(url: str) -> dict[tuple, float]:
    """GET /metrics, parsed: {(sample name, label pairs...): value}."""
    families = text_string_to_metric_families(requests.get(f"{url}/metrics").text)
    return {(sample.name, *sorted(sample.labels.items())): sample.value for family in families for sample in family.samples}


def png_bytes(image: Image.Image, format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return buffer.getvalue()


def scribble(seed: int) -> bytes:
    """A distinct dark drawing on white for each seed."""
    rng = np.random.default_rng(seed)
    image = Image.new("L", (96, 96), 255)
    ImageDraw.Draw(image).line([tuple(p) for p in rng.integers(10, 86, size=(4, 2))], fill=0, width=8)
    return png_bytes(image)


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header announces ``width`` x ``height`` pixels: a decompression bomb's first bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_a_picture_as_body_or_multipart_is_read_like_predict_reads_the_file(server, model_file, tmp_path):
    path = digit_picture(tmp_path / "seven.png")
    raw = requests.post(f"{server}/predict", data=path.read_bytes(), headers={"Content-Type": "image/png"}).json()
    with path.open("rb") as file:
        form = requests.post(f"{server}/predict", files={"picture": ("seven.png", file, "image/png")}).json()
    [offline] = predict(load_predictor(model_file), [path])

    assert raw == form
    assert raw["input"] == load_picture(path).tolist()
    assert (raw["class"], raw["label"]) == (offline["class"], offline["label"])
    assert raw["probability"] == pytest.approx(offline["confidence"], abs=1e-6)
    assert len(raw["probabilities"]) == 10 and sum(raw["probabilities"]) == pytest.approx(1, abs=1e-5)
    assert max(raw["probabilities"]) == raw["probability"]


def test_answers_are_put_in_words_as_predict_puts_them_and_accept_all_turns_rejection_off(model_file, tmp_path):
    checkpoint = torch.load(model_file, weights_only=True)
    # A calibration whose threshold no picture passes: every answer is "not one of the set's kinds".
    checkpoint["confidence"] = Confidence(temperature=2.0, threshold=-1000.0, accept=0.95).record()
    calibrated = tmp_path / "calibrated.ckpt"
    torch.save(checkpoint, calibrated)
    path = digit_picture(tmp_path / "seven.png")
    [offline] = predict(load_predictor(calibrated), [path])
    with running_server(calibrated) as url:
        said = requests.post(f"{url}/predict", data=path.read_bytes()).json()
        model = requests.get(f"{url}/info").json()["model"]
    closest = offline["closest"]["label"]
    assert said["kind"] == offline["kind"] == "unknown"
    assert said["answer"] == offline["answer"] == f"doesn't look like a digit (closest: {closest})"
    assert said["energy"] == pytest.approx(offline["energy"], abs=1e-4)
    # A refusal names no class: class, label and probability are null, the closest class has a key of its own.
    assert (said["class"], said["label"], said["probability"]) == (offline["class"], offline["label"], offline["confidence"]) == (None,) * 3
    assert said["closest"]["label"] == closest and said["closest"]["class"] == offline["closest"]["class"]
    assert said["closest"]["probability"] == pytest.approx(offline["closest"]["p"], abs=1e-6)  # calibrated: T = 2
    assert model["calibrated"] and model["rejects"]
    with running_server(calibrated, "--accept_all") as url:
        said = requests.post(f"{url}/predict", data=path.read_bytes()).json()
        assert not requests.get(f"{url}/info").json()["model"]["rejects"]
    assert said["kind"] in ("class", "unsure") and said["label"] in said["answer"]


def test_health_and_info_describe_the_model(server, model_file):
    assert requests.get(f"{server}/health").text == "ok"
    model = requests.get(f"{server}/info").json()["model"]
    assert model["dataset"] == "mnist" and model["classes"] == [str(digit) for digit in range(10)]
    # Which model answers, by file name and the digest of its weights; not where it lives on the server.
    assert model["checkpoint"] == model_file.name and model["network"] == "wide_cnn"
    assert model["weights_sha256"] == load_predictor(model_file).weights_digest and len(model["weights_sha256"]) == 12
    assert str(model_file.parent) not in requests.get(f"{server}/info").text
    assert model["mnist_lit_version"] and model["needs_key"] is False


def test_the_page_and_its_assets_come_from_the_package(server):
    front = requests.get(f"{server}/", allow_redirects=False)
    assert front.status_code == 307 and front.headers["location"] == "/ui/"
    page = requests.get(f"{server}/")
    assert page.ok and '<canvas id="pad"' in page.text and 'name="viewport"' in page.text
    for asset in ("app.js", "style.css"):
        response = requests.get(f"{server}/ui/{asset}")
        assert response.ok and response.text
        # Offline use: nothing is fetched from another site.
        assert "http://" not in response.text and "https://" not in response.text
    assert "http://" not in page.text and "https://" not in page.text


CASES = {  # name: (body, headers, status, words in the message)
    "empty body": (b"", {"Content-Type": "image/png"}, 400, "empty upload"),
    "not a picture": (b"hello, world", {"Content-Type": "text/plain"}, 415, "not an image"),
    "JSON": (b'{"pixels": [[0]]}', {"Content-Type": "application/json"}, 415, "not an image"),
    "truncated PNG": (scribble(0)[:120], {"Content-Type": "image/png"}, 400, "unreadable"),
    "decompression bomb": (png_claiming(20_000, 20_000), {"Content-Type": "image/png"}, 413, "too large"),
    "over the pixel limit": (png_bytes(Image.new("L", (1200, 1000), 255)), {"Content-Type": "image/png"}, 413, "--max_megapixels"),
    "blank picture": (png_bytes(Image.new("L", (64, 64), 230)), {"Content-Type": "image/png"}, 422, "blank"),
    "over the size limit": (b"\xff" * int(2 * MAX_UPLOAD_MB * 2**20), {"Content-Type": "image/png"}, 413, "--max_upload_mb"),
    "form without a file": (b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--b--\r\n",
                            {"Content-Type": "multipart/form-data; boundary=b"}, 400, "no file"),
    "broken form": (b"--b\r\nnonsense", {"Content-Type": "multipart/form-data; boundary=b"}, 400, "multipart"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gets_a_4xx_with_one_line_and_the_server_stays_up(server, case):
    body, headers, status, words = CASES[case]
    response = requests.post(f"{server}/predict", data=body, headers=headers)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert words in detail and "\n" not in detail
    assert healthy(server)
    assert requests.post(f"{server}/predict", data=scribble(1)).ok


def test_an_oversized_upload_without_a_length_is_refused_while_it_arrives(server):
    chunks = (b"\0" * 65536 for _ in range(int(4 * MAX_UPLOAD_MB * 16)))  # sent chunked: no Content-Length
    response = requests.post(f"{server}/predict", data=chunks)
    assert response.status_code == 413 and "--max_upload_mb" in response.json()["detail"]


def test_an_oversized_upload_gets_its_413_with_pythons_own_client(server):
    # urllib writes the whole body before it reads the answer: a server that answered and closed
    # while 60 MB were still arriving would reset the connection under it.
    request = urllib.request.Request(f"{server}/predict", data=b"\xff" * (60 * 2**20), headers={"Content-Type": "image/png"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=120)
    assert refused.value.code == 413
    assert "--max_upload_mb" in json.loads(refused.value.read())["detail"]
    assert healthy(server)


def test_a_server_with_a_key_answers_pictures_only_to_requests_that_carry_it(model_file, monkeypatch):
    monkeypatch.setenv("MNIST_LIT_TEST_KEY", "open sesame")
    # On every interface, as a server that needs a key would be; with the key there is nothing to warn about.
    with server_process(model_file, "--api_key_env", "MNIST_LIT_TEST_KEY", "--host", "0.0.0.0") as (process, url):
        assert requests.get(f"{url}/health").text == "ok"  # open to load balancers
        assert requests.get(f"{url}/info").json()["model"]["needs_key"] is True
        assert requests.get(f"{url}/").ok
        for wrong in ({}, {"X-API-Key": "open"}, {"Authorization": "Bearer open sesam"}, {"Authorization": "open sesame"}):
            refused = requests.post(f"{url}/predict", data=scribble(4), headers=wrong)
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
            assert "X-API-Key" in refused.json()["detail"] and "\n" not in refused.json()["detail"]
        for right in ({"X-API-Key": "open sesame"}, {"Authorization": "Bearer open sesame"}):
            assert requests.post(f"{url}/predict", data=scribble(4), headers=right).json()["kind"] in ("class", "unsure", "unknown")
        # A client that writes its whole body before reading still gets the 401, not a reset connection.
        request = urllib.request.Request(f"{url}/predict", data=b"\xff" * (6 * 2**20), headers={"Content-Type": "image/png"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=120)
        assert refused.value.code == 401
        process.output.seek(0)
        assert "warning" not in process.output.read()
    assert "MNIST_LIT_NO_SUCH_KEY" in serve_error("--ckpt_path", str(model_file), "--api_key_env", "MNIST_LIT_NO_SUCH_KEY")


@pytest.mark.parametrize("access_log", [True, False])
def test_each_request_gets_one_access_log_line_without_its_picture(model_file, access_log):
    # On every interface without a key (the warning is checked below), else on 127.0.0.1 as by default.
    host = ["--host", "0.0.0.0"] if access_log else []
    with server_process(model_file, *host, *([] if access_log else ["--no-access_log"])) as (process, url):
        picture = scribble(3)
        requests.post(f"{url}/predict?secret=1", data=picture)  # a picture and a query string, neither logged
        requests.post(f"{url}/predict", data=b"not a picture")
        requests.get(f"{url}/info")
        deadline = time.monotonic() + 30
        while True:  # until the last request's line is written
            process.output.seek(0)
            lines = [line for line in process.output.read().splitlines() if re.match(r"\d{4}-\d\d-\d\dT", line)]
            if not access_log or any(" GET /info " in line for line in lines) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        process.output.seek(0)
        warnings = [line for line in process.output.read().splitlines() if line.startswith("warning:")]
        # The same requests in /metrics, each counted once (/health as often as the start-up polled it).
        counted = counts(url)
    requests_by = {(route, status): value for (name, (_, route), (_, status)), value in
                   ((key, value) for key, value in counted.items() if key[0] == "mnist_lit_http_requests_total")}
    assert requests_by.pop(("/health", "200")) >= 1
    assert requests_by == {("/predict", "200"): 1, ("/predict", "415"): 1, ("/info", "200"): 1}
    refused = {key[1][1]: value for key, value in counted.items() if key[0] == "mnist_lit_uploads_refused_total"}
    assert refused == {"not_a_picture": 1}
    assert counted[("mnist_lit_pictures_predicted_total",)] == 1
    assert counted[("mnist_lit_http_request_duration_seconds_count", ("route", "/predict"))] == 2
    if not access_log:
        assert lines == [] and warnings == []  # 127.0.0.1: nothing to warn about
        return
    assert len(warnings) == 1 and "--api_key_env" in warnings[0]
    shown = [line.split()[1:4] for line in lines]
    assert ["POST", "/predict", "200"] in shown and ["POST", "/predict", "415"] in shown and ["GET", "/info", "200"] in shown
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \w+ /\S* \d{3} \d+\.\d ms", line) for line in lines), lines
    assert not any("secret" in line for line in lines)


def test_other_methods_and_paths_are_4xx(server):
    assert requests.get(f"{server}/predict").status_code == 405
    assert requests.get(f"{server}/../../etc/passwd").status_code == 404
    assert requests.get(f"{server}/ui/../serve.py").status_code == 404
    assert requests.get(f"{server}/docs").status_code == 404  # no generated API page that fetches from a CDN


def test_concurrent_clients_each_get_the_answer_to_their_own_picture(model_file):
    pictures = [scribble(seed) for seed in range(320)]
    predictor = load_predictor(model_file)
    expected = predictor.probabilities(predictor.logits(torch.stack([predictor.load_picture(p) for p in pictures])))

    def ask(index: int) -> list[float]:
        response = requests.post(f"{url}/predict", data=pictures[index], timeout=60)
        response.raise_for_status()
        return response.json()["probabilities"]

    with running_server(model_file, "--workers", "2", "--max_batch_size", "8") as url:
        with ThreadPoolExecutor(max_workers=16) as clients:
            answers = list(clients.map(ask, range(len(pictures))))
        assert healthy(url)
        # Two HTTP processes took these requests; /metrics, answered by either, counts them all.
        assert {counts(url)[("mnist_lit_pictures_predicted_total",)] for _ in range(4)} == {len(pictures)}
    assert torch.tensor(answers) == pytest.approx(expected, abs=1e-5)


def test_a_fashion_checkpoint_serves_clothing_labels(tmp_path):
    model = save_checkpoint(tmp_path / "fashion.ckpt", ImageClassifier(hidden_units=32, dataset_info=DATASETS["fashion_mnist"].record()))
    photo = Image.new("L", (120, 120), 255)
    ImageDraw.Draw(photo).rectangle((30, 20, 90, 100), fill=40)  # a dark garment on a white background
    with running_server(model) as url:
        classes = requests.get(f"{url}/info").json()["model"]["classes"]
        answer = requests.post(f"{url}/predict", data=png_bytes(photo, "JPEG")).json()
    assert classes == list(DATASETS["fashion_mnist"].classes) and "Sneaker" in classes
    assert answer["label"] == classes[answer["class"]]
    assert answer["input"] == load_picture(png_bytes(photo, "JPEG"), "clothing").tolist()


def serve_error(*args: str) -> str:
    """The output of a `serve` that must fail at start-up: one `error:` line (in this process: what is
    checked is that it fails before serving, not how a process exits)."""
    result = run_cli(Path.cwd(), Path.cwd(), "serve", *args, check=False)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines and "error: " in lines[-1], result.stderr  # argparse's "prog: error: ..." or ours
    return lines[-1]


def test_start_up_problems_are_one_line_before_any_worker_starts(tmp_path, model_file):
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    assert "notes.ckpt" in serve_error("--ckpt_path", str(tmp_path / "notes.ckpt"))
    torch.save({"state_dict": {"layer.weight": torch.zeros(3)}}, tmp_path / "other.ckpt")  # another program's
    assert "not a checkpoint of mnist-lit" in serve_error("--ckpt_path", str(tmp_path / "other.ckpt"))
    assert "--port" in serve_error("--ckpt_path", str(model_file), "--port", "80")
    assert "--host" in serve_error("--ckpt_path", str(model_file), "--host", "example.com")
    assert "--workers" in serve_error("--ckpt_path", str(model_file), "--workers", "0")
    with socket.socket() as other_program:
        other_program.bind(("127.0.0.1", free_port()))
        other_program.listen()
        taken = other_program.getsockname()[1]
        assert "--port" in serve_error("--ckpt_path", str(model_file), "--port", str(taken))


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl+C", "kill"])
def test_stopping_the_server_stops_all_its_processes(model_file, signal_number):
    with server_process(model_file, "--workers", "2") as (process, url):
        assert len(session_processes(process.pid)) >= 4  # this, HTTP processes, workers, LitServe's manager
        # Ctrl+C in a terminal reaches every process of the group; `kill` only the one.
        (os.killpg if signal_number == signal.SIGINT else os.kill)(process.pid, signal_number)
        assert process.wait(timeout=60) in (0, 1, -signal_number)
        deadline = time.monotonic() + 30
        while session_processes(process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)  # polling the observable condition: no process of the server left
        assert session_processes(process.pid) == []
