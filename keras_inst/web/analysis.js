// The rules `keras-inst predict` applies by default, ported from Python so that the page gives
// the same answer (tests/deploy/test_web_analysis.py runs these functions in Node against the
// Python ones). No DOM, no model: plain numbers in, plain numbers out.
//   windowStarts  <- keras_inst/runtime/windows.py  window_starts
//   resamplePoly  <- scipy.signal.resample_poly, as keras_inst/deploy/audio_io.py resample calls it
//   presence      <- keras_inst/runtime/presence.py presence (active windows, segments, rule)
//   resultCSV     <- keras_inst/deploy/outputs.py   format_csv (one file, with --timeline)
// The values they apply (window, hop, thresholds, presence rule, families) come from site.json,
// written by keras_inst/deploy/web.py from the same sources predict reads.

/** Start samples of the sliding windows over `n` samples (window_starts: the first always
 * exists; a later one only while the previous one stops short of the end and it holds at
 * least `minLast` real samples). */
export function windowStarts(n, window, hop, minLast = Math.floor((window + 1) / 2)) {
  if (!(window > 0 && hop > 0)) throw new Error(`window and hop must be > 0 samples, got ${window}, ${hop}`);
  if (!(minLast >= 1 && minLast <= window)) throw new Error(`minLast must be in [1, ${window}], got ${minLast}`);
  if (n <= window) return [0];
  const reachEnd = Math.ceil((n - window) / hop);
  const enoughAudio = Math.floor((n - minLast) / hop);
  const count = 1 + Math.max(0, Math.min(reachEnd, enoughAudio));
  return Array.from({length: count}, (_, k) => k * hop);
}

/** Sample rate in the header of a WAV, FLAC or Ogg Vorbis file (`bytes`: Uint8Array), else null.
 * The page decodes such files at their own rate and resamples them itself, as predict does. */
export function headerSampleRate(bytes) {
  const text = (at, n) => String.fromCharCode(...bytes.subarray(at, at + n));
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length >= 12 && text(0, 4) === "RIFF" && text(8, 4) === "WAVE") {
    for (let at = 12; at + 16 <= bytes.length; at += 8 + view.getUint32(at + 4, true) + (view.getUint32(at + 4, true) % 2)) {
      if (text(at, 4) === "fmt ") return view.getUint32(at + 12, true);
    }
    return null;
  }
  if (bytes.length >= 21 && text(0, 4) === "fLaC" && (bytes[4] & 0x7f) === 0) { // STREAMINFO comes first
    return (bytes[18] << 12) | (bytes[19] << 4) | (bytes[20] >> 4);
  }
  if (bytes.length >= 28 && text(0, 4) === "OggS") {
    const packet = 27 + bytes[26]; // after the page header and its segment table
    if (bytes.length >= packet + 16 && text(packet, 7) === "\x01vorbis") return view.getUint32(packet + 12, true);
  }
  return null;
}

function besselI0(x) { // modified Bessel function of order 0 (power series; x <= 5 here)
  let sum = 1;
  let term = 1;
  for (let k = 1; k < 60 && term > 1e-17 * sum; k++) {
    term *= (x / (2 * k)) ** 2;
    sum += term;
  }
  return sum;
}

function gcd(a, b) { return b === 0 ? a : gcd(b, a % b); }

/** scipy.signal.resample_poly(x, up, down) of a mono signal, as predict resamples
 * (keras_inst/deploy/audio_io.py): the ratio reduced by the gcd, a low-pass FIR of
 * 2 * 10 * max(up, down) + 1 taps (firwin, cutoff 1 / max(up, down), Kaiser window beta 5,
 * unit DC gain, times up), zero padding, output length ceil(n * up / down), centred like scipy. */
