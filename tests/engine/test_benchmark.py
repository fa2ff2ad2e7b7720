"""The benchmark harness (benchmarks/run.py) on a toy stage graph: per-stage subprocesses, JSON and
markdown reports, F-scores only when a 'strands' stage wrote groom.npz."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.pipeline import Stage, option

REPO = Path(__file__).resolve().parents[2]
ICT = REPO.parent / "shared" / "data" / "heads" / "ict_face_model_light.npz"


def _load_run():
    spec = importlib.util.spec_from_file_location("bench_run", REPO / "benchmarks" / "run.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = mod
    spec.loader.exec_module(mod)
    return mod


@dataclass(frozen=True)
class ToyConfig:
    size: int = option(100_000, "floats to allocate", range=(1, 10**8))


def _prep(cfg, ins, ctx):
    a = np.ones(cfg.size)  # some memory, so the peak is visible
    (ctx.out_dir / "sum.json").write_text(json.dumps({"sum": float(a.sum())}))
    yield ctx.progress(1, 1)
    return {"sum": float(a.sum())}


def _strands(cfg, ins, ctx):
    """Copies the ground truth that sits beside the source video (synthetic cases only)."""
    src = Path(ctx.project.manifest["source"]["original"])
    gt = src.parent / "groom.npz"
    if gt.is_file():
        shutil.copy2(gt, ctx.out_dir / "groom.npz")
    yield ctx.progress(1, 1)


SHIFT_M = 0.01  # the truth graph's strands stage moves the true groom this far up (+y)


def _shifted_strands(cfg, ins, ctx):
    """The true groom moved up by SHIFT_M: the harness must score this groom, not the truth."""
    import dataclasses

    from engine.io.export import export_groom, load_groom

    groom = load_groom(Path(ctx.project.manifest["source"]["original"]).parent / "groom.npz")
    moved = groom.strands + np.float32([0.0, SHIFT_M, 0.0])
    export_groom(dataclasses.replace(groom, strands=moved), ctx.out_dir / "groom.npz")
    yield ctx.progress(1, 1)


def bench_toy_stages() -> list[Stage]:
    return [Stage("prep", 1, ToyConfig, (), _prep, presets={"preview": {"size": 200_000}}),
            Stage("strands", 1, ToyConfig, ("prep",), _strands)]


def bench_toy_stages_no_strands() -> list[Stage]:
    return bench_toy_stages()[:1]


def _truth_keyframes(cfg, ins, ctx):
    """Perfect 'preprocessing': the renderer's truth for video frames 0 and 1 of the case."""
    from engine.io.export import load_groom
    from engine.synthetic import HeadModel, load_cameras, render_capture

    run = _load_run()
    case = Path(ctx.project.manifest["source"]["original"]).parent
    n = json.loads((case / "case.json").read_text())["desc"]["strands"]
    render_capture(ctx.out_dir, load_cameras(case / "cameras.json")[:2],
                   HeadModel.load(run.bench_head_path()),
                   load_groom(case / "groom.npz").strands, settings=run.case_render_settings(n),
                   truth=False)
    yield ctx.progress(1, 1)


def _copy_from_keyframes(sub):
    def run(cfg, ins, ctx):
        shutil.copytree(ins["keyframes"].path / sub, ctx.out_dir / sub)
        yield ctx.progress(1, 1)
    return run


def bench_toy_truth_stages() -> list[Stage]:
    def masks(cfg, ins, ctx):
        for sub in ("hair", "bust"):
            yield from _copy_from_keyframes(sub)(cfg, ins, ctx)

    def cameras(cfg, ins, ctx):
        """The true cameras and the model's neutral head (the head the synthetic groom sits
        on) as the fitted ``head.obj``."""
        from engine.head.model import load_head_model, save_obj

        shutil.copy2(ins["keyframes"].path / "cameras.json", ctx.out_dir / "cameras.json")
        model = load_head_model()
        save_obj(ctx.out_dir / "head.obj", model.vertices_np(), model.faces)
        yield ctx.progress(1, 1)

    return [Stage("keyframes", 1, ToyConfig, (), _truth_keyframes),
            Stage("cameras", 1, ToyConfig, ("keyframes",), cameras),
            Stage("masks", 1, ToyConfig, ("keyframes",), masks),
            Stage("orientation", 1, ToyConfig, ("keyframes",), _copy_from_keyframes("orientation")),
            Stage("strands", 1, ToyConfig, ("masks",), _shifted_strands)]


