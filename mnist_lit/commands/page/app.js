// The drawing page: strokes on a canvas -> PNG -> POST /predict -> the answer in words, a bar per class, the 28x28 input.
"use strict";

const pad = document.getElementById("pad");
const ink = pad.getContext("2d");
const preview = document.getElementById("preview").getContext("2d");
const guess = document.getElementById("guess");
const confidence = document.getElementById("confidence");
const bars = document.getElementById("bars");
const status = document.getElementById("status");
const upload = document.getElementById("upload");
const results = document.getElementById("results");

const STROKE = 20;       // pixels of the 280-pixel canvas: MNIST's strokes, scaled
const THROTTLE_MS = 120; // while drawing, at most one guess this often
let classes = [];
let emptyText = "draw a digit";
let strokes = 0;         // strokes since the last Clear: none means nothing to guess
let drawing = null;      // the last point of the stroke in progress
let generation = 0;      // bumped by Clear and upload, so that older answers are dropped
let timer = null, inFlight = 0, dirty = false;  // inFlight: requests sent and not yet answered

function blank() {
  ink.fillStyle = "#000";
  ink.fillRect(0, 0, pad.width, pad.height);
}

function point(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * pad.width / box.width, (event.clientY - box.top) * pad.height / box.height];
}

function line(from, to) {
  ink.strokeStyle = "#fff";
  ink.lineWidth = STROKE;
  ink.lineCap = ink.lineJoin = "round";
  ink.beginPath();
  ink.moveTo(...from);
  ink.lineTo(...to);
  ink.stroke();
}

pad.addEventListener("pointerdown", (event) => {
  if (event.pointerType === "mouse" && event.button !== 0) return;
  pad.setPointerCapture(event.pointerId);
  drawing = point(event);
  line(drawing, drawing);
  strokes += 1;
  schedule();
});
pad.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const next = point(event);
  line(drawing, next);
  drawing = next;
  schedule();
});
for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => { drawing = null; schedule(); });
}

// Throttled, with at most one request in flight: a change made meanwhile is sent when the answer arrives.
function schedule() {
  dirty = true;
  if (!timer && !inFlight) timer = setTimeout(flush, THROTTLE_MS);
  setBusy();
}

function flush() {
  timer = null;
  if (dirty && !inFlight) {
    dirty = false;
    if (strokes) {
      inFlight += 1;  // from now: toBlob is asynchronous too
      pad.toBlob((png) => { inFlight -= 1; send(png, "image/png"); }, "image/png");
    }
    else showEmpty();
  }
  setBusy();
}

// Whether the guess shown may still change: for screen readers, and for tests to wait on.
function setBusy() {
  results.setAttribute("aria-busy", String(inFlight > 0 || dirty || timer !== null));
}

// A server started with --api_key_env answers pictures only with its key: asked for when the page
// opens (and again if the server refuses it), kept for this tab only.
const KEY_ITEM = "mnist-lit-api-key";

function askForKey() {
  const key = (window.prompt("This server needs its key to answer. Key:") || "").trim();
  if (key) sessionStorage.setItem(KEY_ITEM, key);
  return Boolean(key);
}

async function postPicture(picture, type) {
  const headers = { "Content-Type": type };
  const key = sessionStorage.getItem(KEY_ITEM);
  if (key) headers["X-API-Key"] = key;
  const response = await fetch("/predict", { method: "POST", headers, body: picture });
  if (response.status === 401) {
    sessionStorage.removeItem(KEY_ITEM);
    if (askForKey()) return postPicture(picture, type);
  }
  return response;
}

async function send(picture, type) {
  const sent = generation;
  inFlight += 1;
  setBusy();
  try {
    const response = await postPicture(picture, type);
    const answer = await response.json();
    if (sent !== generation) return;
    if (response.ok) show(answer);
    else showError(answer.detail || `the server answered ${response.status}`);
  } catch (error) {
    if (sent === generation) showError("no answer from the server: is it still running?");
  } finally {
    inFlight -= 1;
    if (dirty) schedule();
    setBusy();
  }
}

function setBars(probabilities) {
  const best = probabilities.indexOf(Math.max(...probabilities));
  bars.querySelectorAll("li").forEach((row, i) => {
    const p = probabilities[i];
    row.dataset.p = p;
    row.classList.toggle("top", p > 0 && i === best);
    row.querySelector(".bar span").style.width = `${(100 * p).toFixed(1)}%`;
    row.querySelector(".bar").setAttribute("aria-valuenow", (100 * p).toFixed(1));
    row.querySelector(".p").textContent = `${(100 * p).toFixed(1)}%`;
  });
}