export function resamplePoly(x, fromRate, toRate) {
  const g = gcd(fromRate, toRate);
  const up = toRate / g;
  const down = fromRate / g;
  if (up === 1 && down === 1) return Float32Array.from(x);
  const maxRate = Math.max(up, down);
  const halfLen = 10 * maxRate;
  const taps = 2 * halfLen + 1;
  const cutoff = 1 / maxRate;
  const h = new Float64Array(taps);
  const norm = besselI0(5);
  let sum = 0;
  for (let j = 0; j < taps; j++) {
    const m = j - halfLen;
    const arg = Math.PI * cutoff * m;
    const r = m / halfLen;
    h[j] = cutoff * (m === 0 ? 1 : Math.sin(arg) / arg) * (besselI0(5 * Math.sqrt(Math.max(0, 1 - r * r))) / norm);
    sum += h[j];
  }
  for (let j = 0; j < taps; j++) h[j] = Math.fround(h[j] / sum) * up; // scipy: float32 like x, then * up
  const prePad = down - (halfLen % down);
  const preRemove = Math.floor((halfLen + prePad) / down);
  const nOut = Math.floor((x.length * up) / down) + ((x.length * up) % down ? 1 : 0);
  const y = new Float32Array(nOut);
  for (let m = 0; m < nOut; m++) {
    const t = (m + preRemove) * down - prePad; // output m takes h[t - i * up] * x[i]
    const hi = Math.min(Math.floor(t / up), x.length - 1);
    let acc = 0;
    for (let i = Math.max(0, Math.ceil((t - taps + 1) / up)); i <= hi; i++) acc += h[t - i * up] * x[i];
    y[m] = acc;
  }
  return y;
}

/** The window of `samples` starting at `start`, `window` long, zero-padded past the end. */
export function frameWindow(samples, start, window) {
  const out = new Float32Array(window);
  out.set(samples.subarray(start, Math.min(start + window, samples.length)));
  return out;
}

/** Per class index: the indices it implies (itself and its family), from site.json family_of. */
export function familyClosure(classNames, familyOf) {
  const index = new Map(classNames.map((c, i) => [c, i]));
  return classNames.map((c, i) => (c in familyOf && index.has(familyOf[c]) ? [i, index.get(familyOf[c])] : [i]));
}

/** bool [n][C]: probability >= threshold, closed per window (an active instrument makes its family active). */
export function activeWindows(probs, thresholds, closure) {
  return probs.map((row) => {
    const active = new Array(row.length).fill(false);
    row.forEach((p, c) => {
      if (p >= thresholds[c]) for (const j of closure[c]) active[j] = true;
    });
    return active;
  });
}

/** Active windows each class needs in a file of `n` windows: max(1, min(k, ceil(s * n))). */
export function requiredWindows(rule, n, classNames) {
  return classNames.map((c) => {
    const share = Math.ceil(rule.min_share[c] * n - 1e-9); // 0.1 * 30 is 3, not 4
    return Math.max(1, Math.min(rule.min_windows[c], share));
  });
}

/** `chosen` (a Set of class indices) plus the families they imply, as names in class order. */
export function closedOrder(chosen, classNames, closure) {
  const keep = new Set();
  for (const c of chosen) for (const j of closure[c]) keep.add(j);
  return classNames.filter((_, i) => keep.has(i));
}

/** Python's round(x, digits): the exact binary value of x decides, and exact halves go to the even
 * neighbour (segment ends such as 6.3125 s, a sample count over 16 kHz, are exact halves at 3
 * digits and predict writes 6.312; 30.9325 is a little above its half and goes up). */
export function round(x, digits) {
  const [whole, frac] = Math.abs(x).toFixed(digits + 30).split("."); // exact far enough to see a tie
  const rest = frac.slice(digits);
  const half = "5".padEnd(rest.length, "0");
  let n = BigInt(whole + frac.slice(0, digits));
  if (rest > half || (rest === half && n % 2n === 1n)) n += 1n;
  return (Math.sign(x) * Number(n)) / 10 ** digits;
}

/** [[start, end], ...] seconds of one class's active windows (presence.segments). */
export function segments(active, startsS, windowS, durationS) {
  const out = [];
  let last = -2;
  active.forEach((on, i) => {
    if (!on) return;
    const start = startsS[i];
    const end = Math.min(startsS[i] + windowS, durationS);
    const prev = out[out.length - 1];
    if (prev && (i === last + 1 || start < prev[1])) prev[1] = Math.max(prev[1], end);
    else out.push([start, end]);
    last = i;
  });
  return out.map(([a, b]) => [round(a, 3), round(b, 3)]);
}

