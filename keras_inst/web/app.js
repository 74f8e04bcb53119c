// The in-browser app: choose or drop audio files; each is decoded by the browser (decodeAudioData
// of an OfflineAudioContext), averaged to mono, resampled to the model's rate as predict does,
// cut into predict's windows and run through the model with LiteRT.js (WebAssembly, on this
// machine: nothing is uploaded). The answer uses predict's rule and thresholds (analysis.js,
// values from site.json). LiteRT.js's threaded WASM variant runs where the page is cross-origin
// isolated (keras-inst serve sends the headers), else its compat one on one thread; only the chosen
// variant is downloaded. For automation: window.kerasInst = {result, error, ready, results, runtime}.
import {loadLiteRt, loadAndCompile, supportsFeature, Tensor} from "@litertjs/core";
import {fileResult, frameWindow, headerSampleRate, resamplePoly, resultCSV, windowStarts} from "./analysis.js";
import {drawCursor, drawTimeline, secondsAt} from "./timeline.js";

const state = {result: null, error: null, ready: false, busy: false, results: [], runtime: null};
window.kerasInst = state;
const $ = (id) => document.getElementById(id);
const shown = {result: null, layout: null, url: null}; // what the timeline and player show
const files = new Map(); // result -> File, for playback when a result is picked again
let site = null;
let model = null;

function say(text) { $("status").textContent = text; }

function fail(message) {
  state.error = message;
  $("error").textContent = message;
  $("error").hidden = false;
}

/** Why the threaded variant cannot run here (null: it can). It needs SharedArrayBuffer, which
 * browsers give only to a cross-origin isolated page, and relaxed SIMD. */
async function threadedRefusal(rt) {
  if (!rt.threaded) return "this site holds no threaded runtime";
  if (!self.crossOriginIsolated) return "the page is not cross-origin isolated (the server sends no COOP/COEP headers)";
  if (!(await supportsFeature("relaxedSimd"))) return "this browser lacks WebAssembly relaxed SIMD";
  if (!(await supportsFeature("threads"))) return "this browser lacks WebAssembly threads";
  return null;
}

/** Load one LiteRT.js variant: {wasm, threads, cross_origin_isolated, reason} (reason: why not threaded). */
async function loadRuntime(rt) {
  const reason = await threadedRefusal(rt);
  const wasm = reason === null ? "threaded" : "compat";
  await loadLiteRt(new URL(wasm === "threaded" ? rt.threaded : rt.wasm, location.href).href);
  const threads = wasm === "threaded" ? Math.max(1, Math.min(navigator.hardwareConcurrency || 1, rt.max_threads)) : 1;
  return {wasm, threads, cross_origin_isolated: Boolean(self.crossOriginIsolated), reason};
}

async function init() {
  say("Loading the model and the runtime\u2026");
  const response = await fetch("site.json");
  if (!response.ok) throw new Error(`site.json: HTTP ${response.status}`);
  site = await response.json();
  const runtime = await loadRuntime(site.runtime);
  model = await loadAndCompile(new URL(site.model, location.href).href,
    {accelerator: "wasm", cpuOptions: {numThreads: runtime.threads}});
  state.runtime = runtime;
  state.ready = true;
  const how = runtime.wasm === "threaded" ? `threaded WASM, ${runtime.threads} threads`
    : `compat WASM, one thread: ${runtime.reason}`;
  $("model").textContent = `${site.variant} model: ${site.class_names.length} classes, ` +
    `${site.window_seconds} s windows every ${site.hop_seconds} s at ${site.sample_rate} Hz; ` +
    `thresholds ${site.threshold_source}; presence: ${site.presence_rule.source}; LiteRT.js ${how}`;
  say("Ready: choose or drop audio files.");
}
const ready = init().catch((e) => {
  fail(`The model could not be loaded: ${e.message || e}`);
  say("Not ready.");
  throw e;
});

/** Mono float32 samples of `file` at `rate` Hz; a clear Error if the browser cannot decode it.
 * WAV, FLAC and Ogg Vorbis are decoded at their own rate (read from the header), averaged to
 * mono and resampled by analysis.js's port of predict's resampler; other formats (MP3, ...) are
 * resampled by the browser's decoder (a small difference from predict's probabilities). */
async function decodeMono(file, rate) {
  const bytes = await file.arrayBuffer();
  const own = headerSampleRate(new Uint8Array(bytes));
  const decodeRate = own && own >= 3000 && own <= 768000 ? own : rate;
  let audio;
  try {
    audio = await new OfflineAudioContext(1, 1, decodeRate).decodeAudioData(bytes);
  } catch (e) {
    throw new Error(`this browser cannot decode the file (${e.name || e}): it is corrupt, empty or in a format the browser does not read`);
  }
  if (audio.length === 0) throw new Error("the file holds no audio samples");
  const mono = new Float32Array(audio.length);
  for (let ch = 0; ch < audio.numberOfChannels; ch++) {
    const data = audio.getChannelData(ch);
    for (let i = 0; i < mono.length; i++) mono[i] += data[i];
  }
  const scale = 1 / audio.numberOfChannels;
  for (let i = 0; i < mono.length; i++) {
    mono[i] *= scale;
    if (!Number.isFinite(mono[i])) throw new Error("the decoded audio contains NaN or infinite samples");
  }
  return {samples: resamplePoly(mono, decodeRate, rate), channels: audio.numberOfChannels, sourceRate: own};
}