def _tiny_video(path: Path) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (32, 32))
    for k in range(3):
        w.write(np.full((32, 32, 3), 40 * k, np.uint8))
    w.release()
    return path


def test_harness_times_stages_and_writes_json(tmp_path):
    run = _load_run()
    video = _tiny_video(tmp_path / "clip.mp4")
    out = tmp_path / "docs"
    rc = run.main(["--stages", "tests.engine.test_benchmark:bench_toy_stages_no_strands",
                   "--cases", str(video), "--out", str(out), "--work", str(tmp_path / "work"),
                   "--machine", "Test Box", "--date", "2000-01-01", "--device", "cpu"])
    assert rc == 0
    report = json.loads((out / "2000-01-01-test-box.json").read_text())
    assert report["stages"] == ["prep"]
    assert report["machine"]["cores"] >= 1 and report["machine"]["torch"]
    (case,) = report["cases"]
    (st,) = case["stages"]
    assert st["ok"] and st["stage"] == "prep" and not st["cached"]
    assert st["wall_s"] >= 0 and st["peak_rss_mb"] >= st["baseline_rss_mb"] > 10
    assert st["summary"] == {"sum": 200000.0}  # the preview preset reached the subprocess
    assert "scores" not in case and "checks" not in case  # no truth, no groom
    assert any("no F-scores" in n for n in report["notes"])
    md = (out / "2000-01-01-test-box.md").read_text()
    assert "| clip | prep |" in md


@pytest.mark.skipif(not ICT.is_file(), reason="needs ../shared/data/heads/ict_face_model_light.npz")
def test_synthetic_case_scores_the_strands_groom(tmp_path):
    pytest.importorskip("engine.prior.synth")
    run = _load_run()
    out = tmp_path / "docs"
    rc = run.main(["--stages", "tests.engine.test_benchmark:bench_toy_truth_stages",
                   "--in-process", "--cases", "straight",
                   "--frames", "2", "--size", "64", "--strands", "300", "--points", "12",
                   "--out", str(out), "--work", str(tmp_path / "work"), "--machine", "t",
                   "--date", "2000-01-02", "--device", "cpu"])
    assert rc == 0
    report = json.loads((out / "2000-01-02-t.json").read_text())
    (case,) = report["cases"]
    assert [s["stage"] for s in case["stages"]] == ["keyframes", "cameras", "masks",
                                                    "orientation", "strands"]
    assert all(s["ok"] and s["in_process"] and s["wall_s"] >= 0 for s in case["stages"])
    # the toy strands stage wrote the true groom 1 cm higher: the scores are of that groom
    # (the metric of Neural Haircut: a 1 cm shift leaves 4 mm points matched, no strand matched)
    scores = case["scores"]
    point = [s["f_score"] for s in scores["point"]]
    assert 1.0 < point[0] < point[1] < point[2] < 70.0, point
    assert all(s["f_score"] < 10.0 for s in scores["strand"]), scores["strand"]
    assert scores["shape"]["length_w1_cm"] < 1e-4  # a shift keeps every length
    # the no-ground-truth checks ran on the moved groom: no folds, off the face, outside the head
    checks = case["checks"]
    assert checks["strands"] == 300 and checks["fold_share"] < 5.0
    assert checks["face_intrusion"] < 5.0 and checks["inside_head"] < 1.0
    assert checks["silhouette"]["mean"]["iou"] > 50.0  # 1 cm is about 1 px at 64 px
    sheet = out / case["sheet"]
    assert sheet.parent == out / "2000-01-02-t" and cv2.imread(str(sheet)).shape[1] >= 1000
    syn = report["synthetic"]["straight"]
    assert syn["strands"] == 300 and syn["render_s_per_frame"] > 0
    assert "mediapipe_face_rate" in syn
    # the toy preprocessing stages wrote the truth itself: perfect accuracy
    acc = case["preprocess_accuracy"]
    assert acc["keyframes"] == 2 and acc["hair_iou"] == 1.0 and acc["bust_iou"] == 1.0
    assert acc["orientation_median_err_deg"] < 1e-3 and acc["orientation_coverage"] == 1.0
    assert acc["landmarks_found"] is None  # no landmarks stage in this graph
    assert acc["camera_frames"] == 2 and acc["camera_rot_deg"] < 1e-3
    assert acc["camera_centre_mm"] < 1e-3
    md = (out / "2000-01-02-t.md").read_text()
    assert "| straight | 2 | - | - | - | 1.0 | 1.0 |" in md
    assert (tmp_path / "work" / "synthetic-straight" / "capture.mp4").stat().st_size > 0


