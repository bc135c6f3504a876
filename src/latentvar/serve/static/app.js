// latentvar serve: the page. Plain JavaScript, no build step, nothing fetched from outside this app.
// State: one session (the JSON of POST /api/colorize) and its segment-id map, read into an array once.
"use strict";

const $ = (id) => document.getElementById(id);
let session = null;      // the colorize response
let ids = null;          // Uint8Array (h * w): segment id per pixel, from segments.png
let selected = null;     // the segment whose palette is open
let selectedAt = null;   // the pixel [x, y] clicked to open it
let hovered = null;
const masks = new Map(); // segment -> ImageData that dims every other pixel (cached)

function setState(state) { document.body.dataset.state = state; }

function busy(text, fraction) {
  const p = $("progress");
  p.hidden = false;
  p.querySelector(".track").hidden = false;
  $("status").textContent = text;
  p.classList.toggle("busy", fraction === undefined);
  p.querySelector(".bar").style.width = fraction === undefined ? "" : `${Math.round(fraction * 100)}%`;
  document.querySelectorAll("button").forEach((b) => { b.disabled = true; });
}

function idle(text) {
  $("progress").classList.remove("busy");
  $("progress").querySelector(".track").hidden = true;
  $("status").textContent = text || "";
  $("progress").hidden = !text;
  document.querySelectorAll("button").forEach((b) => { b.disabled = false; });
}

function showError(message) {
  const e = $("error");
  e.textContent = message;
  e.hidden = !message;
}

