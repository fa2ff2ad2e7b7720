"""The ``strandcap`` command: the same stage graph as the app, run headless.

Every command prints one readable ``strandcap: error: <file>: <problem>`` line and exits
non-zero on bad input (exit 2), a project busy with another run (exit 3), a cancelled run
(Ctrl-C, exit 130), an OS error such as a full disk or a read-only folder (exit 1) or a damaged
file (exit 1). Commands that write into a project (preprocess, run, cameras, reconstruct, demo)
hold its lock (engine.pipeline.project_lock); status and export only read.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import zipfile
from pathlib import Path
from typing import Any, Iterator, Sequence

from engine import __version__
from engine.errors import Cancelled, ConfigError, InputError, StrandcapError
from engine.pipeline import (MANIFEST, PRESETS, CancelToken, Event, Log, Loss, PipelineConfig,
                             Progress, Project, StageFinished, StageStarted, resolve_artifact,
                             run_pipeline, stage_status)

PREPROCESS_UNTIL = "orientation"


def default_stages(until: str | None = None) -> list:
    """:func:`engine.registry.default_stages`, imported on first use: the stage modules load
    torch, and ``strandcap --version`` / ``--help`` should not wait for it (``import engine.cli``
    0.3 s, against 1.6 s with the registry imported at the top, idle 2-core machine)."""
    from engine.registry import default_stages as registry_stages

    return registry_stages(until)


def parse_overrides(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["keyframes.max_keyframes=12", ...]`` -> ``{"keyframes": {"max_keyframes": 12}}``.

    Values are parsed as JSON when they can be (numbers, true/false, lists), else kept as text.

    Raises:
        ConfigError: an item without ``stage.field=value`` form.
    """
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        stage, dot, fld = name.partition(".")
        if not sep or not dot or not stage or not fld:
            raise ConfigError(f"--set {item!r}: expected STAGE.FIELD=VALUE, e.g. keyframes.max_keyframes=12")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        out.setdefault(stage, {})[fld] = value
    return out


class ProgressPrinter:
    """Consumes pipeline events and draws one tqdm bar per stage (with ETA) on stderr."""

    def __init__(self, stream=None, quiet: bool = False) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.bar = None
        self.finished: list[StageFinished] = []

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, StageStarted):
            self._close()
            if self.quiet:
                return
            state = "cached" if event.cached else "running"
            self.bar = self._tqdm(total=1, desc=f"[{event.index + 1}/{event.count}] {event.stage}",
                                  file=self.stream, leave=True, dynamic_ncols=True,
                                  bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                                             "[{elapsed}<{remaining}{postfix}]",
                                  postfix=state if event.cached else None)
        elif isinstance(event, Progress) and self.bar is not None:
            self.bar.total = max(event.total, 1)
            self.bar.n = event.done
            if event.message:
                self.bar.set_postfix_str(event.message, refresh=False)
            self.bar.refresh()
        elif isinstance(event, Loss) and self.bar is not None:
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in list(event.values.items())[:4]})
        elif isinstance(event, Log) and (not self.quiet or event.level == "warning"):
            (self.bar.write if self.bar is not None else print)(
                f"{event.stage}: {event.message}", file=self.stream)
        elif isinstance(event, StageFinished):
            self.finished.append(event)
            if self.bar is not None:
                self.bar.n = self.bar.total
                self.bar.set_postfix_str("cached" if event.cached else f"{event.wall_s:.1f}s")
            self._close()


def consume(events: Iterator[Event], printer: ProgressPrinter) -> list[StageFinished]:
    try:
        for event in events:
            printer(event)
    finally:
        printer._close()
    return printer.finished


def _config(args: argparse.Namespace, until: str | None, saved: dict | None = None
            ) -> tuple[list, PipelineConfig]:
    """Stages up to ``until`` and their config: the preset of ``--preset`` (else the saved
    one, else standard) and ``saved`` overrides (a project's last run) with ``--set`` on top."""
    stages = default_stages(until)
    saved = saved or {}
    names = {st.name for st in stages}  # saved options of later stages stay in project.json
    overrides = {k: dict(v) for k, v in (saved.get("overrides") or {}).items() if k in names}
    for stage, fields in parse_overrides(args.set).items():
        overrides.setdefault(stage, {}).update(fields)
    preset = args.preset or saved.get("preset") or "standard"
    return stages, PipelineConfig(stages, preset=preset, overrides=overrides, device=args.device)


