"""The Gradio Blocks app of ``ostnet web``.

* **Animate**: a portrait and a driving video (upload or webcam recording), the model picker, every
  ``ostnet animate`` option (``ostnet.web.options``, derived from the command's declaration), a progress bar
  per stage, the result with its audio and a download button. A job is checked before it is queued (the
  event's validator: missing files, a video that is not complete or too long, a portrait without a face):
  the page marks the input, the API answers 422. The job itself is ``ostnet.web.jobs.run_job``, i.e.
  ``animate_video`` as ``ostnet animate`` calls it.
* **Live webcam**: the browser's webcam drives the portrait through ``ostnet.inference.stream.StreamStep``
  (the streaming step of ``ostnet live``), with the achieved fps.
* **Pose & expression** and **Edit**: shown for models that offer them.

Files: uploads and results live in the server's own temporary folder (Gradio's cache is pointed there);
each browser session's files are deleted when it ends (``Blocks.unload``), the rest when the server stops.
"""

from __future__ import annotations

import inspect
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from gradio.processing_utils import save_file_to_cache

from ostnet.commands import edit as edit_command
from ostnet.errors import OstnetError
from ostnet.inference.controls import Controls, supported_controls
from ostnet.inference.options import EditOptions
from ostnet.inference.pipeline import animator_for
from ostnet.inference.stream import StreamStep
from ostnet.options import OptionSpec, value_from_page
from ostnet.web.jobs import (
    JobResult,
    ServedModel,
    SessionFiles,
    check_source,
    check_video,
    for_user,
    run_job,
)
from ostnet.web.limits import WebLimits
from ostnet.web.options import (
    animate_web_options,
    edit_web_options,
    is_control,
    options_for,
)
from ostnet.web.options import label as option_label

STAGE_TEXT = {
    "waiting": "waiting for the model",
    "preparing": "finding the faces",
    "animating": "animating",
    "finishing": "writing the video",
}
CACHE_SWEEP = (600, 3600)  # every 10 min, files older than 1 h (abandoned uploads, live frames)
HEARTBEAT = 5  # seconds between a browser's keep-alive messages: a closed tab is noticed this late
LIVE_SECONDS = 300  # one live stream runs at most this long; start it again for more
NOT_YET = (
    "No served model offers this yet: it needs a checkpoint of a model family with {what} "
    "(the PECHead family). Serve one with `ostnet web --checkpoint ...` and the controls appear here."
)


def _slider_range(option: OptionSpec) -> tuple[float, float, float] | None:
    """(low, high, value) of a pose/expression control with bounds (its declaration's); the value is the
    control's "no change" (``Controls()``)."""
    if not is_control(option) or option.bounds is None or None in option.bounds:
        return None
    low, high = option.bounds
    return float(low), float(high), getattr(Controls(), option.name)


def web_default(option: OptionSpec) -> Any:
    """What the page's control starts at: the option's default, or a slider's "no change"."""
    bounds = _slider_range(option)
    if bounds is not None:
        return bounds[2]
    return False if option.type is bool else option.default


def _control(option: OptionSpec, prefix: str = "opt", render: bool = True) -> gr.components.Component:
    common = {
        "label": option_label(option),
        "info": option.help,
        "elem_id": f"{prefix}-{option.dest}",
        "render": render,
    }
    bounds = _slider_range(option)
    if bounds is not None:
        low, high, value = bounds
        return gr.Slider(minimum=low, maximum=high, value=value, step=(high - low) / 200, **common)
    if option.type is bool:
        return gr.Checkbox(value=False, **common)  # ticked = the flag given (--no-crop, --paste-back)
    if option.choices is not None:
        return gr.Dropdown(choices=list(option.choices), value=option.default, **common)
    if option.default is None or option.type is str:  # an optional number: empty = not set (a Number sends 0)
        return gr.Textbox(value="" if option.default is None else option.default, placeholder="not set", **common)
    precision = 0 if option.type is int else None
    return gr.Number(value=option.default, precision=precision, **common)