async function api(method, url, body) {
  const init = { method, headers: {} };
  if (body !== undefined) { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
  const response = await fetch(url, init);
  const data = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

// Upload with XMLHttpRequest, for its upload progress events.
function upload(file, name) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/colorize?samples=3&name=${encodeURIComponent(name || "photo")}`);
    xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable && e.loaded < e.total) busy(`uploading… ${Math.round(100 * e.loaded / e.total)} %`, e.loaded / e.total);
      else busy("colorizing: segmenting, colouring, sampling…");
    };
    xhr.upload.onload = () => busy("colorizing: segmenting, colouring, sampling…");
    xhr.onload = () => {
      let data;
      try { data = JSON.parse(xhr.responseText); } catch { data = { error: `HTTP ${xhr.status}` }; }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else reject(new Error(data.error || `HTTP ${xhr.status}`));
    };
    xhr.onerror = () => reject(new Error("the server cannot be reached"));
    xhr.send(file);
  });
}

function loadImage(img, url) {
  return new Promise((resolve, reject) => {
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`cannot load ${url}`));
    img.src = url;
  });
}

async function readIds(url, levels) {
  const img = await loadImage(new Image(), url);
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(img, 0, 0);
  const rgba = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  const out = new Uint8Array(canvas.width * canvas.height);
  for (let i = 0; i < out.length; i++) out[i] = Math.round(rgba[4 * i] / levels);
  return out;
}

async function start(file, name) {
  showError("");
  setState("working");
  busy("uploading…", 0);
  const began = performance.now();
  try {
    session = await upload(file, name);
    busy("loading the colorization…");
    masks.clear(); selected = null; selectedAt = null; hovered = null;
    $("palette").hidden = true;
    const im = session.images;
    await loadImage($("current"), im.current);
    $("current").dataset.version = session.version;
    $("work").hidden = false;
    window.firstColorizationMs = performance.now() - began;
    await Promise.all([loadImage($("grey"), im.grey), loadImage($("overlay"), im.overlay)]);
    ids = await readIds(im.segments, session.segment_levels);
    for (const id of ["hl-current", "hl-overlay"]) { $(id).width = session.width; $(id).height = session.height; clear(id); }
    $("download").href = `${im.current.split("?")[0]}?download=true`;
    const samples = im.samples.map((url, i) => { const img = new Image(); img.alt = `sample ${i + 1}`; return img; });
    $("samples").replaceChildren(...samples);
    const used = session.segments.filter((s) => s.area > 0).length;
    const shown = `${session.width} × ${session.height}: ${used} segments in use · colorization shown in ${(window.firstColorizationMs / 1000).toFixed(1)} s`;
    idle(`${shown} · drawing ${samples.length} samples…`);
    await Promise.all(samples.map((img, i) => loadImage(img, im.samples[i])));
    idle(shown);
    setState("ready");
  } catch (err) {
    idle(); showError(err.message); setState(session ? "ready" : "empty");
  }
}

// -- segments under the pointer ------------------------------------------------------------------
function pointAt(event) {
  const img = event.currentTarget.querySelector("img");
  const r = img.getBoundingClientRect();
  const x = Math.floor((event.clientX - r.left) * session.width / r.width);
  const y = Math.floor((event.clientY - r.top) * session.height / r.height);
  if (x < 0 || y < 0 || x >= session.width || y >= session.height) return null;
  return [x, y];
}

function pixelAt(event) {
  const p = pointAt(event);
  return p === null ? null : ids[p[1] * session.width + p[0]];
}

// The connected region (8-neighbours) of the segment under pixel [x, y], as the server's region_at: the
// pixels dimOthers leaves bright when one region, not the whole segment, will be recoloured.
function regionAt(x, y) {
  const w = session.width, h = session.height, k = ids[y * w + x];
  const inside = new Uint8Array(ids.length), stack = [y * w + x];
  inside[y * w + x] = 1;
  while (stack.length) {
    const i = stack.pop(), cx = i % w, cy = (i - cx) / w;
    for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
      const nx = cx + dx, ny = cy + dy, j = ny * w + nx;
      if (nx >= 0 && ny >= 0 && nx < w && ny < h && !inside[j] && ids[j] === k) { inside[j] = 1; stack.push(j); }
    }
  }
  return inside;
}

function dimOutside(inside) {
  const data = new ImageData(session.width, session.height);
  const px = data.data;
  for (let i = 0; i < inside.length; i++) {
    if (!inside[i]) { px[4 * i] = 15; px[4 * i + 1] = 18; px[4 * i + 2] = 30; px[4 * i + 3] = 120; }
  }
  return data;
}

function dimOthers(k) {
  if (masks.has(k)) return masks.get(k);
  const data = new ImageData(session.width, session.height);
  const px = data.data;
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] !== k) { px[4 * i] = 15; px[4 * i + 1] = 18; px[4 * i + 2] = 30; px[4 * i + 3] = 120; }
  }
  masks.set(k, data);
  return data;
}

function clear(id) { $(id).getContext("2d").clearRect(0, 0, $(id).width, $(id).height); }

function highlight(k) {
  const region = k !== null && k === selected && selectedAt !== null && !$("everywhere").checked;
  for (const id of ["hl-current", "hl-overlay"]) {
    if (k === null) clear(id);
    else $(id).getContext("2d").putImageData(region ? dimOutside(selectedRegion()) : dimOthers(k), 0, 0);
  }
}

let regionCache = null;  // [key, Uint8Array] of the selected region
function selectedRegion() {
  const key = `${session.handle}:${selectedAt}`;
  if (regionCache === null || regionCache[0] !== key) regionCache = [key, regionAt(...selectedAt)];
  return regionCache[1];
}

function describeSegment(k) {
  const s = session.segments[k];
  return `segment ${k} · ${(100 * s.area).toFixed(1)} % of the photo` +
    (session.recoloured.includes(k) ? " · recoloured" : "");
}

function onMove(event) {
  if (!session || !ids) return;
  const k = pixelAt(event);
  if (k === hovered) return;
  hovered = k;
  highlight(k === null ? selected : k);
  $("hover").textContent = k === null ? "\u00a0" : describeSegment(k);
}

function onLeave() { hovered = null; highlight(selected); $("hover").textContent = "\u00a0"; }

function onClick(event) {
  if (!session || !ids) return;
  const p = pointAt(event);
  if (p === null) return;
  const k = ids[p[1] * session.width + p[0]];
  selected = k; selectedAt = p;
  highlight(k);
  openPalette(k);
}

// What a swatch recolours: the clicked region of the segment, or (box ticked) the whole segment.
function target(k) {
  return $("everywhere").checked || selectedAt === null ? { segment: k } : { segment: k, at: selectedAt };
}

function swatchColour(rgb) { return `rgb(${rgb[0]}, ${rgb[1]}, ${rgb[2]})`; }

function openPalette(k) {
  const s = session.segments[k];
  $("seg-id").textContent = k;
  $("seg-area").textContent = `${(100 * s.area).toFixed(1)} % of the photo`;
  $("swatches").replaceChildren(...s.colours.map((c, j) => {
    const b = document.createElement("button");
    b.type = "button"; b.className = "swatch"; b.dataset.index = j;
    b.style.background = swatchColour(c.rgb);
    b.title = `a, b = ${c.ab[0]}, ${c.ab[1]} · probability ${(100 * c.probability).toFixed(1)} %`;
    const label = document.createElement("span"); label.textContent = `${(100 * c.probability).toFixed(0)}%`;
    b.append(label);
    b.onclick = () => recolour({ ...target(k), ab: c.ab });
    return b;
  }));
  $("palette").hidden = false;
}

async function showCurrent(update, text) {
  session.version = update.version;
  session.recoloured = update.recoloured;
  await loadImage($("current"), update.image);
  $("current").dataset.version = update.version;
  idle(text);
}

async function recolour(body) {
  const what = body.at ? `a region of segment ${body.segment}` : `segment ${body.segment}`;
  busy(`recolouring ${what}…`);
  const began = performance.now();
  try {
    const update = await api("POST", `/api/images/${session.handle}/recolour`, body);
    await showCurrent(update);
    window.lastRecolourMs = performance.now() - began;
    idle(`${what} recoloured: ${update.changed_pixels.toLocaleString()} pixels changed, shown in ${Math.round(window.lastRecolourMs)} ms`);
  } catch (err) { idle(); showError(err.message); }
}

async function simple(path, text) {
  busy(`${text}…`);
  try { await showCurrent(await api("POST", `/api/images/${session.handle}/${path}`, {}), `${text}: done`); }
  catch (err) { idle(); showError(err.message); }
}

// -- wiring ----------------------------------------------------------------------------------------
function wire() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => { const f = e.target.files[0]; if (f) start(f, f.name); });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("file").click(); });
  for (const type of ["dragenter", "dragover"]) drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  for (const type of ["dragleave", "drop"]) drop.addEventListener(type, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); const f = e.dataTransfer.files[0]; if (f) start(f, f.name); });
  document.querySelectorAll("[data-hit]").forEach((el) => {
    el.addEventListener("mousemove", onMove);
    el.addEventListener("mouseleave", onLeave);
    el.addEventListener("click", onClick);
  });
  $("custom").addEventListener("change", (e) => { if (selected !== null) recolour({ ...target(selected), rgb: e.target.value }); });
  $("everywhere").addEventListener("change", () => { if (selected !== null) highlight(selected); });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && selected !== null) { selected = null; $("palette").hidden = true; highlight(hovered); }
  });
  $("resample").onclick = () => simple("sample", "resampled");
  $("reset").onclick = () => simple("reset", "reset to the colorization");
}

async function examples() {
  try {
    const health = await api("GET", "/api/health");
    $("model").textContent = `model: ${health.model.arch} · ${health.model.segments} latent segments`;
    const list = await api("GET", "/api/examples");
    for (const e of list) {
      const b = document.createElement("button");
      b.type = "button"; b.title = `${e.id} (${e.source}, ${e.licence})`;
      const img = new Image(); img.src = e.url; img.alt = e.id; b.append(img);
      b.onclick = async () => {
        const blob = await (await fetch(e.url)).blob();
        start(blob, `${e.id}.jpg`);
      };
      $("examples").append(b);
    }
  } catch (err) { showError(err.message); }
}

wire();
examples();
