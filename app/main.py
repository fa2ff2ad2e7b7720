"""Entry point of the desktop app: ``strandcap-studio [PROJECT]``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Start Strandcap Studio; opens ``PROJECT`` (a project folder) when given."""
    parser = argparse.ArgumentParser(prog="strandcap-studio",
                                     description="Strandcap desktop app")
    parser.add_argument("project", nargs="?", help="project folder to open")
    parser.add_argument("--quit-after", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)

    from PySide6 import QtWidgets

    import vispy
    vispy.use("pyside6")  # vispy's canvases must use the same Qt binding as the app

    from app.mainwindow import MainWindow
    from app.settings import APPLICATION, ORGANIZATION, AppSettings
    from app.state import AppState

    qt_app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    qt_app.setOrganizationName(ORGANIZATION)
    qt_app.setApplicationName(APPLICATION)
    state = AppState(AppSettings())
    window = MainWindow(state)
    if args.project:
        window.open_project(args.project)
    window.show()
    if args.quit_after is not None:  # smoke test: print the title, then quit
        from PySide6 import QtCore

        QtCore.QTimer.singleShot(int(args.quit_after * 1000), window.close)
        window.destroyed.connect(qt_app.quit)
        code = int(qt_app.exec())
        print(window.windowTitle() if not window.isVisible() else "still visible")
        return code
    return int(qt_app.exec())


if __name__ == "__main__":
    sys.exit(main())