class WebApp:
    """The served models, limits and session files, and the Blocks built from them (``blocks``)."""

    def __init__(self, models: dict[str, ServedModel], limits: WebLimits, folder: Path) -> None:
        self.models, self.limits = models, limits
        self.cache = gradio_cache(folder)
        self.files = SessionFiles(folder)
        self.options = animate_web_options()
        self.edit_options = edit_web_options()
        self._live: dict[str, tuple[str, StreamStep]] = {}  # session -> (model label, its stream)
        self._live_lock = threading.Lock()
        self._admission = Admission(limits.max_queue + limits.per_model * len(models))
        self.blocks = self._build()

    # ---------------------------------------------------------------- layout
    def _build(self) -> gr.Blocks:
        labels = list(self.models)
        with gr.Blocks(title="ostnet", analytics_enabled=False, delete_cache=CACHE_SWEEP) as blocks:
            gr.Markdown(
                "# ostnet: animate a portrait\nUpload a portrait and a driving video (or record one with "
                "the webcam); the face in the portrait moves like the face in the video. "
                f"Limits: {self.limits.max_upload_mb:g} MB per upload, videos up to "
                f"{self.limits.max_video_seconds:g} s."
            )
            model = gr.Dropdown(
                choices=labels,
                value=labels[0],
                label="Model",
                info="; ".join(f"{m.label}: {m.description}" for m in self.models.values()),
                interactive=len(labels) > 1,
                elem_id="model",
            )
            controls = [_control(o, render=False) for o in self.options if is_control(o)]  # shown in their tab
            with gr.Tabs():
                with gr.Tab("Animate", id="animate"):
                    self._animate_tab(model, controls)
                with gr.Tab("Live webcam", id="live"):
                    self._live_tab(model)
                with gr.Tab("Pose & expression", id="controls"):
                    gr.Markdown(self._controls_note("pose and expression controls"), elem_id="controls-note")
                    for control in controls:
                        control.render()
                with gr.Tab("Edit", id="edit"):
                    self._edit_tab(model)
            blocks.unload(self.end_session)
        self._queue(blocks)
        return blocks

    def _queue(self, blocks: gr.Blocks) -> None:
        """Gradio's queue with our limits. A job the queue refuses (full) is refused before any of our code
        sees it, so its uploads are given to its session here, to be deleted when the session ends."""
        blocks.queue(max_size=self.limits.max_queue, default_concurrency_limit=self.limits.per_model * len(self.models))
        queue = blocks._queue
        push = queue.push

        async def push_keeping_refused_uploads(body, request, username):
            accepted, event_id, state = await push(body=body, request=request, username=username)
            if not accepted and body.session_hash:
                self.files.hold(body.session_hash, *_uploads_in(body.data, self.cache))
            return accepted, event_id, state

        queue.push = push_keeping_refused_uploads

    def _controls_note(self, what: str) -> str:
        able = [m.label for m in self.models.values() if supported_controls(m.model)]
        if not able:
            return NOT_YET.format(what=what)
        return (
            f"Served models with {what}: {', '.join(able)}. Other models refuse a changed control with a "
            "one-line message. Every slider's middle value means no change."
        )

    def _animate_tab(self, model: gr.Dropdown, control_inputs: list) -> None:
        with gr.Row():
            source = gr.Image(label="Portrait", type="filepath", sources=["upload", "webcam"], elem_id="source")
            driving = gr.Video(label="Driving video", sources=["upload", "webcam"], elem_id="driving")
            result = gr.Video(label="Result", interactive=False, buttons=["download"], elem_id="result")
        with gr.Accordion("Options (as `ostnet animate`)", open=False):
            widgets = {}
            for group in dict.fromkeys(o.group for o in self.options if not is_control(o)):
                with gr.Group():
                    gr.Markdown(f"**{group}**")
                    widgets.update((o.dest, _control(o)) for o in self.options if o.group == group)
            controls = [widgets.get(o.dest) for o in self.options]
            pending = iter(control_inputs)
            controls = [c if c is not None else next(pending) for c in controls]
        run = gr.Button("Animate", variant="primary", elem_id="run")
        status = gr.Markdown(elem_id="status")
        run.click(
            self._signed(self.animate, extra=self._SPECIAL),
            inputs=[model, source, driving, *controls],
            outputs=[result, status],
            validator=self._signed(self.validate, extra=self._SPECIAL[:1]),
            api_name="animate",
            concurrency_limit=self.limits.per_model * len(self.models),
            concurrency_id="animate",
        )

    def _edit_tab(self, model: gr.Dropdown) -> None:
        gr.Markdown(self._controls_note("image editing (`ostnet edit`)"), elem_id="edit-note")
        with gr.Row():
            portrait = gr.Image(label="Portrait", type="filepath", sources=["upload"], elem_id="edit-source")
            edited = gr.Image(label="Edited", interactive=False, format="png", elem_id="edit-out")
        widgets = [_control(o, prefix="edit") for o in self.edit_options]
        button = gr.Button("Edit the portrait", elem_id="edit-run")
        button.click(
            self._signed(self.edit, self._SPECIAL[:1], self.edit_options, ("model", "source")),
            inputs=[model, portrait, *widgets],
            outputs=[edited],
            api_name="edit",
            concurrency_limit=self.limits.per_model * len(self.models),
            concurrency_id="animate",
        )

    def _live_tab(self, model: gr.Dropdown) -> None:
        gr.Markdown(
            "Upload a portrait, then start the webcam: your face drives the portrait in real time "
            "(the same streaming step as `ostnet live`)."
        )
        with gr.Row():
            portrait = gr.Image(label="Portrait", type="numpy", sources=["upload"], elem_id="live-source")
            camera = gr.Image(label="Webcam", sources=["webcam"], streaming=True, type="numpy", elem_id="camera")
            output = gr.Image(label="Animated", format="jpeg", interactive=False, elem_id="live-out")
        fps = gr.Markdown(elem_id="live-fps")
        camera.stream(
            self.live_step,
            inputs=[model, portrait, camera],
            outputs=[output, fps],
            stream_every=0.1,
            time_limit=LIVE_SECONDS,
            concurrency_limit=self.limits.per_model * len(self.models),
            concurrency_id="live",
            api_name="live",
        )
        portrait.change(self.reset_live, inputs=None, outputs=None, api_visibility="private")

    # ---------------------------------------------------------------- events
    def validate(
        self, label: str, source: str | None, driving: str | None, *values: Any, request: gr.Request
    ) -> list[dict]:
        """Checks before the job is queued: one ``gr.validate`` per input. The uploads now belong to the session."""
        self.files.hold(request.session_hash or "api", source, driving)
        verdicts = [gr.validate(True, "") for _ in range(3 + len(values))]
        chosen = self.models.get(label)
        if chosen is None:
            verdicts[0] = gr.validate(False, f"unknown model {label!r}; choose one of {', '.join(self.models)}")
            return verdicts
        named = self._values(values)
        for index, option in enumerate(self.options, start=3):
            try:
                value_from_page(option, named[option.dest])
            except OstnetError as exc:
                verdicts[index] = gr.validate(False, str(exc))
        if not all(v["is_valid"] for v in verdicts):
            return verdicts
        names = {str(source): "the portrait", str(driving): "the driving video"}
        checks = {1: lambda: check_source(source, named, chosen), 2: lambda: check_video(driving, self.limits)}
        for index, check in checks.items():
            try:
                check()
            except OstnetError as exc:
                verdicts[index] = gr.validate(False, for_user(str(exc), names))
        if all(v["is_valid"] for v in verdicts) and not self._admission.admit(request.session_hash or "api"):
            verdicts[0] = gr.validate(False, self._admission.busy(self.limits.max_queue))
        return verdicts

    def animate(
        self,
        label: str,
        source: str,
        driving: str,
        *values: Any,
        request: gr.Request,
        progress: gr.Progress,
    ) -> tuple[str, str]:
        """Run one job (see ``run_job``); a bad input raises ``gr.Error`` with one line, never a traceback."""
        session = request.session_hash or "api"
        with self._admission.running(session):
            return self._animate(session, label, source, driving, values, progress)

    def _animate(self, session: str, label: str, source: str, driving: str, values: tuple, progress) -> tuple[str, str]:
        output = self.files.new_output()
        self.files.hold(session, source, driving)

        def on_stage(stage: str, done: int, total: int) -> None:
            progress((done, total), desc=STAGE_TEXT[stage], unit="frames")

        names = {str(source): "the portrait", str(driving): "the driving video", str(output.parent): ""}
        try:
            result: JobResult = run_job(self.models[label], source, driving, self._values(values), output, on_stage)
        except OstnetError as exc:
            raise gr.Error(for_user(str(exc), names), duration=None, print_exception=False) from None
        finally:
            video = self._publish(session, output)
        lines = [result.line(label)] + [f"warning: {for_user(w, names)}" for w in result.warnings]
        return str(video), "\n\n".join(lines)

    def edit(self, label: str, portrait: str | None, *values: Any, request: gr.Request) -> str:
        """``ostnet edit`` itself (its options and ``edit``) on the upload, with the page's controls."""
        if not portrait:
            raise gr.Error("upload a portrait first", print_exception=False)
        session = request.session_hash or "api"
        self.files.hold(session, portrait)
        output = self.files.new_output().with_name("edited.png")
        served = self.models[label]
        server = {"source": portrait, "checkpoint": served.path, "output": output, "device": served.device}
        try:
            named = {o.dest: v for o, v in zip(self.edit_options, values, strict=True)}
            edit_command.edit(options_for(named, server, EditOptions), served.model)
        except OstnetError as exc:
            raise gr.Error(
                for_user(str(exc), {portrait: "the portrait"}), duration=None, print_exception=False
            ) from None
        finally:
            edited = self._publish(session, output)
        return str(edited)

    def live_step(
        self, label: str, portrait: np.ndarray | None, frame: np.ndarray | None, request: gr.Request
    ) -> tuple[Any, str]:
        """One webcam frame through the session's ``StreamStep``."""
        if portrait is None:
            raise gr.Error("upload a portrait first, then start the webcam", print_exception=False)
        if frame is None:
            return gr.skip(), "waiting for the webcam"
        try:
            step = self._stream_step(request.session_hash or "api", label, portrait)
            face = step.step(np.ascontiguousarray(frame[..., :3]))
        except OstnetError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        stats = step.stats
        fps = "measuring..." if np.isnan(stats.fps) else f"{stats.fps:.1f} fps"
        return face, f"{fps} (latency {stats.latency_ms:.0f} ms, {stats.frames} frames)"

    def reset_live(self, request: gr.Request) -> None:
        self._close_live(request.session_hash or "api")

    def end_session(self, request: gr.Request) -> None:
        """The browser tab closed: delete its files and stop its live stream."""
        self._close_live(request.session_hash or "api")
        self.files.release(request.session_hash or "api")

    # ---------------------------------------------------------------- helpers
    _SPECIAL = (
        inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=gr.Request),
        inspect.Parameter("progress", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=gr.Progress()),
    )

    def _signed(
        self, fn, extra: tuple[inspect.Parameter, ...] = (), options=None, first=("model", "source", "driving")
    ):
        """``fn(model, source, driving, *values, ...)`` with a signature that names every option, so that Gradio's
        API documents ``mode=...``, ``paste_back=...`` and lets optional ones be left out."""

        positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
        params = [inspect.Parameter(name, positional) for name in first]
        params += [inspect.Parameter(o.dest, positional, default=web_default(o)) for o in options or self.options]
        signature = inspect.Signature([*params, *extra])

        def call(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            values = list(bound.arguments.values())
            special = {p.name: bound.arguments[p.name] for p in extra}
            return fn(*values[: len(params)], **special)

        call.__signature__ = signature  # type: ignore[attr-defined]
        call.__annotations__ = {p.name: p.annotation for p in extra if p.annotation is not inspect.Parameter.empty}
        call.__name__ = fn.__name__
        return call

    def _values(self, values: tuple) -> dict[str, Any]:
        return {o.dest: v for o, v in zip(self.options, values, strict=True)}

    def _publish(self, session: str, output: Path) -> Path | None:
        """Move a job's video into Gradio's cache (Gradio then serves it without another copy) and give it to
        ``session``; the job's own folder is removed, also when the job failed (then: None)."""
        cached = Path(save_file_to_cache(output, str(self.cache))) if output.is_file() else None
        self.files.discard_output(output)
        self.files.hold(session, cached)
        return cached

    def _stream_step(self, session: str, label: str, portrait: np.ndarray) -> StreamStep:
        with self._live_lock:
            current = self._live.get(session)
        if current is not None and current[0] == label:
            return current[1]
        served = self.models[label]
        options = options_for({}, {"source": "-", "driving": "-", "output": "-", "device": served.device})
        step = StreamStep(animator_for(served.model, options))
        step.set_source(np.ascontiguousarray(portrait[..., :3]))
        with self._live_lock:
            old, self._live[session] = self._live.get(session), (label, step)
        if old is not None:
            old[1].close()
        return step

    def _close_live(self, session: str) -> None:
        with self._live_lock:
            current = self._live.pop(session, None)
        if current is not None:
            current[1].close()


class Admission:
    """How many jobs the server holds (running, queued, or admitted by the validator and on their way into
    Gradio's queue), so that the queue limit holds although validation runs before Gradio's own check.
    An admitted job that never starts (its client left) stops counting after ``stale`` seconds."""

    def __init__(self, capacity: int, stale: float = 60.0) -> None:
        self.capacity, self.stale = capacity, stale
        self._lock = threading.Lock()
        self._admitted: list[tuple[str, float]] = []
        self._running = 0

    def admit(self, session: str) -> bool:
        now = time.monotonic()
        with self._lock:
            self._admitted = [(s, t) for s, t in self._admitted if now - t < self.stale]
            if self._running + len(self._admitted) >= self.capacity:
                return False
            self._admitted.append((session, now))
            return True

    def busy(self, max_queue: int) -> str:
        return f"the server is busy: the queue is full ({max_queue} jobs waiting, --max-queue); try again in a minute"

    @contextmanager
    def running(self, session: str):
        with self._lock:
            mine = next((i for i, (s, _) in enumerate(self._admitted) if s == session), None)
            if mine is not None:
                del self._admitted[mine]
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1


def _uploads_in(data: Any, cache: Path) -> list[Path]:
    """The files of Gradio's cache named in a request's data (``{"path": ...}`` anywhere in it)."""
    found: list[Path] = []
    if isinstance(data, dict):
        path = data.get("path")
        if isinstance(path, str) and cache in Path(path).parents:
            found.append(Path(path))
        data = list(data.values())
    if isinstance(data, list):
        for item in data:
            found += _uploads_in(item, cache)
    return found


def gradio_cache(folder: Path) -> Path:
    """Point Gradio's upload cache at ``folder/gradio`` (Gradio reads it when components are made and at each
    upload), turn its analytics off and notice closed tabs within ``HEARTBEAT`` seconds."""
    cache = folder / "gradio"
    cache.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(cache)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("GRADIO_HEARTBEAT_INTERVAL", str(HEARTBEAT))
    return cache


__all__ = ["WebApp", "gradio_cache"]
