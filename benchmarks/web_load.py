"""Load on ``ostnet web``: N concurrent clients over loopback each submit one job (bounded in count and time).

Each client drives with a clip of its own length, so a video that comes back with another client's frame
count would show a mix-up. While the jobs run, the page is fetched every 0.5 s (is it still responsive?).
After every client has left, the server's temporary folder is listed (it must hold no file).

    python benchmarks/web_load.py --checkpoint CKPT --clip CLIP --portrait IMG [--clients 8] [--max-queue 4]

Prints one JSON report; ``tests/web/test_load.py`` (slow) runs ``run_load`` and checks it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

DEADLINE = 600.0  # seconds: the whole run stops by then


def _clips(clip: Path, count: int, folder: Path) -> list[tuple[Path, int]]:
    """``count`` clips cut from ``clip``, client i's with 3 + i frames."""
    from ostnet.io.video import VideoWriter, read_frames

    frames = read_frames(clip, max_frames=3 + count)
    out = []
    for i in range(count):
        path = folder / f"client{i}.mp4"
        with VideoWriter(path, 25) as writer:
            for frame in frames[: 3 + i]:
                writer.write(frame)
        out.append((path, 3 + i))
    return out


def _client(url: str, portrait: Path, clip: Path, folder: Path) -> dict:
    from gradio_client import Client, handle_file

    start = time.perf_counter()
    client = Client(url, verbose=False, download_files=folder, httpx_kwargs={"timeout": DEADLINE})
    try:
        job = client.submit("tiny", handle_file(str(portrait)), handle_file(str(clip)), api_name="/animate")
        video, summary = job.result(timeout=DEADLINE)
        return {"video": video, "summary": summary, "seconds": time.perf_counter() - start}
    except Exception as exc:  # the queue-full refusal arrives as an exception
        return {"error": f"{type(exc).__name__}: {exc}", "seconds": time.perf_counter() - start}
    finally:
        client.close()


def _poll_page(url: str, stop: threading.Event, latencies: list[float]) -> None:
    while not stop.is_set():
        start = time.perf_counter()
        with urllib.request.urlopen(url, timeout=30) as response:
            response.read()
        latencies.append(time.perf_counter() - start)
        stop.wait(0.5)


def run_load(served, portrait: Path, clip: Path, clients: int = 8) -> dict:
    """Run the load against a running server (``ostnet.web.server.serve(..., block=False)``)."""

    with tempfile.TemporaryDirectory(prefix="ostnet-load-") as tmp:  # the clients' inputs and downloads
        return _load(served, portrait, clip, clients, Path(tmp))


def _load(served, portrait: Path, clip: Path, clients: int, folder: Path) -> dict:
    from ostnet.io.video import probe_video

    inputs = _clips(clip, clients, folder)
    stop, latencies = threading.Event(), []
    poller = threading.Thread(target=_poll_page, args=(served.url, stop, latencies), daemon=True)
    poller.start()
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(_client, served.url, portrait, path, folder) for path, _ in inputs]
        results = [f.result(timeout=DEADLINE) for f in futures]
    wall = time.perf_counter() - start
    stop.set()
    poller.join(timeout=30)
    for result, (_, frames) in zip(results, inputs, strict=True):
        result["expected_frames"] = frames
        if "video" in result:
            result["frames"] = probe_video(result["video"]).num_frames
    deadline = time.monotonic() + 60  # sessions end when their heartbeat stops (a few seconds)
    while time.monotonic() < deadline and _files(served.folder):
        time.sleep(1)
    return {
        "clients": clients,
        "finished": sum("video" in r for r in results),
        "queue_full": sum(_full(r.get("error", "")) for r in results),
        "other_errors": [r["error"] for r in results if "error" in r and not _full(r["error"])],
        "mixed_up": sum(r.get("frames", r["expected_frames"]) != r["expected_frames"] for r in results),
        "job_seconds": sorted(round(r["seconds"], 1) for r in results if "video" in r),
        "wall_seconds": round(wall, 1),
        "page_median_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
        "page_max_ms": round(1000 * max(latencies), 1) if latencies else None,
        "page_fetches": len(latencies),
        "files_left": [str(p) for p in _files(served.folder)],
    }


def _full(error: str) -> bool:
    """The queue-full refusal: ours (checked with the job) or Gradio's own."""
    return "the queue is full" in error or "Queue is full" in error


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--clip", type=Path, required=True)
    parser.add_argument("--portrait", type=Path, required=True)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-queue", type=int, default=4)
    args = parser.parse_args()

    import torch

    from ostnet.web.jobs import load_models
    from ostnet.web.limits import WebLimits
    from ostnet.web.server import serve

    torch.set_num_threads(1)
    limits = WebLimits(max_queue=args.max_queue)
    served = serve(load_models([args.checkpoint], "cpu", 1), limits, "127.0.0.1", 0, block=False, quiet=True)
    try:
        print(json.dumps(run_load(served, args.portrait, args.clip, args.clients), indent=1))
    finally:
        served.close()


if __name__ == "__main__":
    main()
