"""Strandcap benchmark: per-stage wall time and peak memory, strand F-scores on synthetic captures,
wall time on real clips. Writes ``<out>/<date>-<machine>.json`` and ``.md``.

Usage:
    python benchmarks/run.py [--preset preview] [--device auto]
                             [--cases sample,straight,wavy,curly,d3,d10]
                             [--until STAGE] [--out docs/benchmarks] [--machine NAME]
                             [--frames 60] [--size 512] [--work DIR]

Cases:
* ``sample``: the embedded sample (resources/sample/capture.mp4) with its ground truth.
* ``straight``, ``wavy``, ``curly``: synthetic turning-head captures (:mod:`engine.synthetic`) of
  procedural grooms from :mod:`engine.prior.synth` with fixed seeds (3,000,000 + curl index),
  an MP4 like a user's video; their ground-truth groom is kept beside it.
* ``blender-<groom>-orbit`` / ``-turn`` / ``-turn360`` (a whole turn; groom: straight, wavy,
  curly, short, sintel, bald): captures path traced by Blender Cycles
  (:mod:`benchmarks.blender_capture`), cached in ``--blender-cache`` outside the repo; an orbit is reconstructed from its images with its known
  cameras (transforms.json) and ``landmarks.min_found_fraction = 0.25`` (its back views show no
  face), a turn from its video.
* ``d3``, ``d10``: the real clips ``../shared/data/videos/<name>.mp4`` (skipped, with a note,
  when absent).

Every stage of the graph (``engine.registry.default_stages``) runs in its own subprocess, in
order, on one project per case (earlier stages are then found on disk, so each subprocess does
exactly one stage's work). A subprocess reports the stage's own wall time (from the runner's
``StageFinished`` event), the process's peak resident memory (:func:`peak_rss_mb`) and its peak
before the stage started (imports), and on CUDA ``torch.cuda.max_memory_allocated``.

Cases with ground truth are scored with :func:`engine.metrics.groom_scores` (point and
strand-level precision / recall / F, length and curvature W1, matched-strand length error) when
a stage named ``strands`` produced ``groom.npz`` (otherwise the report says so). Every case with
a groom, real clips included, gets :func:`engine.checks.project_checks` (fold share, face
intrusion, points inside the head, silhouette IoU against the hair masks, bald visible scalp,
colour error) and a contact sheet ``<out>/<date>-<machine>/<case>.jpg`` (turntable, strands
over keyframes, and the true groom's turntable where there is one) to look at.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SHARED = REPO.parent / "shared" / "data"
SYNTHETIC = ("straight", "wavy", "curly")
REAL = ("d3", "d10")
SCHEMA_VERSION = 1
SYNTH_SEED = 3_000_000
ORBIT_MIN_FACES = 0.25  # landmarks.min_found_fraction of a 360-degree orbit (back views: no face)


# ---------------------------------------------------------------------------------------------
# Machine and memory
# ---------------------------------------------------------------------------------------------


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _total_ram_gb() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (AttributeError, ValueError, OSError):
        try:
            import psutil  # type: ignore

            return round(psutil.virtual_memory().total / 2**30, 1)
        except ImportError:
            return None


def machine_info(device: str) -> dict[str, Any]:
    """CPU, cores, RAM, OS, Python, torch version and the compute device (name, memory)."""
    import numpy
    import torch

    info: dict[str, Any] = {
        "cpu": _cpu_name(), "cores": os.cpu_count(), "ram_gb": _total_ram_gb(),
        "os": platform.platform(), "python": platform.python_version(),
        "numpy": numpy.__version__, "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": device,
    }
    try:  # other work on the machine inflates wall times: record it
        info["load_average_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        pass
    if device == "cuda" and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=p.name, gpu_memory_gb=round(p.total_memory / 2**30, 1),
                    cuda=torch.version.cuda)
    return info


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process so far, MiB (None where it cannot be read).

    Linux: ``VmHWM`` of /proc/self/status (the peak of this process's own address space;
    ``getrusage`` maxrss would also count the parent's memory, which a child keeps across
    fork and exec). macOS: ``getrusage`` maxrss. Windows: the peak working set
    (``GetProcessMemoryInfo``).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    if sys.platform == "win32":
        return _windows_peak_working_set_mb()
    try:
        import resource

        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return r / 2**20 if sys.platform == "darwin" else r / 1024.0  # bytes on macOS, KiB else
    except ImportError:
        return None


def _windows_peak_working_set_mb() -> float | None:
    """PeakWorkingSetSize of this process (GetProcessMemoryInfo), MiB; None on failure."""
    try:
        import ctypes
        from ctypes import wintypes

        class Counters(ctypes.Structure):
            _fields_ = [("cb", wintypes.DWORD), ("PageFaultCount", wintypes.DWORD)] + [
                (n, ctypes.c_size_t) for n in (
                    "PeakWorkingSetSize", "WorkingSetSize", "QuotaPeakPagedPoolUsage",
                    "QuotaPagedPoolUsage", "QuotaPeakNonPagedPoolUsage",
                    "QuotaNonPagedPoolUsage", "PagefileUsage", "PeakPagefileUsage")]

        c = Counters()
        c.cb = ctypes.sizeof(Counters)
        psapi = ctypes.WinDLL("psapi")
        kernel32 = ctypes.WinDLL("kernel32")
        kernel32.GetCurrentProcess.restype = wintypes.HANDLE
        if not psapi.GetProcessMemoryInfo(kernel32.GetCurrentProcess(), ctypes.byref(c), c.cb):
            return None
        return c.PeakWorkingSetSize / 2**20
    except (OSError, AttributeError, ImportError):
        return None


# ---------------------------------------------------------------------------------------------
# Stage graph
# ---------------------------------------------------------------------------------------------


def load_stages(spec: str | None) -> list:
    """The stage list: ``engine.registry.default_stages()`` or ``module:function`` (tests)."""
    if not spec:
        from engine.registry import default_stages

        return default_stages()
    mod, _, fn = spec.partition(":")
    return list(getattr(importlib.import_module(mod), fn)())


def worker(args: argparse.Namespace) -> int:
    """Run the graph up to and including ``args.stage`` in this process; print one JSON line."""
    t_start = time.perf_counter()
    from engine.pipeline import PipelineConfig, Project, StageFinished, run_pipeline

    stages = load_stages(args.stages)
    names = [s.name for s in stages]
    stages = stages[: names.index(args.stage) + 1]
    overrides = {k: v for k, v in json.loads(args.overrides or "{}").items()
                 if k in {s.name for s in stages}}
    config = PipelineConfig(stages, args.preset, overrides, args.device)
    project = Project.open(args.project)
    cuda = config.device == "cuda"
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
    rss0 = peak_rss_mb()
    out: dict[str, Any] = {"stage": args.stage, "ok": True}
    try:
        for ev in run_pipeline(project, stages, config):
            if isinstance(ev, StageFinished) and ev.stage == args.stage:
                out.update(wall_s=round(ev.wall_s, 3), cached=ev.cached, path=str(ev.path),
                           summary=json.loads(json.dumps(dict(ev.summary), default=str)))
    except Exception as exc:  # reported, not raised: the parent keeps benchmarking
        out.update(ok=False, error=f"{type(exc).__name__}: {exc}")
    out["baseline_rss_mb"] = None if rss0 is None else round(rss0, 1)
    rss1 = peak_rss_mb()
    out["peak_rss_mb"] = None if rss1 is None else round(rss1, 1)
    if cuda:
        import torch

        out["gpu_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    out["process_s"] = round(time.perf_counter() - t_start, 3)
    print("BENCH-RESULT " + json.dumps(out))
    return 0


def run_stages_in_process(project: Path, stage_names: Sequence[str], preset: str, device: str,
                          overrides: dict | None, stages_spec: str | None) -> list[dict[str, Any]]:
    """Run the stages in this process (``--in-process``: quick runs and tests). Wall times as in
    the subprocess mode; ``peak_rss_mb`` is this process's peak so far (not per stage)."""
    from engine.pipeline import PipelineConfig, Project, StageFinished, run_pipeline

    stages = load_stages(stages_spec)
    stages = stages[: len(stage_names)]
    config = PipelineConfig(stages, preset, {k: v for k, v in (overrides or {}).items()
                                             if k in set(stage_names)}, device)
    out: list[dict[str, Any]] = []
    rss0 = peak_rss_mb()
    try:
        for ev in run_pipeline(Project.open(project), stages, config):
            if isinstance(ev, StageFinished):
                out.append({"stage": ev.stage, "ok": True, "wall_s": round(ev.wall_s, 3),
                            "cached": ev.cached, "path": str(ev.path),
                            "summary": json.loads(json.dumps(dict(ev.summary), default=str)),
                            "baseline_rss_mb": rss0, "peak_rss_mb": peak_rss_mb(),
                            "in_process": True})
    except Exception as exc:  # reported like a failed subprocess
        out.append({"stage": stage_names[len(out)], "ok": False,
                    "error": f"{type(exc).__name__}: {exc}"})
    return out


