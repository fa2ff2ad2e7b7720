"""Face landmarks (mediapipe face mesh, 478 points with iris) and a head-pose estimate.

mediapipe 0.10.21 bundles the legacy ``mp.solutions.face_mesh`` model (DESIGN.md, platform
facts); nothing is downloaded at run time.
"""

from __future__ import annotations

import os

import numpy as np

# mediapipe's C++ side logs through glog/absl; ask it to keep to errors (the CLI also keeps
# native start-up notes off the terminal, see engine.cli.keep_native_logs_off_terminal).
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

N_LANDMARKS = 478

# The face oval of mediapipe's mesh (FACEMESH_FACE_OVAL), in order around the face.
FACE_OVAL = np.array([10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379,
                      378, 400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127,
                      162, 21, 54, 103, 67, 109])
# Upper eyebrow points (both brows) and chin, used to place the hairline and the neck.
BROWS = np.array([70, 63, 105, 66, 107, 336, 296, 334, 293, 300])


class FaceLandmarker:
    """mediapipe face mesh on RGB frames.

    Args:
        static: treat every frame independently (keyframes); False tracks across a video.
        min_confidence: detection confidence threshold in [0, 1].

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, static: bool = True, min_confidence: float = 0.5) -> None:
        import mediapipe as mp

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static, max_num_faces=1, refine_landmarks=True,
            min_detection_confidence=min_confidence, min_tracking_confidence=min_confidence)

    def __enter__(self) -> "FaceLandmarker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._mesh.close()

    def detect(self, rgb: np.ndarray) -> np.ndarray | None:
        """Landmarks of the most prominent face.

        Args:
            rgb: (H, W, 3) uint8 RGB.
        Returns:
            (478, 3) float32: x, y in pixels, z = mediapipe's relative depth times the image
            width (smaller is nearer the camera); None when no face is found.
        """
        h, w = rgb.shape[:2]
        result = self._mesh.process(np.ascontiguousarray(rgb))
        if not result.multi_face_landmarks:
            return None
        lm = result.multi_face_landmarks[0].landmark
        return np.array([[p.x * w, p.y * h, p.z * w] for p in lm], np.float32)


def head_pose(points: np.ndarray) -> tuple[float, float, float]:
    """Yaw, pitch, roll in degrees from mediapipe's 3D landmarks.

    The face's axes are read off the mesh: x from the right to the left cheek (landmarks 234
    -> 454), down from forehead to chin (10 -> 152), forward = their cross product (towards the
    camera when frontal). mediapipe's z is a relative depth on the scale of x, so the axes are
    close to metric up to weak perspective. On the rendered sample (known truth, yaw -50..50)
    the yaw error is within about 5 degrees.

    Args:
        points: (478, 3) float landmarks (x, y pixels, z relative depth times image width).
    Returns:
        (yaw, pitch, roll) degrees: yaw > 0 when the face points towards image right (the
        subject turns to their left), pitch > 0 when it points up, roll > 0 when the line from
        the right to the left cheek turns clockwise on screen.
    """
    p = np.asarray(points, np.float64)
    x = p[454] - p[234]
    down = p[152] - p[10]
    x /= np.linalg.norm(x)
    down -= x * np.dot(x, down)
    down /= np.linalg.norm(down)
    forward = -np.cross(x, down)  # (col, row, depth): depth grows away from the camera
    yaw = np.degrees(np.arctan2(forward[0], -forward[2]))
    pitch = np.degrees(np.arctan2(-forward[1], np.hypot(forward[0], forward[2])))
    roll = np.degrees(np.arctan2(x[1], x[0]))
    return float(yaw), float(pitch), float(roll)
