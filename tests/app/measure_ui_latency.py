"""Measure how long the GUI thread stalls while a run streams strand previews (not a test).

    xvfb-run -a -s "-screen 0 1280x1024x24" python tests/app/measure_ui_latency.py N_STRANDS

Runs the tests' toy graph (100 steps, a strands preview every 5 steps, N_STRANDS x 16 points)
through the Reconstruct page and a 10 ms QTimer; prints the largest and 95th-percentile gap
between timer ticks. Under Xvfb, vispy draws with Mesa's software rasteriser (llvmpipe).
"""
import os, time, sys
os.environ["QT_QPA_PLATFORM"]="xcb"
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
from PySide6 import QtWidgets, QtCore
import vispy; vispy.use("pyside6")
app = QtWidgets.QApplication([])
from engine.pipeline import Project
from app.settings import AppSettings
from app.state import AppState
from app.pages.reconstruct import ReconstructPage
from tests.app import toy_stages
import tempfile, pathlib
tmp = pathlib.Path(tempfile.mkdtemp())
from tests.app.conftest import make_video
v = make_video(tmp/"c.mp4")
p = Project.open_or_create(tmp/"p"); p.import_source(v)
N = int(sys.argv[1])
p.manifest["config"] = {"preset": "preview", "overrides": {"toy_strands": {"strands": N, "step_s": 0.02, "steps": 100}}}; p.save()
st = AppState(AppSettings(tmp/"s.ini"), stages=toy_stages.factory(toy_stages.run_stages))
st.set_project(p)
page = ReconstructPage(st); page.resize(1200, 800); page.show()
page.preset.setCurrentText("preview")
ticks = []
t = QtCore.QTimer(); t.setInterval(10)
class R(QtCore.QObject):
    @QtCore.Slot()
    def tick(self): ticks.append(time.monotonic())
r = R(); t.timeout.connect(r.tick); t.start()
done = []
class D(QtCore.QObject):
    @QtCore.Slot(str)
    def fin(self, o): done.append(o)
d = D(); page.runFinished.connect(d.fin)
t0 = time.monotonic()
page.start()
while not done: app.processEvents(); time.sleep(0.002)
gaps = [b - a for a, b in zip(ticks, ticks[1:])]
print(N, "strands: run", round(time.monotonic()-t0,2), "s; previews", page.counts["preview:strands"], "max UI gap", round(max(gaps)*1000), "ms; p95", round(sorted(gaps)[int(0.95*len(gaps))]*1000), "ms")