def run_stage_subprocess(project: Path, stage: str, preset: str, device: str,
                         overrides: dict | None, stages_spec: str | None,
                         timeout_s: float | None = None) -> dict[str, Any]:
    """Run one stage (earlier ones from the cache) in a fresh Python process; its report."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--project", str(project),
           "--stage", stage, "--preset", preset, "--device", device,
           "--overrides", json.dumps(overrides or {})]
    if stages_spec:
        cmd += ["--stages", stages_spec]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env,
                              cwd=str(REPO))
    except subprocess.TimeoutExpired:
        return {"stage": stage, "ok": False, "error": f"timed out after {timeout_s} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("BENCH-RESULT "):
            res = json.loads(line[len("BENCH-RESULT "):])
            res["subprocess_s"] = round(time.perf_counter() - t0, 3)
            return res
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"stage": stage, "ok": False,
            "error": f"worker exited {proc.returncode}: " + " | ".join(tail)}


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------


def face_rate(images: list) -> float | None:
    """Share of RGB images where mediapipe's face mesh finds a face (None without mediapipe)."""
    try:
        import mediapipe as mp
    except ImportError:
        return None
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1) as fm:
        found = [bool(fm.process(im).multi_face_landmarks) for im in images]
    return round(sum(found) / max(len(found), 1), 3)


def bench_head_path() -> Path:
    """The head model file of the synthetic cases: the shared ICT Face Model Light when present
    (so renders do not change when the shipped head does), else the shipped head."""
    from engine.synthetic.head import ICT_SHARED, SHIPPED_HEAD

    return ICT_SHARED if ICT_SHARED.is_file() else SHIPPED_HEAD


def case_render_settings(n_strands: int):
    """Render settings of a synthetic case: ribbons 0.5 mm wide at 10,000 strands, wider for
    fewer strands (same coverage)."""
    from engine.synthetic import RenderSettings

    return RenderSettings(hair_width_m=0.0005 * (10000 / max(n_strands, 1)) ** 0.5, seed=1)


