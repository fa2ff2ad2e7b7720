"""PyInstaller entry point of the ``strandcap`` console executable (same as ``engine.cli:main``)."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # a frozen child process must not re-run the CLI (Windows)
    from engine.cli import main

    sys.exit(main())