@pytest.mark.skipif(not ICT.is_file(), reason="needs ../shared/data/heads/ict_face_model_light.npz")
def test_sample_truth_reproduces_the_sample_video():
    from engine.io.export import load_groom
    from engine.resources import resource
    from engine.synthetic import HeadModel, load_cameras, render

    run = _load_run()
    truth = run.sample_truth()
    cap = cv2.VideoCapture(str(resource("sample", "capture.mp4")))
    for _ in range(31):
        ok, bgr = cap.read()
    cap.release()
    assert ok
    head = HeadModel.load(truth["head"], seed=truth["head_seed"])
    r = render(load_cameras(truth["cameras"])[30], head, load_groom(truth["groom"]).strands,
               settings=truth["settings"])
    diff = np.abs(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(int) - r.rgb).mean()
    assert diff < 5.0, diff  # only the video compression differs


def test_orbit_mask_truth_is_what_the_hair_changes_in_the_render(tmp_path):
    """The truth of a Blender orbit's hair mask is where its render differs from the same view
    without hair: a mask that is the hair scores IoU 100, one that adds a neck as large as the
    hair scores precision 50; views with and without a face are averaged apart."""
    from engine.preprocess import artifacts as art

    run = _load_run()
    case, bald, kf = tmp_path / "case", tmp_path / "bald", tmp_path / "kf"
    (case / "images").mkdir(parents=True)
    (bald / "images").mkdir(parents=True)
    grey = np.full((32, 32, 3), 120, np.uint8)
    hair = np.zeros((32, 32), bool)
    hair[4:12, 8:24] = True
    neck = np.zeros((32, 32), bool)
    neck[20:28, 8:24] = True
    frames = []
    for i, (mask, yaw) in enumerate(((hair, 0.0), (hair | neck, None))):
        img = grey.copy()
        img[hair] = (40, 30, 20)
        cv2.imwrite(str(case / "images" / f"{i:03d}.png"), img)
        cv2.imwrite(str(bald / "images" / f"{i:03d}.png"), grey)
        name = f"{i:03d}"
        art.save_frame(kf, name, img[..., ::-1].copy())
        art.save_mask(kf, "hair", name, mask.astype(np.float32))
        frames.append({"name": name, "source_index": i, "time_s": None, "sharpness": 1.0,
                       "yaw_deg": yaw})
    (kf / "keyframes.json").write_text(json.dumps(
        {"width": 32, "height": 32, "fps": None, "source_kind": "images", "frames": frames}))
    out = run.orbit_mask_truth({"keyframes": kf, "masks": kf}, case, bald)
    assert out["face_views"]["views"] == 1 and out["faceless_views"]["views"] == 1
    assert out["face_views"]["iou"] == pytest.approx(100.0)
    assert out["faceless_views"]["precision"] == pytest.approx(50.0)
    assert out["faceless_views"]["recall"] == pytest.approx(100.0)
