"""The one HTML page of ``ostnet web``: upload form, options, progress, result (inline CSS and JS, no CDN).

With JavaScript the form is sent by ``XMLHttpRequest`` (upload progress, then ``GET /progress`` polling while
the model runs) and the result video appears in place. Without JavaScript the form posts normally and the
server answers with this page rendered with the result or the error (``render_page``).
"""

from __future__ import annotations

import html
from dataclasses import dataclass

MODE_CHOICES = (
    ("anchor-free", "Anchor-free (OSTNet)", "follows every driving frame and adapts its face size to the portrait"),
    ("relative", "Relative (FOMM)", "copies the motion since the first driving frame; start in a similar pose"),
    ("absolute", "Absolute", "copies the driving face as it is; best when it is the same person"),
    ("best-frame", "Best frame", "like relative, from the driving frame whose pose matches the portrait best"),
)


@dataclass(frozen=True)
class PageInfo:
    """What the page says about the loaded model and the server's limits."""

    model: str
    image_size: int
    has_scale_transform: bool
    device: str
    dtype: str
    max_upload_mb: float


@dataclass(frozen=True)
class ResultView:
    """A finished video as the page shows it (server-side rendering, the no-JavaScript path)."""

    video_url: str
    download_url: str
    download_name: str
    summary: str
    warnings: tuple[str, ...] = ()


def _mode_options(info: PageInfo) -> str:
    auto = "anchor-free" if info.has_scale_transform else "relative"
    rows = [f'<option value="auto" data-resolves="{auto}" selected>Auto (recommended: {auto})</option>']
    for value, label, help_text in MODE_CHOICES:
        disabled = " disabled" if value == "anchor-free" and not info.has_scale_transform else ""
        note = " (needs an OSTNet model)" if disabled else ""
        rows.append(
            f'<option value="{value}" title="{html.escape(help_text)}"{disabled}>{html.escape(label + note)}</option>'
        )
    return "\n".join(rows)


def _mode_help() -> str:
    return "".join(f"<li><b>{html.escape(label)}</b>: {html.escape(text)}</li>" for _, label, text in MODE_CHOICES)


def _result_html(result: ResultView | None) -> str:
    if result is None:
        return ""
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in result.warnings)
    return (
        f'<video id="video" src="{html.escape(result.video_url)}" controls playsinline></video>'
        f'<p class="row"><a id="download" class="button" href="{html.escape(result.download_url)}" '
        f'download="{html.escape(result.download_name)}">Download video</a>'
        f'<span id="summary">{html.escape(result.summary)}</span></p>'
        f'<ul id="warnings">{warnings}</ul>'
    )


def render_page(info: PageInfo, result: ResultView | None = None, error: str | None = None) -> str:
    """The full page; ``result`` or ``error`` pre-filled for the no-JavaScript path. All text is escaped."""
    values = {
        "model": html.escape(info.model),
        "size": str(info.image_size),
        "device": html.escape(f"{info.device}, {info.dtype}"),
        "max_mb": f"{info.max_upload_mb:g}",
        "max_bytes": str(int(info.max_upload_mb * 1024 * 1024)),
        "mode_options": _mode_options(info),
        "mode_help": _mode_help(),
        "result": _result_html(result),
        "result_hidden": "" if result else " hidden",
        "error": html.escape(error or ""),
        "error_hidden": "" if error else " hidden",
    }
    page = TEMPLATE
    for key, value in values.items():
        page = page.replace("{{" + key + "}}", value)
    return page


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>OSTNet: animate a portrait</title>
<style>
:root { --ink:#1d2430; --muted:#5d6878; --line:#dde2ea; --bg:#f5f7fa; --accent:#3b5bdb; --bad:#c92a2a; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--ink);
  background:var(--bg); }
