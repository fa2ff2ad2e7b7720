"""Measure the trained prior: ``python -m engine.prior.evaluate --weights resources/prior --out docs/prior``.

* VAE on held-out procedural styles (seeds never used in training): point error in mm between
  strands and their reconstructions from z_mu (local root frame, 100 points), per curl class:
  median, mean, 95th percentile.
* VAE on the Sintel Lite guides (``../shared/data/grooms/sintel_lite_guides.npz``): scaled so
  that the character's head width (median x-extent of 1-unit mesh slices over the roots' height
  range) is 15.7 cm (the ICT head's width), roots
  framed by the Sintel head mesh's vertex normals (T = +x projected on the tangent plane,
  B = N x T), strands resampled from 32 to 100 points.
* Diffusion: samples of the stochastic EDM Heun sampler (40 steps, S_churn 40, ending at
  sigma 0.6 with the denoiser's estimate; for comparison also EDM's full schedule to 0.002,
  the deterministic sampler, 18 steps, and the stochastic one with head-collision guidance,
  :class:`engine.prior.diffusion.HeadCollisionGuide`), each over ``--sample-sets`` seeds,
  decoded to strands; length and curl (total turning angle per metre of
  strand) histograms against 64 fresh procedural grooms (Wasserstein-1 distance and total
  variation of the histograms), fraction of points inside the head (SDF < 0, roots excluded),
  contact sheet. Reference: as many fresh procedural grooms passed through the texture pipeline
  (encode, 32 x 32 latent texture, decode), i.e. what a perfect diffusion model would give, with
  the same statistics; their distances to the data are the floor set by sampling whole grooms.
* Contact sheet of procedural styles (front and side).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from engine.head.scalp import SHARED_DATA, default_scalp
from engine.io.groom import resample_strands
from engine.prior.diffusion import (HeadCollisionGuide, latent_texture, load_diffusion,
                                    texture_to_strands)
from engine.prior.synth import CURL_CLASSES, sample_style, synth_groom
from engine.prior.vae import load_vae, to_local
from engine.prior.viz import contact_sheet


def _stats(e):
    e = np.asarray(e)
    return {"median_mm": float(np.median(e)), "mean_mm": float(e.mean()), "p95_mm": float(np.percentile(e, 95)),
            "n_points": int(e.size)}


def reconstruct(vae, local: np.ndarray, batch: int = 4096) -> np.ndarray:
    """VAE reconstruction from z_mu of local strands (M, L, 3) m -> (M, L, 3)."""
    out = []
    with torch.no_grad():
        for i in range(0, len(local), batch):
            x = torch.from_numpy(local[i:i + batch]).float()
            out.append(vae.decode(vae.encode(x)[0]).numpy())
    return np.concatenate(out)


def pca_reconstruct(vae, local: np.ndarray, k: int | None = None) -> np.ndarray:
    """Linear baseline: projection of local strands (M, L, 3) m onto the first ``k`` (default: the
    latent size) components of the VAE's strand basis (the PCA of its training strands)."""
    k = k or vae.cfg.latent
    mean = vae.basis_mean.double().numpy()
    v = vae.basis[:k].double().numpy()
    x = local[:, 1:].reshape(len(local), -1).astype(np.float64)
    y = mean + (x - mean) @ v.T @ v
    return np.concatenate([np.zeros_like(local[:, :1]), y.reshape(len(local), -1, 3)], 1).astype(np.float32)


def vae_heldout(vae, grooms_per_curl=6, strands=1000, seed=987654):
    """Per-curl-class point-error stats (mm) on held-out procedural styles, with the median of the
    linear baseline (PCA with as many components as the latent) beside it."""
    sc = default_scalp()
    rng = np.random.default_rng(seed)
    res = {}
    for curl in CURL_CLASSES:
        errs, base = [], []
        for _ in range(grooms_per_curl):
            g = synth_groom(sample_style(rng, curl=curl), strands, scalp=sc)
            loc = to_local(g.strands.astype(np.float64), sc.frames(g.uv).matrix()).astype(np.float32)
            rec = reconstruct(vae, loc)
            errs.append(np.linalg.norm(rec - loc, axis=-1)[:, 1:].ravel() * 1000)
            base.append(np.linalg.norm(pca_reconstruct(vae, loc) - loc, axis=-1)[:, 1:].ravel() * 1000)
        res[curl] = {**_stats(np.concatenate(errs)),
                     f"pca{vae.cfg.latent}_median_mm": float(np.median(np.concatenate(base)))}
    return res


def data_texture(vae, groom, scalp, res: int) -> np.ndarray:
    """Latent texture (C, res, res) of a procedural groom: strands encoded with z_mu, nearest
    neighbour over scalp UV (:func:`engine.prior.diffusion.latent_texture`)."""
    loc = to_local(groom.strands.astype(np.float64), scalp.frames(groom.uv).matrix()).astype(np.float32)
    with torch.no_grad():
        z = torch.cat([vae.encode(torch.from_numpy(loc[i:i + 4096]))[0] for i in range(0, len(loc), 4096)])
    return latent_texture(groom.uv, z.numpy(), res)