def make_synthetic_case(curl: str, folder: Path, frames: int, size: int, n_strands: int,
                        n_points: int, fps: float = 30.0) -> tuple[Path, Path, dict]:
    """Render a turning-head capture of a procedural ``curl`` groom into ``folder``.

    Returns (video path, ground-truth groom.npz path, description). Reuses an earlier render in
    the same folder when its description matches.
    """
    import cv2

    from engine.io.export import export_groom
    from engine.io.groom import Groom
    from engine.prior.synth import CURL_CLASSES, sample_style, synth_groom
    from engine.synthetic import HeadModel, render, save_cameras, turning_head_rig

    style = sample_style(SYNTH_SEED + CURL_CLASSES.index(curl), curl=curl, length="medium",
                         parting="none", fringe=False)
    desc = {"curl": curl, "frames": frames, "size": size, "strands": n_strands, "points": n_points,
            "fps": fps, "style": style.to_dict(), "yaw_range_deg": [-50.0, 50.0],
            "head": bench_head_path().name}
    folder.mkdir(parents=True, exist_ok=True)
    video, gt, meta = folder / "capture.mp4", folder / "groom.npz", folder / "case.json"
    if meta.is_file() and video.is_file() and gt.is_file():
        old = json.loads(meta.read_text())
        if old.get("desc") == desc:
            return video, gt, old["out"]
    t0 = time.perf_counter()
    g = synth_groom(style, n_strands=n_strands, n_points=n_points)
    head = HeadModel.load(bench_head_path())
    cams, poses = turning_head_rig(frames, size, size, yaw_range_deg=(-50.0, 50.0), fps=fps)
    settings = case_render_settings(n_strands)
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size, size))
    images = []
    t1 = time.perf_counter()
    for cam in cams:
        images.append(render(cam, head, g.strands, settings=settings).rgb)
        writer.write(cv2.cvtColor(images[-1], cv2.COLOR_RGB2BGR))
    writer.release()
    per_frame = (time.perf_counter() - t1) / max(len(cams), 1)
    desc_out = dict(desc, render_s_per_frame=round(per_frame, 3),
                    groom_s=round(t1 - t0, 2),
                    mediapipe_face_rate=face_rate(images[::5]))
    export_groom(Groom(g.strands, root_uv=g.uv), gt, units="m")
    save_cameras(folder / "cameras.json", cams, fps=fps, poses=poses)
    meta.write_text(json.dumps({"desc": desc, "out": desc_out}))
    return video, gt, desc_out


def make_blender_case(case: str, folder: Path, args: argparse.Namespace,
                      log: Callable[[str], None]) -> tuple[Path, dict, dict, dict]:
    """Render (or reuse) the Blender capture ``blender-<groom>-<kind>`` in ``folder`` with
    ``benchmarks/blender_capture.py`` in a subprocess (Blender stays out of this process).
    Returns (source, truth, case overrides, the capture's case.json description). An orbit
    is reconstructed from its images with its known cameras (``cameras.mode = transforms``);
    a turn from its video like a phone user's.

    Raises RuntimeError when the render fails (the message ends with Blender's last lines)."""
    _, groom, kind = case.split("-", 2)
    cmd = [sys.executable, str(REPO / "benchmarks" / "blender_capture.py"), "--groom", groom,
           "--kind", kind, "--out", str(folder), "--size", str(args.blender_size),
           "--samples", str(args.blender_samples)]
    cmd += ["--views", str(args.blender_views)] if kind == "orbit" else \
        ["--frames", str(args.frames)]
    log(f"rendering {case} with Blender ({' '.join(cmd[2:])}) ...")
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(REPO))
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise RuntimeError(f"blender_capture.py exited {proc.returncode}: {tail}")
    desc = json.loads((folder / "case.json").read_text())
    truth = {"groom": folder / "groom.npz"}
    if kind == "orbit":  # the back views have no face: keep them (the head fit uses the rest)
        return folder / "images", truth, {
            "cameras": {"mode": "transforms",
                        "import_path": str((folder / "transforms.json").resolve())},
            "landmarks": {"min_found_fraction": ORBIT_MIN_FACES}}, desc
    return folder / "capture.mp4", truth, {}, desc


def finished_outputs(project_root: Path, stages_spec: str | None, preset: str, device: str,
                     overrides: dict | None) -> dict[str, Path]:
    """Stage name -> folder of every finished stage of the case's config."""
    from engine.pipeline import PipelineConfig, Project, resolve_artifact

    stages = load_stages(stages_spec)
    config = PipelineConfig(stages, preset, overrides, device)
    project = Project.open(project_root)
    out = {}
    for st in stages:
        art = resolve_artifact(project, stages, config, st.name)
        if art is not None:
            out[st.name] = art.path
    return out


def score_groom(outputs: dict[str, Path], gt_path: Path) -> tuple[dict | None, str]:
    """:func:`engine.metrics.groom_scores` (point, strand-level and shape) of the strands
    stage's groom.npz against ``gt_path``, or (None, why not)."""
    from engine.io.export import load_groom
    from engine.metrics import groom_scores

    groom = outputs.get("strands", Path("/nonexistent")) / "groom.npz"
    if not groom.is_file():
        return None, "the strands stage produced no groom.npz: no F-scores"
    return groom_scores(load_groom(groom).strands, load_groom(gt_path).strands, workers=-1), ""


MASK_TRUTH_LEVEL = 12  # of 255, largest channel: what the hair changes in a rendered pixel


