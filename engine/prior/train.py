"""Train the hair prior from scratch: ``python -m engine.prior.train --config tiny|standard --out DIR``.

Both models are trained on procedural grooms (:mod:`engine.prior.synth`) on the neutral ICT
scalp; everything is seeded. Configs (:data:`CONFIGS`):

* ``tiny``: a few small grooms, tiny networks, tens of steps; runs in the test suite on a CPU in
  seconds (it checks the machinery, not the quality).
* ``standard``: the shipped models. VAE: 64 grooms x 3000 strands (16 per curl class), started
  from the PCA of the training strands (:meth:`StrandVAE.fit_basis`: whitened 297-component
  basis, the linear maps initialised to the 64-component PCA, MLP 512 x 3 residuals), batch 256,
  AdamW 1e-3 with cosine decay over 25 min (wall clock). Diffusion: 320 grooms x 2500 strands
  encoded by the VAE (z_mu) into 64 x 64 latent textures (plus their mirror images), mapped to
  model space through the VAE's reconstruction metric (``latent_space = "vae_metric"``), a U-Net
  (width 64) at 32 x 32 x 64, batch 8, Adam 5e-4 with cosine decay to 2e-5, EMA 0.999, 55 min
  (wall clock). ``standard-whitened`` is the same with per-channel standardised latents (the
  ablation of the latent space). Each stage
  stops at ``max_minutes`` (wall clock) or ``steps``, whichever comes first; both are recorded in
  the JSON. Train with one torch thread on a shared CPU (``--threads 1``).

Outputs in ``--out``: ``strand_vae.safetensors`` / ``.json`` and ``texture_diffusion.safetensors``
/ ``.json`` (config, steps run, final losses, wall time, hardware) and ``train_log.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from engine.errors import ConfigError
from engine.head.scalp import default_scalp
from engine.io.files import atomic_path, write_json_atomic
from engine.prior.checkpoint import hardware
from engine.prior.diffusion import train_diffusion
from engine.prior.synth import CURL_CLASSES, sample_style, synth_groom
from engine.prior.vae import StrandVAE, VAEConfig, load_vae, save_vae, to_local, vae_loss


@dataclass(frozen=True)
class VAETrainConfig:
    grooms_per_curl: int = 16
    strands_per_groom: int = 3000
    hidden: int = 512
    depth: int = 3
    basis: int = 0
    batch: int = 256
    steps: int = 200000
    lr: float = 1e-3
    lambda_d: float = 1.0
    lambda_c: float = 1.0
    lambda_kl: float = 1e-4
    max_minutes: float = 25.0
    seed: int = 0


@dataclass(frozen=True)
class DiffusionTrainConfig:
    grooms: int = 320
    strands_per_groom: int = 2500
    dense_res: int = 64
    model_res: int = 32
    channels: int = 64
    batch: int = 8
    steps: int = 100000
    lr: float = 5e-4
    lr_final: float = 2e-5
    max_minutes: float = 55.0
    seed: int = 1
    latent_space: str = "vae_metric"  # or "whitened" (per-channel standardisation)
    metric_samples: int = 512


@dataclass(frozen=True)
class TrainConfig:
    vae: VAETrainConfig = field(default_factory=VAETrainConfig)
    diffusion: DiffusionTrainConfig = field(default_factory=DiffusionTrainConfig)


CONFIGS = {
    "standard": TrainConfig(),
    # ablation of the diffusion model's latent space: per-channel standardisation of the
    # (whitened-PCA) VAE latents instead of the VAE's reconstruction metric; otherwise ``standard``
    "standard-whitened": TrainConfig(diffusion=DiffusionTrainConfig(latent_space="whitened")),
    "tiny": TrainConfig(
        vae=VAETrainConfig(grooms_per_curl=1, strands_per_groom=150, hidden=64, depth=2, batch=128,
                           steps=40, lr=2e-3, max_minutes=1.0),
        diffusion=DiffusionTrainConfig(grooms=2, strands_per_groom=150, dense_res=16, model_res=8,
                                       channels=8, batch=4, steps=10, lr=1e-3, max_minutes=1.0),
    ),
}


def make_strand_set(grooms_per_curl: int, strands_per_groom: int, seed: int, scalp=None):
    """Local-frame strands of procedural grooms: (M, 100, 3) float32 m, curl labels (M,) int64."""
    scalp = scalp or default_scalp()
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for ci, curl in enumerate(CURL_CLASSES):
        for _ in range(grooms_per_curl):
            g = synth_groom(sample_style(rng, curl=curl), strands_per_groom, scalp=scalp)
            rot = scalp.frames(g.uv).matrix()
            xs.append(to_local(g.strands.astype(np.float64), rot).astype(np.float32))
            ys.append(np.full(len(g.strands), ci))
    return np.concatenate(xs), np.concatenate(ys)


def train_vae(cfg: VAETrainConfig, out: Path, log=print) -> tuple[StrandVAE, dict]:
    """Train the strand VAE; writes ``out/strand_vae.safetensors`` (+ .json). Returns (model, info)."""
    torch.manual_seed(cfg.seed)
    t0 = time.time()
    cache = out / "vae_strands_cache.npz"  # reused only when generated with the same config
    key = json.dumps([cfg.grooms_per_curl, cfg.strands_per_groom, cfg.seed])
    if cache.exists() and str(np.load(cache)["key"]) == key:
        x = np.load(cache)["x"]
    else:
        x, _ = make_strand_set(cfg.grooms_per_curl, cfg.strands_per_groom, cfg.seed)
        with atomic_path(cache) as tmp:
            np.savez(tmp, x=x, key=key)
    t_data = time.time() - t0
    log(f"vae data: {len(x)} strands in {t_data:.1f}s")
    x = torch.from_numpy(x)
    model = StrandVAE(VAEConfig(hidden=cfg.hidden, depth=cfg.depth, basis=cfg.basis))
    model.fit_basis(x, seed=cfg.seed)  # start from the PCA of the training strands
    with torch.no_grad():
        sel = torch.randperm(len(x), generator=torch.Generator().manual_seed(cfg.seed + 1))[:4096]
        err0 = (model(x[sel], sample=False)[0] - x[sel]).norm(dim=-1)[:, 1:].median().item() * 1000
    log(f"vae: PCA start ({model.basis.shape[0]} components, {cfg.hidden}x{cfg.depth} MLPs), "
        f"median point error from z_mu {err0:.3f} mm")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-5)
    gen = torch.Generator().manual_seed(cfg.seed)
    history = []
    t1 = time.time()
    step = 0
    for step in range(1, cfg.steps + 1):
        # cosine decay over whichever ends first: the step budget or the wall-clock cap
        frac = min(1.0, max(step / cfg.steps, (time.time() - t1) / (cfg.max_minutes * 60)))
        lr = cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(0, len(x), (min(cfg.batch, len(x)),), generator=gen)
        p = x[idx]
        p_hat, mu, logvar = model(p)
        loss, terms = vae_loss(p_hat, p, mu, logvar, cfg.lambda_d, cfg.lambda_c, cfg.lambda_kl)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        if step == 1 or step % max(1, min(100, cfg.steps // 10)) == 0 or step == cfg.steps:
            err = (p_hat - p).norm(dim=-1).mean().item() * 1000
            history.append({"step": step, "loss": loss.item(), "mean_point_err_mm": err, **terms})
            log(f"vae step {step} loss {loss.item():.4f} err {err:.2f} mm {terms}")
        if time.time() - t1 > cfg.max_minutes * 60:
            log(f"vae: time cap reached at step {step}")
            break
    info = {"train_config": asdict(cfg), "steps_run": step, "train_strands": len(x),
            "pca_start_median_err_mm": err0,
            "data_seconds": t_data, "train_seconds": time.time() - t1, "hardware": hardware(),
            "history": history}
    save_vae(model.eval(), out / "strand_vae.safetensors", {"training": {k: v for k, v in info.items()
                                                                          if k != "history"}})
    return model, info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="tiny", help=" | ".join(CONFIGS))
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--only", default="all", help="all | vae | diffusion (diffusion needs out/strand_vae)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    ap.add_argument("--init-diffusion", type=Path, default=None,
                    help="texture_diffusion.safetensors to continue training from (same VAE and config)")
    a = ap.parse_args(argv)
    if a.config not in CONFIGS:
        raise ConfigError(f"--config {a.config!r}: expected one of {sorted(CONFIGS)}")
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = CONFIGS[a.config]
    a.out.mkdir(parents=True, exist_ok=True)
    log_lines = []

    def log(msg):
        print(msg, flush=True)
        log_lines.append(msg)

    report = {"config": a.config}
    if a.only in ("all", "vae"):
        _, info = train_vae(cfg.vae, a.out, log)
        report["vae"] = info
    if a.only in ("all", "diffusion"):
        vae = load_vae(a.out / "strand_vae.safetensors")
        _, info = train_diffusion(cfg.diffusion, vae, a.out, log, init=a.init_diffusion)
        report["diffusion"] = info
    name = "train_log.json" if a.only == "all" else f"train_log_{a.only}.json"
    write_json_atomic(a.out / name, report)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