def sintel_local(path: Path | None = None):
    """Sintel guides scaled to a human head: local strands (228, 100, 3) m and the scale used."""
    import trimesh

    path = path or SHARED_DATA / "grooms" / "sintel_lite_guides.npz"
    d = np.load(path)
    s = d["strands"].astype(np.float64)
    v, f = d["head_vertices"].astype(np.float64), d["head_faces"].astype(np.int64)
    roots = s[:, 0]
    ys = np.linspace(roots[:, 1].min(), roots[:, 1].max(), 12)[1:-1]
    width = float(np.median([np.ptp(v[np.abs(v[:, 1] - y) < 0.5, 0]) for y in ys]))
    scale = 0.157 / width
    mesh = trimesh.Trimesh(v, f, process=False)
    vn = mesh.vertex_normals
    from scipy.spatial import cKDTree

    idx = cKDTree(v).query(roots, k=5)[1]
    n = vn[idx].mean(1)
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    # orient outward: away from the roots' centroid
    flip = ((roots - roots.mean(0)) * n).sum(1) < 0
    n[flip] *= -1
    t = np.array([1.0, 0, 0]) - n[:, :1] * n
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    b = np.cross(n, t)
    rot = np.stack([t, b, n], 1)
    strands = resample_strands(s * scale, 100)
    return to_local(strands, rot).astype(np.float32), scale, width


def curl_measure(strands: np.ndarray) -> np.ndarray:
    """Total turning angle per metre of strand (rad/m) for strands (N, L, 3)."""
    d = np.diff(strands.astype(np.float64), axis=1)
    ln = np.linalg.norm(d, axis=-1)
    b = d / np.maximum(ln[..., None], 1e-12)
    ang = np.arccos(np.clip((b[:, 1:] * b[:, :-1]).sum(-1), -1, 1)).sum(1)
    return ang / np.maximum(ln.sum(1), 1e-9)


def _hist_distances(a, b, bins):
    from scipy.stats import wasserstein_distance

    ha = np.histogram(a, bins)[0] / len(a)
    hb = np.histogram(b, bins)[0] / len(b)
    return {"wasserstein1": float(wasserstein_distance(a, b)), "total_variation": float(0.5 * np.abs(ha - hb).sum()),
            "hist_samples": ha.tolist(), "hist_data": hb.tolist(), "bins": np.asarray(bins).tolist()}