def orbit_mask_truth(outputs: dict[str, Path], case_folder: Path, bald_folder: Path
                     ) -> dict | None:
    """The masks stage's hair masks of a Blender orbit against the truth: a pixel is hair where
    the orbit's render differs from the same view of ``blender-bald-orbit`` (the same head,
    lights and cameras without hair, in ``bald_folder``) by more than
    :data:`MASK_TRUTH_LEVEL` in some channel (both renders share Cycles' seed, so their noise
    cancels where nothing changed). Per keyframe precision / recall / IoU of the mask (> 0.5)
    in percent
    (:func:`engine.metrics.silhouette_scores`), averaged separately over the keyframes that
    showed a face and those that did not (the back views, masked from the colour models alone).
    Hair's shadow on the skin counts as hair in this truth, and the bald head's painted stubble
    under thin hair does not. None unless both renders and the keyframes and masks exist."""
    import cv2
    import numpy as np

    from engine.metrics import silhouette_scores
    from engine.preprocess.artifacts import load_keyframes, load_mask

    if "keyframes" not in outputs or "masks" not in outputs:
        return None
    meta, _ = load_keyframes(outputs["keyframes"])
    stems = sorted(p.stem for p in (case_folder / "images").glob("*.png"))
    per: dict[str, dict] = {}
    for f in meta["frames"]:
        i = f.get("source_index")
        if i is None or not 0 <= int(i) < len(stems):
            continue
        a = cv2.imread(str(case_folder / "images" / f"{stems[int(i)]}.png"), cv2.IMREAD_COLOR)
        b = cv2.imread(str(bald_folder / "images" / f"{stems[int(i)]}.png"), cv2.IMREAD_COLOR)
        if a is None or b is None or a.shape != b.shape:
            continue
        truth = (np.abs(a.astype(np.int16) - b.astype(np.int16)).max(2)
                 > MASK_TRUTH_LEVEL).astype(np.uint8)
        mask = load_mask(outputs["masks"], "hair", f["name"]) > 0.5
        if truth.shape != mask.shape:
            truth = cv2.resize(truth, mask.shape[::-1], interpolation=cv2.INTER_NEAREST)
        per[f["name"]] = {**silhouette_scores(mask, truth > 0),
                          "face": f.get("yaw_deg") is not None}
    if not per:
        return None
    out: dict[str, Any] = {"frames": per}
    for label, face in (("face_views", True), ("faceless_views", False)):
        sel = [v for v in per.values() if v["face"] == face]
        out[label] = ({k: float(np.mean([v[k] for v in sel])) for k in ("precision", "recall",
                                                                         "iou")}
                      | {"views": len(sel)}) if sel else {"views": 0}
    return out


def check_groom(project_root: Path, stages_spec: str | None) -> tuple[dict | None, str]:
    """:func:`engine.checks.project_checks` (no ground truth needed), or (None, why not)."""
    from engine.checks import project_checks
    from engine.errors import StrandcapError

    try:
        return project_checks(project_root, stages=load_stages(stages_spec), workers=-1), ""
    except StrandcapError as exc:
        return None, f"no checks: {exc}"