// The answer in words: a class ("guess"), two close ones ("unsure": "4 or 9?"), or not one of the
// set's kinds ("unknown"), whose bars are greyed: they are the network's numbers, not an answer.
const STATES = { class: "guess", unsure: "unsure", unknown: "unknown" };

function show(answer) {
  guess.dataset.state = STATES[answer.kind] || "guess";
  guess.textContent = answer.answer;
  confidence.textContent = answer.kind === "unknown" ? "" : `${(100 * answer.probability).toFixed(1)}% sure`;
  results.classList.toggle("rejected", answer.kind === "unknown");
  status.textContent = "";
  setBars(answer.probabilities);
  // One channel arrives as rows of pixels, colour as three such planes (red, green, blue).
  const planes = Array.isArray(answer.input[0][0]) ? answer.input : [answer.input, answer.input, answer.input];
  const size = planes[0].length;
  preview.canvas.width = preview.canvas.height = size;
  const pixels = preview.createImageData(size, size);
  const [red, green, blue] = planes.map((plane) => plane.flat());
  red.forEach((value, i) => pixels.data.set([value, green[i], blue[i], 255], 4 * i));
  preview.putImageData(pixels, 0, 0);
}

function showNothing(state, text) {
  guess.dataset.state = state;
  results.classList.remove("rejected");
  guess.textContent = text;
  confidence.textContent = "";
  setBars(classes.map(() => 0));
  preview.clearRect(0, 0, preview.canvas.width, preview.canvas.height);
}

function showEmpty() {
  status.textContent = "";
  showNothing("empty", emptyText);
}

function showError(message) {
  showNothing("error", "no guess");
  status.textContent = message;
}

function clear() {
  generation += 1;
  strokes = 0;
  dirty = false;
  blank();
  showEmpty();
  setBusy();
}

document.getElementById("clear").addEventListener("click", clear);
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") clear();
});

function sendFile(file) {
  clear();
  status.textContent = `reading ${file.name}…`;
  send(file, file.type || "application/octet-stream").then(() => { if (guess.dataset.state === "guess") status.textContent = `guess for ${file.name}`; });
}

upload.addEventListener("change", () => {
  if (upload.files[0]) sendFile(upload.files[0]);
  upload.value = "";  // choosing the same file again is a change too
});

// A picture dropped anywhere on the drawing side is sent like an upload.
const drawingSide = document.querySelector("section[aria-label='Drawing']");
drawingSide.addEventListener("dragover", (event) => event.preventDefault());
drawingSide.addEventListener("drop", (event) => {
  event.preventDefault();
  if (event.dataTransfer.files[0]) sendFile(event.dataTransfer.files[0]);
});

async function describeModel() {
  const info = (await (await fetch("/info")).json()).model;
  classes = info.classes;
  if (info.needs_key && !sessionStorage.getItem(KEY_ITEM)) askForKey();
  const digits = classes.every((name, i) => String(name) === String(i));
  emptyText = info.pictures === "clothing" ? "draw or upload a piece of clothing" : digits ? "draw a digit" : "draw a character";
  if (info.pictures === "photos") {  // nothing to draw: the canvas gives way to an upload and drop zone
    document.body.classList.add("photos");
    emptyText = "upload or drop a picture";
    const [, size] = info.input_shape;
    document.querySelector("figcaption").textContent = `what the model sees (${size}x${size})`;
  }
  document.getElementById("model").textContent =
    `${info.dataset} · ${info.network} · ${info.checkpoint} (weights ${info.weights_sha256}) · mnist-lit ${info.mnist_lit_version}`;
  bars.replaceChildren(...classes.map((name) => {
    const row = document.createElement("li");
    row.innerHTML = '<span class="label"></span><div class="bar" role="meter" aria-valuemin="0" aria-valuemax="100"><span></span></div><span class="p"></span>';
    row.querySelector(".label").textContent = name;
    row.querySelector(".bar").setAttribute("aria-label", name);
    return row;
  }));
  showEmpty();
}

blank();
describeModel().catch(() => showError("could not read the model's description from /info."));
