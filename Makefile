# respop — the two commands of the README:
#   make demo   set up (virtual environment, install) and run the main job on the embedded default
#   make test   set up and run the whole test suite (what .ci/run calls)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.respop-installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "respop needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/respop pmsi check --config territories/demo.toml --out output/demo/pmsi-check
	@echo
	@echo "Done. The report above accounts for every row of the Health Data Hub's synthetic PMSI sample."
	@echo "Private outputs (staged tables, quarantine, report.json): output/demo/pmsi-check"

test: $(STAMP)
	$(BIN)/python -m pytest -n auto

clean:
	rm -rf $(VENV) output .pytest_cache .hypothesis
