"""The head: the ICT Face Model as a differentiable morphable model, its fit to face landmarks,
and the scalp (UV map, root frames, collision SDF) on the neutral and the fitted head."""

from engine.head.fit import HeadFit, fit_head, solve_pnp
from engine.head.model import HeadModel, load_head_mesh, load_head_model, sample_mesh, save_obj
from engine.head.scalp import (HeadSDF, Scalp, ScalpFrames, default_scalp, fitted_scalp,
                               load_scalp, save_scalp)

__all__ = ["HeadFit", "fit_head", "solve_pnp", "HeadModel", "load_head_mesh", "load_head_model",
           "sample_mesh", "save_obj", "HeadSDF", "Scalp", "ScalpFrames", "default_scalp",
           "fitted_scalp", "load_scalp", "save_scalp"]
