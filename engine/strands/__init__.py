"""Stage 2, the strands: a geometry texture over scalp UV decoded by the strand VAE, fitted with
geometry and differentiable-rendering losses and the diffusion prior (:mod:`engine.strands.stage`)."""

from engine.strands.stage import StrandsConfig, StrandScene, StrandTrainer, build_scene, load_prior

__all__ = ["StrandsConfig", "StrandScene", "StrandTrainer", "build_scene", "load_prior"]