def sample_statistics(samples: list, data: list, scalp) -> dict:
    """Plausibility of decoded samples (list of (N_i, L, 3) strands, metres, head frame) against
    procedural data grooms: share of points inside the head (roots excluded), and the distances
    between the strand-length and curl histograms (Wasserstein-1 and total variation)."""
    allp = np.concatenate([s[:, 1:].reshape(-1, 3) for s in samples])
    d = scalp.sdf(allp)
    ls = np.concatenate([np.linalg.norm(np.diff(s, axis=1), axis=-1).sum(1) for s in samples])
    ld = np.concatenate([np.linalg.norm(np.diff(s, axis=1), axis=-1).sum(1) for s in data])
    cs = np.concatenate([curl_measure(s) for s in samples])
    cd = np.concatenate([curl_measure(s) for s in data])
    length = _hist_distances(ls, ld, np.linspace(0, 1.0, 26))
    curl = _hist_distances(cs, cd, np.linspace(0, max(cs.max(), cd.max()) + 1e-6, 26))
    return {"fraction_points_inside_head": float((d < 0).mean()),
            "fraction_points_inside_head_by_1mm": float((d < -0.001).mean()),
            "length_m": length, "curl_rad_per_m": curl,
            "length_tv": length["total_variation"], "curl_tv": curl["total_variation"],
            "length_median_samples_m": float(np.median(ls)), "length_median_data_m": float(np.median(ld)),
            "curl_median_samples": float(np.median(cs)), "curl_median_data": float(np.median(cd))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=Path("resources/prior"))
    ap.add_argument("--out", type=Path, default=Path("docs/prior"))
    ap.add_argument("--samples", type=int, default=32,
                    help="diffusion samples (and procedural grooms through the texture pipeline)")
    ap.add_argument("--sample-sets", type=int, default=3,
                    help="sets of --samples samples (seeds 0..N-1) for the inside-head figure's spread")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--skip", default="", help="comma list of: vae, sintel, diffusion, styles")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    skip = set(filter(None, a.skip.split(",")))
    a.out.mkdir(parents=True, exist_ok=True)
    sc = default_scalp()
    vae = load_vae(a.weights / "strand_vae.safetensors")
    mpath = a.out / "metrics.json"
    metrics = json.loads(mpath.read_text()) if mpath.exists() else {}
    t0 = time.time()
    if "vae" not in skip:
        metrics["vae_heldout"] = vae_heldout(vae)
        print(json.dumps(metrics["vae_heldout"], indent=1))
    if "sintel" not in skip and (SHARED_DATA / "grooms" / "sintel_lite_guides.npz").exists():
        loc, scale, width = sintel_local()
        rec = reconstruct(vae, loc)
        e = np.linalg.norm(rec - loc, axis=-1)[:, 1:].ravel() * 1000
        e_pca = np.linalg.norm(pca_reconstruct(vae, loc) - loc, axis=-1)[:, 1:].ravel() * 1000
        lens = np.linalg.norm(np.diff(loc, axis=1), axis=-1).sum(1)
        metrics["vae_sintel"] = {**_stats(e), f"pca{vae.cfg.latent}_median_mm": float(np.median(e_pca)),
                                 "scale_m_per_unit": scale, "head_width_units": float(width),
                                 "strand_length_cm_median": float(np.median(lens) * 100)}
        print("sintel", metrics["vae_sintel"])
    if "diffusion" not in skip and (a.weights / "texture_diffusion.safetensors").exists():
        model = load_diffusion(a.weights / "texture_diffusion.safetensors")
        rng = np.random.default_rng(4242)
        data = [synth_groom(sample_style(rng), 400, scalp=sc).strands for _ in range(64)]
        def draw(seed, **kw):
            tex = model.sample(a.samples, generator=torch.Generator().manual_seed(seed), **kw).numpy()
            return [texture_to_strands(t, vae, sc)[0] for t in tex]

        def flat(st):
            return {k: v for k, v in st.items() if not isinstance(v, dict)}

        def per_set(stats):
            return {f"{k}_by_sample_set": [st[k] for st in stats]
                    for k in ("fraction_points_inside_head", "length_tv", "curl_tv",
                              "length_median_samples_m", "curl_median_samples")}

        samples = draw(0)
        alone = [sample_statistics(samples, data, sc)] + [
            sample_statistics(draw(seed), data, sc) for seed in range(1, a.sample_sets)]
        metrics["diffusion"] = {
            "n_samples": a.samples, "sampler": "EDM Heun, stochastic (Algorithm 2), 40 steps, "
            "S_churn 40, ending at sigma 0.6 with the denoiser's estimate",
            "strands_per_sample": int(np.mean([len(s) for s in samples])),
            **alone[0], **per_set(alone),
            "full_schedule_sigma_min_0.002": flat(sample_statistics(draw(0, sigma_min=0.002), data, sc)),
            "deterministic_heun_18": flat(sample_statistics(draw(0, steps=18, churn=0.0), data, sc)),
        }
        guide = HeadCollisionGuide(model, vae, sc)
        guided = [sample_statistics(draw(seed, guide=guide), data, sc) for seed in range(a.sample_sets)]
        metrics["diffusion"]["head_collision_guided"] = {
            "step": guide.step, **flat(guided[0]), **per_set(guided)}
        print({k: (v if not isinstance(v, dict) else {kk: vv for kk, vv in v.items() if "hist" not in kk and kk != "bins"})
               for k, v in metrics["diffusion"].items()})
        contact_sheet(samples[:8], [f"diffusion sample {i}" for i in range(8)], a.out / "diffusion_samples.png",
                      mesh=sc.mesh, cols=4, max_strands=1000)
        # reference: procedural grooms through the same texture pipeline (encode -> 32 x 32 latent
        # texture -> decode), i.e. what a perfect diffusion model would produce
        rt = [texture_to_strands(data_texture(vae, g, sc, model.cfg.res), vae, sc)[0]
              for g in [synth_groom(sample_style(rng), 2500, scalp=sc) for _ in range(a.samples)]]
        metrics["diffusion"]["texture_roundtrip_reference"] = {
            "n_grooms": len(rt), **{k: v for k, v in sample_statistics(rt, data, sc).items()
                                    if not isinstance(v, dict)}}
        print("texture round trip", metrics["diffusion"]["texture_roundtrip_reference"])
        contact_sheet(rt[:4], [f"procedural groom via 32x32 texture {i}" for i in range(4)],
                      a.out / "texture_roundtrip.png", mesh=sc.mesh, cols=4, max_strands=1000)
    if "styles" not in skip:
        combos = [("straight", "long", "centre", False), ("straight", "short", "side", True),
                  ("wavy", "long", "side", False), ("wavy", "medium", "none", True),
                  ("curly", "medium", "centre", False), ("curly", "long", "none", False),
                  ("coily", "short", "none", False), ("straight", "medium", "none", False)]
        gs, ts = [], []
        for i, (c, l, p, f) in enumerate(combos):
            g = synth_groom(sample_style(100 + i, curl=c, length=l, parting=p, fringe=f), 3000, scalp=sc)
            gs.append(g.strands)
            ts.append(f"{c} {l} {p}{' fringe' if f else ''}")
        contact_sheet(gs, ts, a.out / "procedural_styles.png", mesh=sc.mesh, cols=4)
    metrics["evaluate_seconds"] = time.time() - t0
    mpath.write_text(json.dumps(metrics, indent=1))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