def write_case_sheet(name: str, outputs: dict[str, Path], truth: dict | None, work: Path,
                     sheet_dir: Path) -> Path | None:
    """A contact sheet of the case's groom as ``<sheet_dir>/<name>.jpg``: the turntable at 0,
    90, 180, 270 degrees and the strands over 8 keyframes (``strandcap``'s own preview), and
    for cases with ground truth the true groom's turntable row under it. None without a
    groom; the turntable video stays in ``work``."""
    import cv2
    import numpy as np

    from engine.preview import write_project_preview
    from engine.head.model import load_head_mesh
    from engine.io.export import load_groom
    from engine.preprocess.previews import contact_sheet
    from engine.preview.turntable import turntable_frames

    groom_file = outputs.get("strands", Path("/nonexistent")) / "groom.npz"
    if not groom_file.is_file():
        return None
    pred = load_groom(groom_file)
    paths = write_project_preview(pred, outputs, work / f"preview-{name}")
    sheet = cv2.cvtColor(cv2.imread(str(paths["preview"])), cv2.COLOR_BGR2RGB)
    if truth is not None:
        gt = load_groom(truth["groom"])
        head = None
        if not gt.has_head and (outputs.get("cameras", work) / "head.obj").is_file():
            head = load_head_mesh(outputs["cameras"] / "head.obj")
        views = turntable_frames(gt, size=512, head=head, angles_deg=[0, 90, 180, 270])
        row = contact_sheet(views, columns=4, width=sheet.shape[1] // 4)
        cv2.putText(row, "truth", (8, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
        sheet = np.concatenate([sheet[:, : row.shape[1]], row], 0)
    sheet_dir.mkdir(parents=True, exist_ok=True)
    out = sheet_dir / f"{name}.jpg"
    if not cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR),
                       [cv2.IMWRITE_JPEG_QUALITY, 85]):
        raise OSError(f"{out}: cannot write the contact sheet")
    return out


def _angle_err_deg(a, b):
    import numpy as np

    d = np.abs(a - b) % np.pi
    return np.degrees(np.minimum(d, np.pi - d))


def synthetic_truth(case_dir: Path) -> dict[str, Any]:
    """How to re-render a synthetic case made by :func:`make_synthetic_case`: a truth spec."""
    desc = json.loads((case_dir / "case.json").read_text())["desc"]
    return {"cameras": case_dir / "cameras.json", "groom": case_dir / "groom.npz",
            "head": bench_head_path(), "head_seed": 0,
            "settings": case_render_settings(desc["strands"])}


def sample_truth() -> dict[str, Any]:
    """The truth spec of the embedded sample (resources/sample, scripts/make_sample.py)."""
    from engine.resources import resource
    from engine.synthetic import RenderSettings
    from engine.synthetic.head import ICT_SHARED, SHIPPED_HEAD

    meta = json.loads(resource("sample", "sample.json").read_text())
    settings = {k: tuple(v) if isinstance(v, list) else v
                for k, v in meta["render_settings"].items()}
    return {"cameras": resource("sample", "cameras.json"), "groom": resource("sample", "groom.npz"),
            "head": ICT_SHARED if ICT_SHARED.is_file() else SHIPPED_HEAD,
            "head_seed": int(meta.get("head_seed", 1)), "settings": RenderSettings(**settings)}


def camera_accuracy(cam_file: Path, true_cams: dict[str, Any]) -> dict[str, Any]:
    """Cameras stage output (``cameras.json`` keyed by keyframe name, head frame) against the
    true keyframe cameras (:func:`engine.cameras.camera.camera_accuracy`; the head frame is the
    ICT model's, so the raw figures need no alignment)."""
    from engine.cameras import camera as C

    return C.camera_accuracy(C.load_cameras(cam_file), dict(true_cams))


def preprocess_accuracy(project_root: Path, stages_spec: str | None, preset: str, device: str,
                        overrides: dict | None, truth: dict[str, Any]) -> dict[str, Any] | None:
    """Preprocessing outputs of a synthetic capture against the renderer's ground truth.

    ``truth``: cameras.json path, groom path, head model path and seed, RenderSettings (see
    :func:`synthetic_truth`, :func:`sample_truth`).

    For every keyframe (its ``source_index`` is the video frame, so the true camera is known)
    the frame is re-rendered with its truth: hair and bust mask IoU (masks > 0.5), median
    orientation error in degrees over true hair pixels where the orientation stage reported a
    confidence > 0 (and the share of true hair pixels it covered), landmark detection rate and
    the pixel error of mediapipe's nose tip (landmark 1) against the projected ICT nose tip,
    keyframe yaw error against the true head yaw (``yaw_sign`` -1 means the stage reports yaw
    with the opposite sign). None when no preprocessing artifacts exist.
    """
    import numpy as np

    from engine.io.export import load_groom
    from engine.pipeline import PipelineConfig, Project, resolve_artifact
    from engine.synthetic import Camera, HeadModel, load_camera_records, load_cameras, render

    try:
        from engine.preprocess import artifacts as A
    except ImportError:
        return None
    stages = load_stages(stages_spec)
    names = [s.name for s in stages]
    config = PipelineConfig(stages, preset, overrides, device)
    project = Project.open(project_root)
    art = {n: resolve_artifact(project, stages, config, n)
           for n in ("keyframes", "landmarks", "masks", "orientation", "cameras") if n in names}
    if art.get("keyframes") is None:
        return None
    meta, kf_names = A.load_keyframes(art["keyframes"].path)
    cams = load_cameras(truth["cameras"])
    cam_meta = load_camera_records(truth["cameras"])
    strands = load_groom(truth["groom"]).strands
    head = HeadModel.load(truth["head"], seed=truth["head_seed"])
    settings = truth["settings"]
    lms = A.load_landmarks(art["landmarks"].path) if art.get("landmarks") else None
    rows: dict[str, list] = {k: [] for k in ("hair_iou", "bust_iou", "orient_err", "orient_cover",
                                             "nose_px", "found", "yaw_pred", "yaw_true")}
    true_cams: dict[str, Any] = {}
    for i, (fr, name) in enumerate(zip(meta["frames"], kf_names)):
        k = int(fr["source_index"])
        c = cams[k]
        sc = meta["width"] / c.width
        cam = Camera(fx=c.fx * sc, fy=c.fy * sc, cx=(c.cx + 0.5) * sc - 0.5,
                     cy=(c.cy + 0.5) * sc - 0.5, width=meta["width"], height=meta["height"],
                     R=c.R, t=c.t)
        true_cams[name] = cam
        truth = render(cam, head, strands, settings=settings)
        gt_hair, gt_bust = truth.hair_mask > 0.5, truth.bust_mask > 0.5
        if art.get("masks"):
            for kind, gt in (("hair", gt_hair), ("bust", gt_bust)):
                pred = A.load_mask(art["masks"].path, kind, name) > 0.5
                union = (pred | gt).sum()
                rows[f"{kind}_iou"].append(float((pred & gt).sum() / union) if union else 1.0)
        if art.get("orientation"):
            angle, conf = A.load_orientation(art["orientation"].path, name)
            sel = gt_hair & (conf > 0)
            if gt_hair.any():
                rows["orient_cover"].append(float(sel.sum() / gt_hair.sum()))
            if sel.any():
                rows["orient_err"].append(_angle_err_deg(angle[sel], truth.orientation[sel]))
        if lms is not None and i < len(lms["found"]):
            found = bool(lms["found"][i])
            rows["found"].append(found)
            if found:
                nose = cam.project(head.vertices[head.landmarks68[[30]]].astype(np.float64))[0]
                rows["nose_px"].append(float(np.hypot(*(lms["points"][i, 1, :2] - nose))))
        if fr.get("yaw_deg") is not None and cam_meta[k].get("yaw_deg") is not None:
            rows["yaw_pred"].append(float(fr["yaw_deg"]))
            rows["yaw_true"].append(float(cam_meta[k]["yaw_deg"]))

    def mean(v):
        return round(float(np.mean(v)), 3) if len(v) else None

    out: dict[str, Any] = {"keyframes": len(kf_names), "hair_iou": mean(rows["hair_iou"]),
                           "bust_iou": mean(rows["bust_iou"]),
                           "orientation_median_err_deg": (
                               round(float(np.median(np.concatenate(rows["orient_err"]))), 2)
                               if rows["orient_err"] else None),
                           "orientation_coverage": mean(rows["orient_cover"]),
                           "landmarks_found": mean(rows["found"]),
                           "nose_tip_median_px": (round(float(np.median(rows["nose_px"])), 2)
                                                  if rows["nose_px"] else None)}
    cam_file = art["cameras"].path / "cameras.json" if art.get("cameras") else None
    if cam_file is not None and cam_file.is_file():
        out.update(camera_accuracy(cam_file, true_cams))
    if rows["yaw_pred"]:
        yp, yt = np.array(rows["yaw_pred"]), np.array(rows["yaw_true"])
        sign = 1.0 if np.abs(yp - yt).mean() <= np.abs(yp + yt).mean() else -1.0
        out.update(yaw_mae_deg=round(float(np.abs(sign * yp - yt).mean()), 2), yaw_sign=sign)
    return out


def run_case(name: str, source: Path, truth: dict | None, work: Path, args: argparse.Namespace,
             stage_names: Sequence[str], log: Callable[[str], None],
             case_overrides: dict | None = None) -> dict[str, Any]:
    """Run every stage on ``source`` in a fresh project; timings, memory, scores.
    ``case_overrides`` (e.g. a Blender orbit's known cameras) are merged over ``--overrides``."""
    from engine.pipeline import Project

    proj_dir = work / f"project-{name}"
    if proj_dir.exists() and not args.keep:
        import shutil

        shutil.rmtree(proj_dir)
    project = Project.open_or_create(proj_dir)
    project.import_source(source)
    overrides = json.loads(args.overrides or "{}")
    for stage, values in (case_overrides or {}).items():
        overrides[stage] = {**overrides.get(stage, {}), **values}
    stages_out = []
    t0 = time.perf_counter()
    in_process = run_stages_in_process(proj_dir, stage_names, args.preset, args.device,
                                       overrides, args.stages) if args.in_process else None
    for k, st in enumerate(stage_names):
        if in_process is not None:
            if k >= len(in_process):
                break
            res = in_process[k]
        else:
            res = run_stage_subprocess(proj_dir, st, args.preset, args.device, overrides,
                                       args.stages, args.stage_timeout)
        stages_out.append(res)
        log(f"  {name}: {st}: " + (f"{res.get('wall_s')} s, peak RSS {res.get('peak_rss_mb')} MiB"
                                  if res.get("ok") else f"FAILED ({res.get('error')})"))
        if not res.get("ok"):
            break
    case: dict[str, Any] = {"name": name, "source": str(source.name), "stages": stages_out,
                            "total_stage_wall_s": round(sum(s.get("wall_s") or 0
                                                            for s in stages_out), 3),
                            "total_subprocess_s": round(time.perf_counter() - t0, 3)}
    outputs = finished_outputs(proj_dir, args.stages, args.preset, args.device, overrides)
    if truth is not None:
        scores, note = score_groom(outputs, truth["groom"])
        case["scores"], case["score_note"] = scores, note
        acc = None
        if "cameras" in truth:  # a re-renderable truth (our own renderer's cases)
            try:
                acc = preprocess_accuracy(proj_dir, args.stages, args.preset, args.device,
                                          overrides, truth)
            except Exception as exc:  # a broken artifact must not lose the timings
                acc = {"error": f"{type(exc).__name__}: {exc}"}
        if acc is not None:
            case["preprocess_accuracy"] = acc
        if name.startswith("blender-") and name.endswith("-orbit") and "bald" not in name:
            try:  # the same orbit without hair, rendered once and cached like the case
                bald = "blender-bald-orbit"
                make_blender_case(bald, Path(args.blender_cache) / bald, args, log)
                case["mask_truth"] = orbit_mask_truth(outputs, Path(args.blender_cache) / name,
                                                      Path(args.blender_cache) / bald)
            except Exception as exc:  # a broken artifact must not lose the timings
                case["mask_truth"] = {"error": f"{type(exc).__name__}: {exc}"}
    if "strands" in outputs:
        log(f"  {name}: checks and contact sheet ...")
        case["checks"], case["checks_note"] = check_groom(proj_dir, args.stages)
        sheet = write_case_sheet(name, outputs, truth, work, Path(args.sheets))
        if sheet is not None:  # relative to the report, for the markdown link
            case["sheet"] = Path(os.path.relpath(sheet, Path(args.out))).as_posix()
    return case


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def _num(v: Any, fmt: str = ".1f") -> str:
    return "-" if v is None or (isinstance(v, float) and v != v) else format(v, fmt)


def score_tables(cases: list[dict[str, Any]]) -> list[str]:
    """Markdown lines: point and strand-level F, length and shape against the truth, and the
    checks that need no ground truth, one row per case."""
    lines: list[str] = []
    scored = [c for c in cases if c.get("scores")]
    for key, title in (("point", "Point precision / recall / F (percent)"),
                       ("strand", "Strand-level precision / recall / F (percent; a strand "
                                  "matches when 90 % of its points do)")):
        if not scored:
            break
        th = [f"{s['distance_m'] * 1000:g} mm / {s['angle_deg']:g} deg"
              for s in scored[0]["scores"][key]]
        lines += ["", f"## {title}", "", "| case | " + " | ".join(th) + " |",
                  "|---|" + "---:|" * len(th)]
        for c in scored:
            lines.append(f"| {c['name']} | " + " | ".join(
                f"{s['precision']:.1f} / {s['recall']:.1f} / **{s['f_score']:.1f}**"
                for s in c["scores"][key]) + " |")
    if scored:
        lines += ["", "## Length and shape against the truth", "",
                  "| case | length W1 cm | curvature W1 rad/m | median length ratio | "
                  "median length error of matched strands | matched strands |",
                  "|---|---:|---:|---:|---:|---:|"]
        for c in scored:
            sh = c["scores"]["shape"]
            lines.append(f"| {c['name']} | {_num(sh['length_w1_cm'], '.2f')} | "
                         f"{_num(sh['curvature_w1'], '.1f')} | "
                         f"{_num(sh['length_ratio_median'], '.2f')} | "
                         f"{_num(sh['length_error_median'], '.2f')} | {sh['matched_strands']} |")
    for c in cases:
        if "scores" in c and not c["scores"]:
            lines.append(f"- {c['name']}: {c['score_note']}")
    checked = [c for c in cases if "checks" in c]
    if checked:
        lines += ["", "## Checks without ground truth (percent, colour in CIEDE2000)", "",
                  "| case | strands | fold share | face intrusion | inside head | "
                  "silhouette IoU | bald scalp (all views) | bald scalp (back) | colour dE |"
                  " sheet |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for c in checked:
            k = c["checks"]
            if not k:
                lines.append(f"| {c['name']} | {c['checks_note']} |")
                continue
            sil = (k.get("silhouette") or {}).get("mean") or {}
            bald = k.get("bald_scalp") or {}
            sheet = f"[{c['sheet']}]({c['sheet']})" if c.get("sheet") else "-"
            lines.append(f"| {c['name']} | {k['strands']} | {_num(k['fold_share'])} | "
                         f"{_num(k['face_intrusion'])} | {_num(k['inside_head'])} | "
                         f"{_num(sil.get('iou'))} | {_num(bald.get('all'))} | "
                         f"{_num((bald.get('views') or {}).get('180'))} | "
                         f"{_num((k.get('colour_de2000') or {}).get('median'))} | {sheet} |")
    return lines


def markdown(report: dict[str, Any]) -> str:
    """The report as a markdown page: machine, per-stage table, F-scores, notes."""
    m = report["machine"]
    lines = [f"# Strandcap benchmark {report['date']} ({report['machine_name']})", "",
             f"- Command: `{report['command']}`",
             f"- Commit: {report.get('commit') or 'unknown'}",
             f"- Preset: {report['preset']}; device: {m['device']}"
             + (f" ({m.get('gpu')})" if m.get("gpu") else ""),
             f"- Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM; {m['os']}; "
             f"Python {m['python']}, torch {m['torch']}, numpy {m['numpy']}"
             + (f"; load average {m['load_average_1_5_15'][0]} at the start, "
                f"{m.get('load_average_at_end', ['?'])[0]} at the end"
                if m.get("load_average_1_5_15") else ""),
             f"- Stages in the graph: {', '.join(report['stages']) or '(none yet)'}", ""]
    lines += ["## Per-stage wall time and peak memory", "",
              "| case | stage | wall s | peak RSS MiB | RSS before stage MiB | GPU peak MiB "
              "| status |",
              "|---|---|---:|---:|---:|---:|---|"]
    for c in report["cases"]:
        if c.get("skipped"):
            lines.append(f"| {c['name']} | - | - | - | - | - | skipped: {c['skipped']} |")
            continue
        if not c["stages"]:
            lines.append(f"| {c['name']} | (no stages) | - | - | - | - | nothing to run |")
        for s in c["stages"]:
            status = "ok" if s.get("ok") else \
                f"failed: {s.get('error', '').split(' | ')[-1][:100]}"
            lines.append(f"| {c['name']} | {s['stage']} | {s.get('wall_s', '-')} | "
                         f"{s.get('peak_rss_mb', '-')} | {s.get('baseline_rss_mb', '-')} | "
                         f"{s.get('gpu_peak_mb', '-')} | {status} |")
    lines += ["", "## End-to-end wall time", "", "| case | stages run | sum of stage wall s | "
              "with process start-up s |", "|---|---:|---:|---:|"]
    for c in report["cases"]:
        if not c.get("skipped"):
            lines.append(f"| {c['name']} | {len(c['stages'])} | {c['total_stage_wall_s']} | "
                         f"{c['total_subprocess_s']} |")
    lines += score_tables(report["cases"])
    acc_rows = [c for c in report["cases"] if c.get("preprocess_accuracy")]
    if acc_rows:
        cols = [("keyframes", "keyframes"), ("landmarks_found", "face found"),
                ("nose_tip_median_px", "nose tip px"), ("yaw_mae_deg", "yaw MAE deg"),
                ("hair_iou", "hair IoU"), ("bust_iou", "bust IoU"),
                ("orientation_median_err_deg", "orientation median err deg"),
                ("orientation_coverage", "orientation coverage"),
                ("camera_rot_deg", "camera rot deg"), ("camera_centre_mm", "camera centre mm"),
                ("camera_centre_mm_aligned", "camera centre mm (aligned)")]
        lines += ["", "## Preprocessing against the synthetic ground truth (keyframes)", "",
                  "| case | " + " | ".join(c[1] for c in cols) + " |",
                  "|---|" + "---:|" * len(cols)]
        for c in acc_rows:
            a = c["preprocess_accuracy"]
            if "error" in a:
                lines.append(f"| {c['name']} | failed: {a['error'][:80]} |")
                continue
            lines.append(f"| {c['name']} | " + " | ".join(
                "-" if a.get(k) is None else str(a[k]) for k, _ in cols) + " |")
        if any(c["preprocess_accuracy"].get("yaw_sign") == -1.0 for c in acc_rows):
            lines.append("")
            lines.append("Yaw: the keyframes stage reports yaw with the opposite sign to the "
                         "renderer's head yaw (positive turns the face towards +X); the MAE is "
                         "after flipping.")
    if report.get("synthetic"):
        lines += ["", "## Synthetic captures", ""]
        for name, d in report["synthetic"].items():
            st = d["style"]
            lines.append(f"- {name}: {d['frames']} frames {d['size']}x{d['size']} at {d['fps']:g} "
                         f"fps, head yaw -50..50 deg; groom {d['strands']} strands x {d['points']} "
                         f"points, curl {st['curl']}, length {st['length_m']:.3f} m, "
                         f"seed {st['seed']}; render {d.get('render_s_per_frame')} s/frame; "
                         f"mediapipe finds the face in "
                         f"{d.get('mediapipe_face_rate')} of every 5th frame")
    if report.get("blender"):
        lines += ["", "## Blender captures (benchmarks/blender_capture.py)", ""]
        for name, d in report["blender"].items():
            de, out = d["desc"], d["out"]
            count = f"{de['views']} views" if de["kind"] == "orbit" else f"{de.get('frames')} frames"
            lines.append(f"- {name}: {count} {de['size']}x{de['size']}, Cycles "
                         f"{de['settings']['samples']} samples, Blender {out.get('blender')}; "
                         f"groom {out.get('strands')} strands x {out.get('points')} points; "
                         f"render {out.get('render_s_per_frame')} s/frame")
    if report["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write ``<date>-<machine>.json`` and ``.md`` into ``out_dir``; return both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{report['date']}-{report['machine_name']}"
    jp, mp = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    jp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    mp.write_text(markdown(report), encoding="utf-8")
    return jp, mp


def git_commit() -> str | None:
    """The repository's commit (with ``-dirty`` when tracked files have changes), or None
    outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO, capture_output=True, text=True, timeout=10).stdout
        return head.stdout.strip() + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", s).strip("-").lower() or "machine"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="preview", choices=("preview", "standard", "high"))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--cases", default="sample,straight,wavy,curly,d3,d10",
                    help="comma-separated: sample (the embedded sample), straight, wavy, curly, "
                    "d3, d10, or a video/folder path")
    ap.add_argument("--until", default=None, help="stop after this stage")
    ap.add_argument("--stages", default=None, help="module:function returning the stage list "
                    "(default engine.registry.default_stages)")
    ap.add_argument("--overrides", default=None, help='JSON {"stage": {"field": value}}')
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks"))
    ap.add_argument("--machine", default=None, help="machine name in the file names")
    ap.add_argument("--sheets", default=None, help="folder of the contact sheets (default "
                    "<out>/<date>-<machine>/)")
    ap.add_argument("--date", default=None, help="date in the file names (default today, UTC)")
    ap.add_argument("--frames", type=int, default=60, help="frames of a synthetic capture")
    ap.add_argument("--size", type=int, default=512, help="synthetic capture size in pixels")
    ap.add_argument("--strands", type=int, default=10000, help="strands of a synthetic groom")
    ap.add_argument("--points", type=int, default=100, help="points per synthetic strand")
    ap.add_argument("--blender-cache", default=str(Path(tempfile.gettempdir())
                                                    / "strandcap-blender-cases"),
                    help="where Blender captures are rendered and reused (outside the repo)")
    ap.add_argument("--blender-views", type=int, default=24, help="views of a Blender orbit")
    ap.add_argument("--blender-size", type=int, default=256, help="Blender capture size, px")
    ap.add_argument("--blender-samples", type=int, default=24, help="Cycles samples per pixel")
    ap.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="reuse finished stages in --work")
    ap.add_argument("--stage-timeout", type=float, default=None, help="seconds per stage")
    ap.add_argument("--in-process", action="store_true",
                    help="run the stages in this process (quick; memory is not per stage)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--project", help=argparse.SUPPRESS)
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)

    from engine.pipeline import resolve_device

    device = resolve_device(args.device)
    args.device = device
    stages = load_stages(args.stages)
    names = [s.name for s in stages]
    if args.until:
        if args.until not in names:
            raise SystemExit(f"--until {args.until}: no such stage; stages: {', '.join(names)}")
        names = names[: names.index(args.until) + 1]
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="strandcap-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    notes: list[str] = []
    if not names:
        notes.append("the stage graph is empty (no stage has landed yet): nothing was timed")
    if "strands" not in names:
        notes.append("no stage named 'strands' ran (--until or --stages stopped before it), so "
                     "no groom.npz was produced and no F-scores are reported")
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "date": args.date or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"),
        "machine_name": _slug(args.machine or f"{device}-{os.cpu_count()}core"),
        "command": "python benchmarks/run.py "
                   + " ".join(argv if argv is not None else sys.argv[1:]),
        "commit": git_commit(),
        "preset": args.preset, "machine": machine_info(device), "stages": names,
        "cases": [], "synthetic": {}, "blender": {}, "notes": notes,
    }
    args.sheets = args.sheets or str(Path(args.out) / f"{report['date']}-{report['machine_name']}")
    for case in [c.strip() for c in args.cases.split(",") if c.strip()]:
        truth, case_over = None, None
        if case in SYNTHETIC:
            log(f"rendering the synthetic {case} capture ...")
            t0 = time.perf_counter()
            try:
                source, gt, desc = make_synthetic_case(case, work / f"synthetic-{case}",
                                                       args.frames, args.size, args.strands,
                                                       args.points)
            except ImportError as exc:
                report["cases"].append({"name": case, "skipped": f"cannot render ({exc})"})
                continue
            truth = synthetic_truth(gt.parent)
            report["synthetic"][case] = desc | {"case_s": round(time.perf_counter() - t0, 1)}
        elif case.startswith("blender-"):
            name_parts = case.split("-")
            if len(name_parts) != 3 or name_parts[2] not in ("orbit", "turn", "turn360"):
                raise SystemExit(f"--cases {case}: use blender-<groom>-orbit, -turn or -turn360")
            try:
                source, truth, case_over, desc = make_blender_case(
                    case, Path(args.blender_cache) / case, args, log)
            except (RuntimeError, OSError) as exc:
                report["cases"].append({"name": case, "skipped": f"cannot render ({exc})"})
                continue
            report["blender"][case] = desc
        elif case == "sample":
            from engine.resources import resource

            source = resource("sample", "capture.mp4")
            truth = sample_truth()
        elif case in REAL:
            source = SHARED / "videos" / f"{case}.mp4"
            if not source.is_file():
                report["cases"].append({"name": case, "skipped": f"{source} is absent"})
                notes.append(f"{case}: ../shared/data/videos/{case}.mp4 is absent; skipped")
                continue
        else:
            source = Path(case)
            if not source.exists():
                report["cases"].append({"name": case, "skipped": f"{source} does not exist"})
                continue
        log(f"case {case}: {len(names)} stage(s)")
        label = case if case in SYNTHETIC + REAL + ("sample",) or case.startswith("blender-") \
            else _slug(source.stem)
        report["cases"].append(run_case(label, source, truth, work, args, names, log, case_over))
    try:
        report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        pass
    jp, mp = write_report(report, Path(args.out))
    print(markdown(report))
    log(f"wrote {jp} and {mp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
