# The two commands of the README:  `make demo`  and  `make test`.
# Each creates the virtual environment in .venv when it is missing.
# The interpreter the venv is made from: Python 3.11 or 3.12 (every pinned wheel exists for both;
# the optional bpy wheel of the Blender benchmark cases is 3.11 only). Found as python3.11,
# python3.12, python3 or python, 3.11 first; override with `make PYTHON=/path/to/python3.12`.
PYTHON ?= $(shell for p in python3.11 python3.12 python3 python; do \
	  if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info[:2] not in ((3, 11), (3, 12)))' 2>/dev/null; \
	  then echo $$p; break; fi; done)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.strandcap-installed

.PHONY: demo test venv bundle bundle-test

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || test -n "$(PYTHON)" || { echo "strandcap needs Python 3.11 or 3.12 (none found as python3.11, python3.12, python3 or python): install one (python.org, pyenv install 3.12, apt install python3.11) or run make PYTHON=/path/to/python3.12"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade "pip>=23"
	$(PY) -m pip install "torch==2.13.0"
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps "mediapipe==0.10.21"
	$(PY) -m pip install --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/strandcap demo

# Tests run inside a virtual X server when one is available (the vispy view needs a real window).
test: $(STAMP)
	if command -v xvfb-run >/dev/null 2>&1; then xvfb-run -a -s "-screen 0 1280x1024x24" $(PY) -m pytest -q; \
	else $(PY) -m pytest -q; fi

# One-folder desktop bundle (PyInstaller) in dist/strandcap; see docs/packaging.md.
bundle: $(STAMP)
	$(PY) packaging/build.py

# Build, then smoke-test the bundle (it starts xvfb-run itself when no DISPLAY is set).
bundle-test: bundle
	$(PY) packaging/smoke_test.py dist/strandcap