main { max-width:980px; margin:0 auto; padding:28px 20px 40px; }
h1 { font-size:26px; margin:0 0 4px; }
.lead { margin:0 0 20px; color:var(--muted); }
.card { background:#fff; border:1px solid var(--line); border-radius:12px; padding:18px 20px; margin-bottom:16px; }
.grid { display:grid; grid-template-columns:1fr 1fr; gap:16px; }
@media (max-width:720px) { .grid { grid-template-columns:1fr; } }
h2 { font-size:16px; margin:0 0 10px; }
h2 .n { display:inline-block; width:24px; height:24px; border-radius:50%; background:var(--accent); color:#fff;
  text-align:center; font-size:13px; line-height:24px; margin-right:8px; }
.drop { display:flex; flex-direction:column; align-items:center; justify-content:center; gap:6px; min-height:190px;
  border:2px dashed var(--line); border-radius:10px; padding:12px; text-align:center; cursor:pointer;
  color:var(--muted); background:#fafbfd; }
.drop:hover, .drop.over { border-color:var(--accent); background:#f0f3ff; }
.drop input { position:absolute; width:1px; height:1px; opacity:0; }
.drop img, .drop video { max-width:100%; max-height:160px; border-radius:6px; }
.drop .name { font-size:13px; color:var(--ink); word-break:break-all; }
.hint { font-size:13px; color:var(--muted); margin:8px 0 0; }
.options { display:grid; grid-template-columns:1fr 1fr; gap:6px 24px; }
@media (max-width:720px) { .options { grid-template-columns:1fr; } }
label.check { display:flex; gap:8px; align-items:flex-start; }
label.check input { margin-top:4px; }
label.check.off { opacity:.45; }
select { font:inherit; padding:6px 8px; border:1px solid var(--line); border-radius:8px; width:100%; }
details { margin-top:8px; font-size:13px; color:var(--muted); }
details ul { margin:6px 0 0; padding-left:18px; }
.row { display:flex; gap:14px; align-items:center; flex-wrap:wrap; }
.button, button { font:inherit; font-weight:600; border:0; border-radius:10px; padding:11px 26px; cursor:pointer;
  background:var(--accent); color:#fff; text-decoration:none; }
button:disabled { background:#9aa7d8; cursor:wait; }
progress { width:260px; height:10px; }
#status { color:var(--muted); }
#error { color:var(--bad); background:#fff5f5; border-color:#ffc9c9; white-space:pre-wrap; }
video#video { width:100%; max-height:520px; background:#000; border-radius:8px; }
#summary { color:var(--muted); font-size:14px; }
#warnings { color:#a35d00; font-size:13px; margin:6px 0 0; }
#warnings:empty { display:none; }
footer { color:var(--muted); font-size:12px; margin-top:8px; }
</style></head>
<body><main>
<h1>Animate a portrait</h1>
<p class="lead">Give a photo of a face and a video of someone talking: the face in the photo makes the same head
motion and expressions. Faces are found and cropped automatically, and the video's sound is kept.</p>
<form id="form" action="/animate" method="post" enctype="multipart/form-data">
<div class="grid">
 <section class="card"><h2><span class="n">1</span>Portrait</h2>
  <label class="drop" id="source-drop"><input type="file" name="source" id="source" required
   accept=".jpg,.jpeg,.png,.webp,image/jpeg,image/png,image/webp">
   <span class="empty">Click or drop a photo (jpg, png, webp)</span></label>
  <p class="hint">One clearly visible, roughly frontal face works best.</p></section>
 <section class="card"><h2><span class="n">2</span>Driving video</h2>
  <label class="drop" id="driving-drop"><input type="file" name="driving" id="driving" required
   accept=".mp4,.mov,.webm,.mkv,.gif,video/*,image/gif">
   <span class="empty">Click or drop a video (mp4, mov, webm, mkv, gif)</span></label>
  <p class="hint">The result has its length, frame rate and sound. Uploads up to {{max_mb}} MB in all.</p></section>
</div>
<section class="card"><h2><span class="n">3</span>Options</h2>
 <div class="options">
  <div><label for="mode">Motion</label>
   <select name="mode" id="mode">{{mode_options}}</select>
   <details><summary>Which motion mode?</summary><ul>{{mode_help}}</ul></details></div>
  <div>
   <label class="check"><input type="checkbox" name="paste_back" value="1">
    <span>Paste back: put the animated face into the whole photo</span></label>
   <label class="check"><input type="checkbox" name="side_by_side" value="1">
    <span>Side by side: portrait | driving | result</span></label>
   <label class="check" id="adapt-label"><input type="checkbox" name="adapt_scale" value="1" id="adapt">
    <span>Adapt motion scale to the face sizes (relative and best-frame)</span></label>
   <label class="check"><input type="checkbox" name="no_crop" value="1">
    <span>The inputs are already face crops (no face detection)</span></label>
  </div>
 </div></section>
<div class="row"><button type="submit" id="go">Animate</button><progress id="bar" hidden></progress>
 <span id="status" aria-live="polite"></span></div>
</form>
<section class="card" id="error" role="alert" style="margin-top:16px"{{error_hidden}}>{{error}}</section>
<section class="card" id="result" style="margin-top:16px"{{result_hidden}}>{{result}}</section>
<footer>Model {{model}} ({{size}}&times;{{size}} face crops) on {{device}}. One video at a time; results are
deleted when the server stops.</footer>
</main>
<script>
"use strict";
const MAX_BYTES = {{max_bytes}};
const form = document.getElementById("form"), go = document.getElementById("go");
const bar = document.getElementById("bar"), statusText = document.getElementById("status");
const errorBox = document.getElementById("error"), resultBox = document.getElementById("result");
let poll = null, started = 0;

function preview(input) {
  const drop = input.parentElement, file = input.files[0];
  drop.querySelectorAll("img,video,.name").forEach(function (el) { el.remove(); });
  drop.querySelector(".empty").hidden = !!file;
  if (!file) return;
  const url = URL.createObjectURL(file);
  const isVideo = file.type.startsWith("video/");
  const media = document.createElement(isVideo ? "video" : "img");
  media.src = url;
  if (isVideo) { media.muted = true; media.autoplay = true; media.loop = true; media.playsInline = true; }
  const name = document.createElement("span");
  name.className = "name";
  const size = file.size < 1048576 ? Math.ceil(file.size / 1024) + " KB" : (file.size / 1048576).toFixed(1) + " MB";
  name.textContent = file.name + " (" + size + ")";
  drop.append(media, name);
}
["source", "driving"].forEach(function (id) {
  const input = document.getElementById(id), drop = input.parentElement;
  input.addEventListener("change", function () { preview(input); });
  drop.addEventListener("dragover", function (e) { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", function () { drop.classList.remove("over"); });
  drop.addEventListener("drop", function (e) {
    e.preventDefault(); drop.classList.remove("over");
    if (e.dataTransfer.files.length) { input.files = e.dataTransfer.files; preview(input); }
  });
});
const mode = document.getElementById("mode"), adapt = document.getElementById("adapt");
function updateAdapt() {
  const option = mode.options[mode.selectedIndex];
  const resolved = option.dataset.resolves || option.value;
  const usable = resolved === "relative" || resolved === "best-frame";
  adapt.disabled = !usable;
  document.getElementById("adapt-label").classList.toggle("off", !usable);
}
mode.addEventListener("change", updateAdapt);
updateAdapt();

function clock() {
  const s = Math.round((Date.now() - started) / 1000);
  return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
}
function setStatus(text, fraction) {
  statusText.textContent = text + " \\u00b7 " + clock();
  bar.hidden = false;
  if (fraction === null) bar.removeAttribute("value"); else bar.value = fraction;
}
function finish() {
  if (poll) clearInterval(poll);
  poll = null; go.disabled = false; bar.hidden = true; statusText.textContent = "";
}
function showError(message) {
  finish(); errorBox.textContent = message; errorBox.hidden = false;
}
function showResult(data) {
  finish();
  resultBox.innerHTML = "";
  const video = document.createElement("video");
  video.id = "video"; video.controls = true; video.playsInline = true; video.src = data.video;
  const row = document.createElement("p"); row.className = "row";
  const link = document.createElement("a");
  link.className = "button"; link.href = data.download; link.download = data.filename;
  link.textContent = "Download video";
  const summary = document.createElement("span"); summary.id = "summary"; summary.textContent = data.summary;
  row.append(link, summary);
  const warnings = document.createElement("ul"); warnings.id = "warnings";
  data.warnings.forEach(function (w) {
    const li = document.createElement("li"); li.textContent = w; warnings.append(li);
  });
  resultBox.append(video, row, warnings);
  resultBox.hidden = false;
  video.play().catch(function () {});
}
function watchProgress() {
  poll = setInterval(function () {
    fetch("/progress").then(function (r) { return r.json(); }).then(function (p) {
      if (!poll) return;
      if (p.stage === "animating" && p.total) {
        setStatus("Animating frame " + p.done + " of " + p.total, p.done / p.total);
      }
      else if (p.stage === "finishing") setStatus("Finishing the video", null);
      else setStatus("Finding the faces", null);
    }).catch(function () {});
  }, 700);
}
form.addEventListener("submit", function (e) {
  e.preventDefault();
  const files = [form.source.files[0], form.driving.files[0]];
  if (!files[0] || !files[1]) { showError("Choose a portrait and a driving video first."); return; }
  if (files[0].size + files[1].size > MAX_BYTES) {
    showError("The files are too large: at most {{max_mb}} MB in all (ostnet web --max-upload-mb).");
    return;
  }
  errorBox.hidden = true; go.disabled = true; started = Date.now();
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/animate");
  xhr.setRequestHeader("Accept", "application/json");
  xhr.upload.onprogress = function (ev) { if (ev.lengthComputable) setStatus("Uploading", ev.loaded / ev.total); };
  xhr.upload.onload = function () { setStatus("Finding the faces", null); watchProgress(); };
  xhr.onload = function () {
    let data = null;
    try { data = JSON.parse(xhr.responseText); } catch (err) { data = null; }
    if (xhr.status === 200 && data) showResult(data);
    else showError((data && data.error) || ("The server answered HTTP " + xhr.status + "."));
  };
  xhr.onerror = function () { showError("The server could not be reached. Is ostnet web still running?"); };
  setStatus("Uploading", 0);
  xhr.send(new FormData(form));
});
</script>
</body></html>
"""