/** One file's answer from window probabilities `probs` [n][C] (presence.presence). */
export function presence(probs, startsS, {windowS, durationS, thresholds, rule, classNames, familyOf}) {
  const n = probs.length;
  if (n === 0 || startsS.length !== n) throw new Error(`expected >= 1 window and one start per window, got ${n} and ${startsS.length}`);
  const closure = familyClosure(classNames, familyOf);
  const active = activeWindows(probs, thresholds, closure);
  const counts = classNames.map((_, c) => active.reduce((k, row) => k + (row[c] ? 1 : 0), 0));
  const required = requiredWindows(rule, n, classNames);
  const chosen = new Set(classNames.map((_, c) => c).filter((c) => counts[c] >= required[c]));
  const segs = Object.fromEntries(classNames.map((name, c) => [name, segments(active.map((row) => row[c]), startsS, windowS, durationS)]));
  return {active, counts, required, share: counts.map((k) => k / n), segments: segs, present: closedOrder(chosen, classNames, closure)};
}

/** Mean over windows [C] of probabilities [n][C] (predict's file-level probabilities). */
export function meanProbabilities(probs) {
  const sums = new Array(probs[0].length).fill(0);
  for (const row of probs) row.forEach((p, c) => { sums[c] += p; });
  return sums.map((s) => s / probs.length);
}

/** The page's result for one file (window.kerasInst.result), as `predict --format json --timeline`
 * reports it where the two overlap. `probs` [n][C], `starts` [n] samples. */
export function fileResult({file, site, probs, starts, numSamples}) {
  const sr = site.sample_rate;
  const classNames = site.class_names;
  const startsS = starts.map((s) => s / sr);
  const durationS = numSamples / sr;
  const found = presence(probs, startsS, {windowS: site.window_seconds, durationS, thresholds: site.thresholds,
    rule: site.presence_rule, classNames, familyOf: site.family_of});
  const mean = meanProbabilities(probs);
  const byClass = (values, digits) => Object.fromEntries(classNames.map((c, i) => [c, round(values[i], digits)]));
  return {
    file, variant: site.variant, windows: probs.length, window_seconds: site.window_seconds,
    hop_seconds: site.hop_seconds, duration_seconds: round(durationS, 3), sample_rate: sr,
    probabilities: byClass(mean, 6), classes: found.present, active_share: byClass(found.share, 4),
    segments: found.segments, thresholds: Object.fromEntries(classNames.map((c, i) => [c, site.thresholds[i]])),
    threshold_source: site.threshold_source, presence_source: site.presence_rule.source,
    starts: startsS.map((s) => round(s, 3)), timeline: probs.map((row) => row.map((p) => round(p, 6))),
  };
}

const csvCell = (v) => (/[",\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v));

/** predict's CSV (format_csv with --timeline) for one result: a file row, a row per class
 * active anywhere, a row per window. */
export function resultCSV(result, site) {
  const classNames = site.class_names;
  const rows = [["path", "row", "start", "end", ...classNames, "classes", "class", "present", "active_share", "segments"]];
  const pad = ["", "", "", ""];
  rows.push([result.file, "file", 0, result.duration_seconds, ...classNames.map((c) => result.probabilities[c]), result.classes.join(";"), ...pad]);
  for (const c of classNames) {
    const segs = result.segments[c];
    if (!segs.length) continue;
    rows.push([result.file, "class", segs[0][0], segs[segs.length - 1][1], ...classNames.map(() => ""), "", c,
      result.classes.includes(c) ? 1 : 0, result.active_share[c], segs.map(([a, b]) => `${a.toFixed(1)}-${b.toFixed(1)}`).join(";")]);
  }
  const closure = familyClosure(classNames, site.family_of);
  result.timeline.forEach((row, i) => {
    const start = result.starts[i];
    const end = round(Math.min(start + result.window_seconds, result.duration_seconds), 3);
    const above = new Set(row.map((p, c) => c).filter((c) => row[c] >= result.thresholds[classNames[c]]));
    rows.push([result.file, "window", start, end, ...row, closedOrder(above, classNames, closure).join(";"), ...pad]);
  });
  return rows.map((r) => r.map(csvCell).join(",")).join("\n") + "\n";
}
