"""Files: atomic writes and JSON, video and image reading, the groom and its import and export
(Alembic, USD, OBJ, PLY, .hair, TressFX, npz)."""

from engine.io.export import export_groom, load_groom
from engine.io.files import atomic_path, file_sha256, read_json, write_json_atomic
from engine.io.groom import Groom, resample_strands
from engine.io.media import image_files, probe_source, read_image, write_image

__all__ = ["export_groom", "load_groom", "atomic_path", "file_sha256", "read_json",
           "write_json_atomic", "Groom", "resample_strands", "image_files", "probe_source",
           "read_image", "write_image"]
