#!/usr/bin/env bash
# The GPU check of issue 25 in one script, for a lent GPU machine (see benchmarks/README.md,
# "The GPU check"). Two steps:
#
#   bash benchmarks/gpu_check.sh prepare        # here, on the CPU, with the project's .venv
#   bash benchmarks/gpu_check.sh run OUT_DIR    # there, with the GPU image's python3 and torch
#
# `prepare` runs the CPU-only stages (keyframes .. cameras: OpenCV, mediapipe, pycolmap) of the
# standard preset on the embedded sample and on the Blender straight orbit into .gpu/work, copies
# the orbit's renders into .gpu/blender, and downloads into .gpu/whl the wheels a GPU image
# without our pins lacks (trimesh; Python 3.12 manylinux). Everything stays under .gpu/ (ignored
# by git): carry `.gpu` to the GPU machine.
#
# `run` installs those wheels into /tmp/site, runs the GPU tests (`pytest -m gpu`), then the
# standard preset with `--device cuda` through benchmarks/run.py on both cases (the prepared
# stages are found finished; coarse and strands run on the GPU, each in its own process with its
# wall time and torch.cuda.max_memory_allocated), writing the report and the contact sheets into
# OUT_DIR. Targets (issue 25): the standard preset end to end <= 15 min on one H200, peak GPU
# memory <= 12 GB.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-}"
CASES="${CASES:-sample,blender-straight-orbit}"
PRESET="${PRESET:-standard}"   # PRESET=preview DEVICE=cpu: a quick rehearsal of the script on a CPU
DEVICE="${DEVICE:-cuda}"
BLENDER=(--blender-views 24 --blender-size 256)

case "$mode" in
  prepare)
    PY="${PY:-.venv/bin/python}"
    mkdir -p .gpu/whl .gpu/blender
    # reuse renders of an earlier benchmark run (run.py's default --blender-cache) when present
    src="${BLENDER_CACHE:-${TMPDIR:-/tmp}/strandcap-blender-cases}/blender-straight-orbit"
    [ -d "$src" ] && [ ! -d .gpu/blender/blender-straight-orbit ] && cp -r "$src" .gpu/blender/
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
    "$PY" benchmarks/run.py --preset "$PRESET" --device cpu --cases "$CASES" --until cameras \
      --work .gpu/work --keep --blender-cache .gpu/blender "${BLENDER[@]}" \
      --out .gpu/prepare-report
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp --platform manylinux2014_x86_64 -d .gpu/whl "trimesh==5.2.0"
    # the device call carries at most 64 MiB; the stage folders are verified by their sha256
    # (done.json), so nothing in them can be left behind: with too much, prepare fewer CASES
    du -sh .gpu
    [ "$(du -sm .gpu | cut -f1)" -le 62 ] || echo "warning: .gpu is over 62 MB; prepare fewer CASES" >&2
    ;;
  run)
    out="${2:?usage: gpu_check.sh run OUT_DIR}"
    mkdir -p "$out"
    export PYTHONUNBUFFERED=1
    if compgen -G ".gpu/whl/*.whl" >/dev/null; then
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .gpu/whl/*.whl
      export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
    fi
    { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 \
        || echo "nvidia-smi: none here"; } | tee "$out/gpu.txt"
    python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" \
      | tee -a "$out/gpu.txt"
    # the GPU tests (the CPU/CUDA agreement of the coarse renderer and trainer, the rasteriser)
    python3 -m pytest -q -p no:cacheprovider -m gpu tests/gpu tests/engine/test_raster.py \
      2>&1 | tee "$out/gpu-tests.log" || true
    # the standard preset with the prepared preprocessing; coarse and strands on the GPU
    python3 benchmarks/run.py --preset "$PRESET" --device "$DEVICE" --cases "$CASES" \
      --work .gpu/work --keep --blender-cache .gpu/blender "${BLENDER[@]}" \
      --out "$out" --machine "$DEVICE" 2>&1 | tee "$out/run.log"
    ;;
  *)
    echo "usage: bash benchmarks/gpu_check.sh prepare | run OUT_DIR" >&2
    exit 2
    ;;
esac
