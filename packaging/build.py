"""Build the one-folder desktop bundle ``dist/strandcap/`` with PyInstaller.

Usage (from the repository root, with the project's virtual environment)::

    python packaging/build.py [--dist DIR] [--work DIR] [--clean] [--smoke]

It runs PyInstaller on ``packaging/strandcap.spec`` in this Python (whatever torch is installed
here ships: a CUDA build of torch gives a GPU bundle), writes ``BUILD-INFO.txt`` into the bundle
(versions, torch's CUDA version, build time) and prints the build time and the bundle size.
``--smoke`` then runs ``packaging/smoke_test.py`` on the result. Portable: no shell commands; PyInstaller
runs through its Python API in this process.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SPEC = HERE / "strandcap.spec"
NAME = "strandcap"


def folder_size(path: Path) -> int:
    """Total size in bytes of the regular files under ``path`` (links not followed)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            p = Path(root) / f
            if not p.is_symlink():
                total += p.stat().st_size
    return total


def torch_info() -> str:
    """``torch 2.13.0+cpu (CPU only)`` or ``torch 2.13.0+cu128 (CUDA 12.8)``."""
    try:
        import torch
    except ImportError:
        return "torch not installed"
    cuda = torch.version.cuda
    return f"torch {torch.__version__} ({'CUDA ' + cuda if cuda else 'CPU only'})"


def write_build_info(bundle: Path, seconds: float) -> None:
    """``BUILD-INFO.txt`` in the bundle: what was built, from what, on what."""
    from importlib import metadata as md

    def version(dist: str) -> str:
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return "not installed"

    lines = [
        f"Strandcap {version('strandcap')} one-folder bundle",
        f"built {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')} in {seconds:.0f} s",
        f"platform {platform.platform()} ({platform.machine()})",
        f"Python {platform.python_version()}",
        torch_info(),
        f"PyInstaller {version('pyinstaller')}",
        "",
        "Executables: strandcap (command line), strandcap-studio (desktop app).",
        "Shipped data: _internal/resources/. Licences: licenses/.",
    ]
    (bundle / "BUILD-INFO.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", default=str(ROOT / "dist"), help="output folder (default dist/)")
    parser.add_argument("--work", default=str(ROOT / "build" / "pyinstaller"),
                        help="PyInstaller's work folder (default build/pyinstaller/)")
    parser.add_argument("--clean", action="store_true", help="empty PyInstaller's cache first")
    parser.add_argument("--smoke", action="store_true", help="run packaging/smoke_test.py afterwards")
    args = parser.parse_args(argv)

    try:
        import PyInstaller.__main__ as pyi
    except ImportError:
        print("build.py: error: PyInstaller is not installed; pip install pyinstaller", file=sys.stderr)
        return 2

    print(f"building {NAME} with {torch_info()} ...", flush=True)
    t0 = time.monotonic()
    pyi_args = [str(SPEC), "--noconfirm", "--log-level", "WARN",
                "--distpath", str(Path(args.dist).resolve()), "--workpath", str(Path(args.work).resolve())]
    if args.clean:
        pyi_args.append("--clean")
    pyi.run(pyi_args)
    seconds = time.monotonic() - t0
    bundle = Path(args.dist).resolve() / NAME
    write_build_info(bundle, seconds)
    size = folder_size(bundle)
    print(f"built {bundle} in {seconds:.0f} s; size {size / 2**20:.0f} MiB", flush=True)

    if args.smoke:
        sys.path.insert(0, str(HERE))
        import smoke_test

        return smoke_test.main([str(bundle)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