def _run(project: Project, plan: tuple[list, PipelineConfig], args: argparse.Namespace
         ) -> list[StageFinished]:
    stages, config = plan
    printer = ProgressPrinter(quiet=args.quiet)
    return consume(run_pipeline(project, stages, config, CancelToken()), printer)


def _print_summary(finished: list[StageFinished], project: Project) -> None:
    for ev in finished:
        rel = ev.path.relative_to(project.root).as_posix()
        extra = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in ev.summary.items() if not isinstance(v, (dict, list)))
        print(f"{ev.stage:12s} {'cached ' if ev.cached else f'{ev.wall_s:6.1f}s'}  {rel}"
              + (f"  ({extra})" if extra else ""))


# -- commands -----------------------------------------------------------------------------------


def cmd_preprocess(args: argparse.Namespace) -> int:
    source = Path(args.video)
    from engine.io.media import probe_source

    plan = _config(args, PREPROCESS_UNTIL)  # bad options fail before anything is touched
    probe_source(source)  # so does a bad input
    root = Path(args.project)
    created = not (root / MANIFEST).is_file()
    project = Project.open_or_create(root)
    try:
        with project.trying_source(source):  # holds the project's lock
            finished = _run(project, plan, args)
    except InputError:
        if created:  # a project this command made for a bad input is removed again
            shutil.rmtree(project.root, ignore_errors=True)
        raise
    _print_summary(finished, project)
    return 0


def cmd_cameras(args: argparse.Namespace) -> int:
    if args.mode:
        args.set.append(f"cameras.mode={args.mode}")
    if args.import_path:
        args.set += _camera_import_overrides(args.import_path)
    if args.focal:
        args.set.append(f"cameras.focal_px={args.focal}")
    args.until = "cameras"
    return cmd_run(args)


