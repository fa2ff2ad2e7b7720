"""Main window, recent projects, settings, About box, Export page, entry point."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from PySide6 import QtGui, QtWidgets

from tests.app import toy_stages


@pytest.fixture
def window(qtbot, settings):
    from app.mainwindow import PAGES, MainWindow
    from app.state import AppState

    state = AppState(settings, stages=toy_stages.factory(toy_stages.run_stages))
    w = MainWindow(state)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    assert w.sidebar.count() == len(PAGES) == w.stack.count()
    return w


def test_window_opens_with_pages(qtbot, window):
    assert window.windowTitle() == "Strandcap Studio"
    for i, name in enumerate(("Capture", "Review", "Reconstruct", "Export")):
        window.show_page(name)
        assert window.stack.currentIndex() == i
        assert window.sidebar.item(i).text() == name
    menus = [a.text() for a in window.menuBar().actions()]
    assert menus == ["&File", "&View", "&Help"]
    view = window.menuBar().actions()[1].menu()
    view.actions()[2].trigger()  # Ctrl+3
    assert window.stack.currentWidget() is window.reconstruct
    assert view.actions()[2].shortcut().toString() == "Ctrl+3"


def test_open_project_records_recent_and_updates_pages(qtbot, window, project, tmp_path):
    project.manifest["config"] = {"preset": "high", "overrides": {}}
    project.save()
    assert window.open_project(project.root)
    assert window.reconstruct.preset.currentText() == "high"  # the project's last preset
    assert window.windowTitle().endswith(project.root.name)
    assert window.state.settings.recent_projects() == [str(project.root)]
    assert window.reconstruct.stage_list.topLevelItemCount() == 2
    assert window.review.mode == "source"
    other = tmp_path / "second"
    assert window.open_project(other)  # a missing folder becomes a new project
    assert (other / "project.json").is_file()
    assert window.state.settings.recent_projects() == [str(other.resolve()), str(project.root)]
    window._fill_recent()
    texts = [a.text() for a in window.recent_menu.actions()]
    assert texts[:2] == [str(other.resolve()), str(project.root)]


def test_open_bad_project_shows_error(qtbot, window, tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr(QtWidgets.QMessageBox, "exec", lambda box: shown.append(box.text()))
    bad = tmp_path / "notaproject"
    bad.mkdir()
    (bad / "x.txt").write_text("hi")
    assert not window.open_project(bad)
    assert len(shown) == 1 and "not empty and is not a Strandcap project" in shown[0]


def test_settings_round_trip(qtbot, settings):
    from app.settings import Preferences, SettingsDialog

    prefs = Preferences(preset="high", device="cpu", preview_rate=7.0, max_display_strands=5000,
                        camera_index=2, capture_width=1920, capture_height=1080,
                        projects_dir="/tmp/x")
    dlg = SettingsDialog(prefs)
    qtbot.addWidget(dlg)
    assert dlg.preferences() == prefs
    dlg.preset.setCurrentText("preview")
    settings.set_preferences(dlg.preferences())
    again = settings.preferences()
    assert again.preset == "preview" and again.preview_rate == 7.0 and again.camera_index == 2
    assert (again.capture_width, again.capture_height) == (1920, 1080)


def test_about_lists_versions_and_licences(qtbot, tmp_path):
    from app.dialogs import AboutDialog, bundled_licences, package_versions

    (tmp_path / "heads").mkdir()
    (tmp_path / "heads" / "LICENSE-ICT.txt").write_text("MIT licence text")
    dlg = AboutDialog(resources=tmp_path)
    qtbot.addWidget(dlg)
    assert dlg.licences == [("heads/LICENSE-ICT.txt", "MIT licence text")]
    versions = package_versions()
    assert versions["PySide6-Essentials"] != "not installed"
    assert versions["vispy"] != "not installed"
    # the real resources/ folder: every LICENSE* file found is listed
    from app.dialogs import REPO_ROOT
    real = sorted((REPO_ROOT / "resources").rglob("LICENSE*")) if (REPO_ROOT / "resources").is_dir() else []
    assert len(bundled_licences()) == len([p for p in real if p.is_file()])


@pytest.mark.skipif(importlib.util.find_spec("engine.io.export") is None,
                    reason="engine/io/export.py has not landed")
def test_export_project_groom(qtbot, window, project, monkeypatch):
    from engine.io.export import load_groom

    from engine.io.export import export_groom
    from engine.io.groom import Groom

    # a finished stage output holding groom.npz, as the strand stage will leave it
    folder = project.cache_dir / "toy_strands" / "0123456789abcdef"
    folder.mkdir(parents=True)
    strands = toy_stages.toy_groom(50)
    export_groom(Groom(strands=strands), folder / "groom.npz", units="m")
    (folder / "done.json").write_text('{"finished_at": 1.0}')
    window.open_project(project.root)
    page = window.export
    assert page.source == folder / "groom.npz"
    page.format.setCurrentIndex(page.format.findData("ply"))
    assert page.file_name.text() == "groom.ply"
    page.units.setCurrentIndex(page.units.findData("mm"))
    page.up.setCurrentIndex(page.up.findData("z"))
    page.all_strands.setChecked(False)
    page.strand_count.setValue(20)
    page.export()
    qtbot.waitUntil(lambda: page.worker is None, timeout=20000)
    out = project.root / "exports" / "groom.ply"
    assert page.last_written == out and out.is_file()
    back = load_groom(out)  # reads the units/up tag the exporter wrote, back to metres, Y up
    assert back.num_strands == 20
    dist = np.abs(back.strands[:, None, 0] - strands[None, :, 0]).sum(-1).min(1)
    assert dist.max() < 1e-5  # every exported root is one of ours
    opened = []
    monkeypatch.setattr(QtGui.QDesktopServices, "openUrl",
                        lambda url: opened.append(url.toLocalFile()) or True)
    assert page.open_folder()
    assert opened == [str(out.parent)]


def test_export_without_groom_says_so(qtbot, window, project):
    window.open_project(project.root)
    page = window.export
    assert not page.export_button.isEnabled()
    assert ("No reconstructed groom" in page.banner.text()
            or "not available yet" in page.banner.text())


def test_main_starts_and_quits(project, tmp_path):
    """``strandcap-studio PROJECT`` opens the window on the project (own process, quits by
    itself; settings go to a temporary config folder)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"), HOME=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", "import sys; from app.main import main; "
                           "sys.exit(main(sys.argv[1:]))", str(project.root), "--quit-after", "0.5"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"Strandcap Studio — {project.root.name}" in proc.stdout
    assert str(project.root) in (tmp_path / "config" / "Strandcap" / "Strandcap Studio.conf").read_text()


def test_entry_point_declared():
    import tomllib
    from pathlib import Path

    from app.main import main
    data = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert data["project"]["gui-scripts"]["strandcap-studio"] == "app.main:main"
    assert callable(main)


def test_review_runs_preprocessing_through_reconstruct(qtbot, settings, project):
    from app.mainwindow import MainWindow
    from app.state import AppState

    state = AppState(settings, stages=toy_stages.factory(
        lambda: toy_stages.preprocess_stages() + toy_stages.run_stages()))
    w = MainWindow(state)
    qtbot.addWidget(w)
    w.open_project(project.root)
    assert w.review.mode == "source" and w.review.run_button.isEnabled()
    assert w.review.preprocess_target() == "orientation"
    with qtbot.waitSignal(w.reconstruct.runFinished, timeout=20000) as blocker:
        w.review.run_button.click()
    assert blocker.args == ["succeeded"]
    assert w.stack.currentWidget() is w.reconstruct
    assert w.reconstruct.ran == ["keyframes", "landmarks", "masks", "orientation"]
    # the run's end refreshes the Review page, which now shows the keyframes
    assert w.review.mode == "keyframes" and w.review.strip.count() == 4
    assert not w.review.run_button.isEnabled()
