// The instrument timeline on a <canvas>, drawn like `predict --plot` (keras_inst/deploy/plot.py):
// one row per class in site.json's row order (each family, its instruments indented under it),
// one column per window from its start to the next window's start, the probability as colour,
// runs of active windows (probability >= threshold, instrument -> family) outlined, the labels of
// present classes bold. A second canvas on top carries the playback cursor only, so moving it
// never redraws the cells.

const ROW = 20; // px per class row
const LABEL = 175; // px for the row labels
const AXIS = 22; // px for the time axis under the rows

/** Colour of probability p: white -> deep blue. */
function cellColour(p) {
  const t = Math.max(0, Math.min(1, p));
  return `rgb(${Math.round(255 - 225 * t)}, ${Math.round(255 - 175 * t)}, ${Math.round(255 - 60 * t)})`;
}

/** Canvas size in CSS pixels for `site.rows`, scaled for the screen's pixel ratio. */
function sized(canvas, width, height) {
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return ctx;
}

/** Column edges in seconds: window i spans [start_i, start_{i+1}), the last one to its end. */
function edges(result) {
  const last = result.starts[result.starts.length - 1];
  return [...result.starts, Math.max(Math.min(last + result.window_seconds, result.duration_seconds), last + 1e-3)];
}

function drawAxis(ctx, x0, width, y, duration) {
  ctx.fillStyle = "#333";
  ctx.font = "11px sans-serif";
  ctx.textAlign = "center";
  const step = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600].find((s) => duration / s <= 12) || 1200;
  for (let t = 0; t <= duration + 1e-9; t += step) {
    const x = x0 + (t / duration) * width;
    ctx.fillRect(x, y, 1, 4);
    ctx.textAlign = x > x0 + width - 15 ? "right" : "center"; // the last label stays inside
    ctx.fillText(t >= 60 ? `${Math.floor(t / 60)}:${String(Math.round(t % 60)).padStart(2, "0")}` : `${t}s`, x, y + 15);
  }
}

/** Draw `result` (analysis.js fileResult) on `canvas`, `width` CSS px wide; returns the layout
 * {x0, width, height, duration} that the cursor and click-to-seek use. */
export function drawTimeline(canvas, result, site, width) {
  const rows = site.rows;
  const height = rows.length * ROW + AXIS;
  const ctx = sized(canvas, width, height);
  const plotW = width - LABEL - 8;
  const duration = Math.max(result.duration_seconds, 1e-3);
  const xs = edges(result).map((t) => LABEL + (t / duration) * plotW);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, width, height);
  const present = new Set(result.classes);
  rows.forEach((row, r) => {
    const y = r * ROW;
    ctx.font = `${present.has(row.class) ? "bold " : ""}12px sans-serif`;
    ctx.fillStyle = present.has(row.class) ? "#b00020" : "#222";
    ctx.textAlign = "left";
    const share = present.has(row.class) ? ` ${Math.round(100 * result.active_share[row.class])}%` : "";
    ctx.fillText(`${row.level ? "\u2514 " : ""}${row.class.replace(/_/g, " ")}${share}`, 4 + 14 * row.level, y + 14);
    result.timeline.forEach((probs, i) => {
      ctx.fillStyle = cellColour(probs[row.index]);
      ctx.fillRect(xs[i], y + 1, Math.max(xs[i + 1] - xs[i], 1), ROW - 2);
    });
    for (const [a, b] of result.segments[row.class]) { // active runs, outlined
      ctx.strokeStyle = "#d00";
      ctx.lineWidth = 1.5;
      ctx.strokeRect(LABEL + (a / duration) * plotW, y + 1.5, ((b - a) / duration) * plotW, ROW - 3);
    }
    if (row.level === 0 && r > 0) { // a line above each family groups its instruments
      ctx.fillStyle = "#999";
      ctx.fillRect(0, y, width, 1);
    }
  });
  drawAxis(ctx, LABEL, plotW, rows.length * ROW, duration);
  return {x0: LABEL, width: plotW, height, duration};
}

/** The playback cursor at `seconds` on the overlay canvas (same size as the timeline). */
export function drawCursor(overlay, layout, seconds, width) {
  const ctx = sized(overlay, width, layout.height);
  ctx.clearRect(0, 0, width, layout.height);
  const x = layout.x0 + (Math.min(seconds, layout.duration) / layout.duration) * layout.width;
  ctx.fillStyle = "#ff6d00";
  ctx.fillRect(x - 1, 0, 2, layout.height - AXIS + 4);
}

/** Seconds at a click's x (CSS px from the canvas's left edge), or null left of the cells. */
export function secondsAt(layout, x) {
  if (x < layout.x0) return null;
  return Math.min(layout.duration, ((x - layout.x0) / layout.width) * layout.duration);
}