def cmd_run(args: argparse.Namespace) -> int:
    project = Project.open(args.project)
    plan = _config(args, args.until, project.manifest.get("config"))  # resume as last run
    finished = _run(project, plan, args)
    _print_summary(finished, project)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    project = Project.open(args.project)
    saved = project.manifest.get("config") or {}
    stages = default_stages()
    config = PipelineConfig(stages, preset=args.preset or saved.get("preset", "standard"),
                            overrides=saved.get("overrides"), device="cpu")
    for st in stage_status(project, stages, config):
        print(f"{st.name:12s} {'finished' if st.finished else 'to do':9s} {st.key}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from engine.resources import sample_dir

    plan = _config(args, args.until)
    project = Project.open_or_create(Path(args.project))
    with project.lock():
        project.import_source(sample_dir() / "capture.mp4")
        t0 = time.monotonic()
        finished = _run(project, plan, args)
    _print_summary(finished, project)
    print(f"demo finished in {time.monotonic() - t0:.1f}s; project: {project.root}")
    outputs = {ev.stage: ev.path for ev in finished}
    from engine.sample import evaluate_sample

    for line in evaluate_sample(outputs):
        print(line)
    groom_file = outputs.get(GROOM_STAGE, project.root / "missing") / "groom.npz"
    if groom_file.is_file():
        from engine.io.export import load_groom

        from engine.preview import write_project_preview

        preview = write_project_preview(load_groom(groom_file), outputs, project.root)
        print(f"preview: {preview['preview']}; turntable: {preview['turntable']}")
    return 0


GROOM_STAGE = "strands"  # the stage whose folder holds the project's final groom.npz


def cmd_export(args: argparse.Namespace) -> int:
    if args.groom:
        groom = _load_user_groom(Path(args.groom))
    else:
        project = Project.open(args.project)
        saved = project.manifest.get("config") or {}
        stages = default_stages()
        config = PipelineConfig(stages, preset=saved.get("preset", "standard"),
                                overrides=saved.get("overrides"), device="cpu")
        art = resolve_artifact(project, stages, config, GROOM_STAGE)
        if art is None:
            raise InputError(f"{project.root}: no finished groom yet; run `strandcap run "
                             f"--project {args.project}` first")
        groom = _load_user_groom(art.path / "groom.npz")
    _write_groom(groom, args.output, args.format, args)
    return 0


def _load_user_groom(path: Path):
    """engine.io.export.load_groom, with a damaged file (truncated zip, bad data) reported as
    an InputError naming ``path``."""
    from engine.io.export import load_groom

    try:
        return load_groom(path)
    except (zipfile.BadZipFile, EOFError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: damaged or not a groom file ({_problem(exc)})") from exc


def _write_groom(groom, path: str | Path, fmt: str | None, args: argparse.Namespace) -> Path:
    """Export ``groom`` with the command's --units/--up/--guides/--basis options (those a
    command lacks take export_groom's defaults) and print one ``wrote ...`` line."""
    from engine.io.export import export_groom, head_path

    guides = getattr(args, "guides", None)
    head_file = bool(getattr(args, "head_file", False))
    t0 = time.monotonic()
    out = export_groom(groom, path, fmt=fmt, units=getattr(args, "units", "cm"),
                       up=getattr(args, "up", "y"), guides=guides,
                       basis=getattr(args, "basis", "linear"), head_file=head_file)
    count = f"{groom.strands.shape[0]} strands" + (f" + {guides} guides" if guides else "")
    if guides and out.suffix.lower() in (".obj", ".hair"):
        count = f"{guides} guide strands"  # no guide flag in these formats: the guides alone
    print(f"wrote {out} ({count}, "
          f"{out.stat().st_size / 1e6:.1f} MB, {time.monotonic() - t0:.1f}s)")
    if head_file and groom.has_head and out.suffix.lower() == ".abc":
        print(f"wrote {head_path(out)} (head mesh)")
    return out


# -- the main job: video in, groom and preview out ------------------------------------------------

EXPORT_SUFFIX = {"abc": "abc", "usd": "usd", "obj": "obj", "ply": "ply", "hair": "hair",
                 "npz": "npz"}


def parse_formats(text: str) -> list[str]:
    """``"abc,usd"`` -> ``["abc", "usd"]`` (aliases alembic, usda, usdc accepted; duplicates
    dropped, order kept).

    Raises:
        ConfigError: an empty list or a format Strandcap cannot write.
    """
    aliases = {"alembic": "abc", "usda": "usd", "usdc": "usd"}
    out: list[str] = []
    for item in text.split(","):
        name = aliases.get(item.strip().lower().lstrip("."), item.strip().lower().lstrip("."))
        if not name:
            continue
        if name not in EXPORT_SUFFIX:
            raise ConfigError(f"--format {item.strip()!r}: unknown groom format (write one of "
                              f"{', '.join(EXPORT_SUFFIX)})")
        if name not in out:
            out.append(name)
    if not out:
        raise ConfigError(f"--format {text!r}: no format given (e.g. abc or abc,usd,obj)")
    return out


def _camera_import_overrides(path_text: str) -> list[str]:
    """``--set`` items that make the cameras stage import known cameras from a transforms.json
    file or a COLMAP sparse model folder. Raises InputError when the path does not exist."""
    path = Path(path_text)
    if not path.exists():
        raise InputError(f"{path}: no such COLMAP model folder or transforms.json")
    mode = "transforms" if path.is_file() else "colmap"
    return [f"cameras.mode={mode}", f"cameras.import_path={json.dumps(str(path.resolve()))}"]


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from engine.io.media import probe_source

    formats = parse_formats(args.format)  # bad options fail before anything is touched
    if args.cameras:
        args.set += _camera_import_overrides(args.cameras)
    plan = _config(args, None)
    source = Path(args.video)
    probe_source(source)  # so does a bad input
    root = Path(args.output)
    created = not (root / MANIFEST).is_file()
    project = Project.open_or_create(root)
    with project.lock():  # the run, and the groom and preview written into the project after it
        return _reconstruct(project, created, plan, formats, source, args)


def _reconstruct(project: Project, created: bool, plan, formats: list[str], source: Path,
                 args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    try:
        with project.trying_source(source):
            finished = _run(project, plan, args)
    except InputError:
        # a project this command made for a bad input is removed again, but once a stage past
        # preprocessing has finished the error is not the video's, and that work is kept
        done = {p.parent.parent.name for p in project.cache_dir.glob("*/*/done.json")}
        if created and not done - {s.name for s in default_stages(PREPROCESS_UNTIL)}:
            shutil.rmtree(project.root, ignore_errors=True)
        raise
    _print_summary(finished, project)
    outputs = {ev.stage: ev.path for ev in finished}
    groom_file = outputs.get(GROOM_STAGE, project.root / "missing") / "groom.npz"
    if not groom_file.is_file():
        raise StrandcapError(f"{groom_file}: the {GROOM_STAGE} stage finished without a groom")
    groom = _load_user_groom(groom_file)
    written = [_write_groom(groom, project.root / f"groom.{EXPORT_SUFFIX[f]}", f, args)
               for f in formats]
    print("writing the preview (turntable and strands over the keyframes) ...", flush=True)
    from engine.preview import write_project_preview

    preview = write_project_preview(groom, outputs, project.root)
    print(f"reconstruct finished in {time.monotonic() - t0:.1f}s")
    for path in written:
        print(f"groom:     {path}")
    print(f"preview:   {preview['preview']}")
    print(f"turntable: {preview['turntable']}")
    print(f"project:   {project.root} (run the same command again to resume or re-export)")
    return 0


def keep_native_logs_off_terminal() -> None:
    """Send file descriptor 2 (where mediapipe's and TFLite's C++ code print start-up notes that
    no setting turns off) to the null device, and give Python's ``sys.stderr`` (progress bars,
    error lines) a duplicate of the real stderr. Set STRANDCAP_NATIVE_LOGS=1 to keep them."""
    if os.environ.get("STRANDCAP_NATIVE_LOGS") == "1":
        return
    try:
        sys.stderr.flush()
        real = os.dup(2)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)
    except (OSError, AttributeError, ValueError):  # no stderr descriptor: nothing to keep off
        return
    sys.stderr = os.fdopen(real, "w", buffering=1, encoding=sys.stderr.encoding or "utf-8",
                           errors="backslashreplace")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="strandcap", description="Monocular head video to 3D hair strands.")
    parser.add_argument("--version", action="version", version=f"strandcap {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def run_options(p: argparse.ArgumentParser, preset: str | None = "standard") -> None:
        default = preset or "the project's last run, else standard"
        p.add_argument("--preset", choices=PRESETS, default=preset,
                       help=f"quality/speed preset (default {default})")
        p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                       help="torch device (default: CUDA when present, else CPU)")
        p.add_argument("--set", action="append", default=[], metavar="STAGE.FIELD=VALUE",
                       help="override one config field, e.g. keyframes.max_keyframes=12 (repeatable)")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("preprocess", help="keyframes, landmarks, hair/bust masks, orientation maps")
    p.add_argument("video", help="a video file (any format OpenCV reads) or a folder of images")
    p.add_argument("--project", required=True, help="project folder (created when missing)")
    run_options(p)
    p.set_defaults(func=cmd_preprocess)

    p = sub.add_parser("run", help="run (or resume) the stage graph of an existing project")
    p.add_argument("--project", required=True)
    p.add_argument("--until", help="stop after this stage")
    run_options(p, preset=None)  # the project's saved preset and overrides, --set on top
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("cameras", help="camera poses and intrinsics, fitted head and scalp")
    p.add_argument("--project", required=True, help="a project made by `strandcap preprocess`")
    p.add_argument("--mode", choices=("auto", "orbit", "turn", "landmarks"),
                   help="capture situation (default auto): orbit = camera walked around a still "
                        "head, turn = head turning before a still camera, landmarks = talking head")
    p.add_argument("--import", dest="import_path", metavar="PATH",
                   help="known cameras instead: a transforms.json or a COLMAP sparse model folder "
                        "(in metres; --set cameras.import_scale=unknown when not)")
    p.add_argument("--focal", type=float, help="known focal length in keyframe pixels")
    run_options(p, preset=None)
    p.set_defaults(func=cmd_cameras)

    p = sub.add_parser("status", help="which stages of a project are finished")
    p.add_argument("--project", required=True)
    p.add_argument("--preset", choices=PRESETS, help="default: the preset of the last run")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("export", help="write a groom as Alembic, USD, OBJ, PLY or .hair")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--project", help="export the project's finished groom")
    src.add_argument("--groom", help="convert a groom file (abc, usd, obj, ply, hair, npz, data, tfx)")
    p.add_argument("--format", choices=("abc", "usd", "obj", "ply", "hair", "npz"),
                   help="default: from the suffix of -o")
    p.add_argument("--units", choices=("m", "cm", "mm"), default="cm",
                   help="file units (default cm: Maya, Houdini, Unreal; m for Blender, which "
                        "imports Alembic, OBJ and PLY at 1 unit = 1 m; .npz is always m)")
    p.add_argument("--up", choices=("y", "z"), default="y",
                   help="up axis (default y: Maya, Houdini, Unreal, and Blender's Alembic, USD "
                        "and OBJ importers, which convert from Y-up themselves; z only for "
                        "Blender's PLY importer)")
    p.add_argument("--guides", type=int, help="also write K guide strands (farthest-root "
                   "sampling, groom_guide=1) after all render strands (groom_guide=0)")
    p.add_argument("--head-file", action="store_true",
                   help="Alembic: also write the head mesh to OUT_head.abc (never into the "
                        "groom's .abc, which Unreal would refuse)")
    p.add_argument("--basis", choices=("linear", "catmull_rom"), default="linear",
                   help="curve basis for Alembic and USD")
    p.add_argument("-o", "--output", required=True, help="output file")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("reconstruct", help="the main job: a video in, a groom file and a "
                                          "turntable preview out (every stage, resumable)")
    p.add_argument("video", help="a video file (any format OpenCV reads) or a folder of images")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="project folder (created when missing; run again to resume); the groom, "
                        "preview.png and turntable.mp4 are written into it")
    p.add_argument("--cameras", metavar="PATH",
                   help="known cameras instead of estimating them: a transforms.json or a COLMAP "
                        "sparse model folder (in metres; --set cameras.import_scale=unknown "
                        "when not)")
    p.add_argument("--format", default="abc", metavar="FMT[,FMT...]",
                   help=f"groom file formats, comma-separated: {', '.join(EXPORT_SUFFIX)} "
                        "(default abc)")
    p.add_argument("--units", choices=("m", "cm", "mm"), default="cm",
                   help="groom file units (default cm)")
    p.add_argument("--up", choices=("y", "z"), default="y",
                   help="groom file up axis: y (default; Maya, Houdini, Unreal, Blender's "
                        "Alembic/USD/OBJ import) or z (Blender's PLY import)")
    p.add_argument("--head-file", action="store_true",
                   help="with abc: also write the fitted head to groom_head.abc")
    run_options(p)
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("demo", help="run the pipeline on the embedded sample capture")
    p.add_argument("--project", default="out/demo", help="project folder (default out/demo)")
    p.add_argument("--until", help="stop after this stage (default: run every stage)")
    run_options(p, preset="preview")
    p.set_defaults(func=cmd_demo)
    return parser


