"""PyInstaller entry point of the ``strandcap-studio`` windowed executable (``app.main:main``)."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from app.main import main

    sys.exit(main())
