"""The hair prior: procedural grooms, the strand VAE, the scalp-texture diffusion model (EDM)
and their training (``strandcap-train``, :mod:`engine.prior.train`)."""

from engine.prior.diffusion import TextureDiffusion, load_diffusion, texture_to_strands
from engine.prior.synth import HairStyle, sample_style, synth_groom
from engine.prior.vae import StrandVAE, load_vae

__all__ = ["TextureDiffusion", "load_diffusion", "texture_to_strands", "HairStyle",
           "sample_style", "synth_groom", "StrandVAE", "load_vae"]