def _problem(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def error_line(exc: BaseException) -> str:
    """The one line (without the ``strandcap: error: `` prefix) that reports ``exc``:
    ``<file>: <problem>`` for an OSError that names a file."""
    if isinstance(exc, OSError):
        problem = exc.strerror or _problem(exc)
        return f"{exc.filename}: {problem}" if exc.filename else problem
    return _problem(exc)


def _damaged_file_errors() -> tuple[type, ...]:
    """Exception types of a damaged file that no loader turned into an InputError."""
    kinds: list[type] = [zipfile.BadZipFile, EOFError, ValueError]
    try:
        from safetensors import SafetensorError
        kinds.append(SafetensorError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(kinds)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if argv is None:  # a real command line (tests call main(argv) and keep their streams)
        keep_native_logs_off_terminal()
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("strandcap: cancelled; finished stages are kept, run the command again to resume",
              file=sys.stderr)
        return Cancelled.exit_code
    except StrandcapError as exc:
        print(f"strandcap: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"strandcap: error: {error_line(exc)}", file=sys.stderr)
        return 1
    except _damaged_file_errors() as exc:
        print(f"strandcap: error: a file is damaged or not what it should be "
              f"({type(exc).__name__}: {_problem(exc)}); if it is in a project's cache, delete "
              "that stage folder and run again", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