/** Probabilities [C] of one window [input_samples]. */
async function runWindow(window) {
  const input = new Tensor(window, [1, site.input_samples]);
  try {
    const outputs = await model.run({[site.input_name]: input});
    const probs = Array.from(outputs[site.output_name].toTypedArray());
    for (const t of Object.values(outputs)) t.delete();
    return probs;
  } finally {
    input.delete();
  }
}

async function analyse(file) {
  const t0 = performance.now();
  say(`${file.name}: decoding\u2026`);
  const {samples, channels, sourceRate} = await decodeMono(file, site.sample_rate);
  const starts = windowStarts(samples.length, site.input_samples, site.hop_samples, site.min_last_samples);
  const probs = [];
  let lastPaint = performance.now();
  $("progress").max = starts.length;
  $("progress").hidden = false;
  for (let i = 0; i < starts.length; i++) {
    probs.push(await runWindow(frameWindow(samples, starts[i], site.input_samples)));
    if (performance.now() - lastPaint > 100 || i === starts.length - 1) { // let the page repaint
      $("progress").value = i + 1;
      say(`${file.name}: window ${i + 1} of ${starts.length}`);
      await new Promise((r) => setTimeout(r, 0));
      lastPaint = performance.now();
    }
  }
  const result = fileResult({file: file.name, site, probs, starts, numSamples: samples.length});
  result.source_channels = channels;
  result.source_sample_rate = sourceRate; // null: not read from the header (the browser resampled)
  result.seconds = Math.round(performance.now() - t0) / 1000;
  result.runtime = state.runtime; // {wasm: "threaded" | "compat", threads, ...}
  return result;
}

function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], {type}));
  const a = Object.assign(document.createElement("a"), {href: url, download: name});
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function redraw() {
  const width = Math.max(480, $("timeline-box").clientWidth);
  shown.layout = drawTimeline($("timeline"), shown.result, site, width);
  drawCursor($("cursor"), shown.layout, $("player").currentTime || 0, width);
}

function show(result) {
  shown.result = result;
  $("result").hidden = false; // before drawing: the box's width sets the timeline's
  redraw();
  $("answer").textContent = result.classes.length
    ? `${result.file}: ${result.classes.map((c) => c.replace(/_/g, " ")).join(", ")}`
    : `${result.file}: no instrument found`;
  const rt = result.runtime;
  $("details").textContent = `${result.duration_seconds} s, ${result.windows} windows, analysed in ${result.seconds} s ` +
    `(LiteRT.js ${rt.wasm} WASM, ${rt.threads === 1 ? "one thread" : `${rt.threads} threads`})`;
  if (shown.url) URL.revokeObjectURL(shown.url);
  shown.url = URL.createObjectURL(files.get(result));
  $("player").src = shown.url;
}

function listResult(result) {
  const item = Object.assign(document.createElement("button"), {type: "button", textContent: result.file});
  item.addEventListener("click", () => show(result));
  $("files").appendChild(item);
}

let queue = Promise.resolve();
function enqueue(list) {
  for (const file of list) queue = queue.then(() => analyseOne(file));
}

async function analyseOne(file) {
  state.result = null;
  state.error = null;
  state.busy = true;
  $("error").hidden = true;
  try {
    await ready;
    const result = await analyse(file);
    files.set(result, file);
    state.results.push(result);
    state.result = result;
    listResult(result);
    show(result);
    say(`Analysed ${file.name}.`);
  } catch (e) {
    fail(`${file.name}: ${e.message || e}`);
    say(`Could not analyse ${file.name}.`);
  } finally {
    state.busy = false;
    $("progress").hidden = true;
  }
}

function cursorLoop() {
  if (shown.layout) drawCursor($("cursor"), shown.layout, $("player").currentTime, Math.max(480, $("timeline-box").clientWidth));
  if (!$("player").paused) requestAnimationFrame(cursorLoop);
}

$("input").addEventListener("change", (e) => { enqueue([...e.target.files]); e.target.value = ""; });
const drop = $("drop");
for (const type of ["dragenter", "dragover"]) drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); enqueue([...e.dataTransfer.files]); });
window.addEventListener("dragover", (e) => e.preventDefault()); // a file dropped beside the zone is not opened
window.addEventListener("drop", (e) => e.preventDefault());
$("player").addEventListener("play", () => requestAnimationFrame(cursorLoop));
$("player").addEventListener("seeked", cursorLoop);
$("cursor").addEventListener("click", (e) => {
  const t = shown.layout && secondsAt(shown.layout, e.offsetX);
  if (t !== null && t !== undefined) { $("player").currentTime = t; cursorLoop(); }
});
window.addEventListener("resize", () => { if (shown.result) redraw(); });
$("save-json").addEventListener("click", () => shown.result && download(
  `${shown.result.file}.instruments.json`, JSON.stringify(shown.result, null, 2) + "\n", "application/json"));
$("save-csv").addEventListener("click", () => shown.result && download(
  `${shown.result.file}.instruments.csv`, resultCSV(shown.result, site), "text/csv"));
