# respop — the two commands of the README:
#   make demo   set up (virtual environment, install) and run the main job on the embedded default,
#               then serve the board of the demo territory (BOARD=no: stop before the board)
#   make test   set up and run the whole test suite (what .ci/run calls)
# and one for maintainers:
#   make validity  issue 18's acceptance benchmark (benchmarks/validity.py: demo and peripheral worlds,
#               seeds 1-5, respop as committed at HEAD), then the generated tables of docs/ rewritten
#               and stamped with the commit and seeds (SEEDS=1,2 SHAPES=demo: fewer worlds)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.respop-installed

.PHONY: demo test install clean validity

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "respop needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/respop synth --profile demo --seed 1 --out output/demo/data --report
	$(BIN)/respop pmsi check --config territories/demo.toml --out output/demo/pmsi-check
	$(BIN)/respop pmsi check respop/data/snds/synthetic
	$(BIN)/respop territories compare territories/demo.toml
	$(BIN)/respop run territories/demo.toml
	$(BIN)/respop cases validate territories/demo.toml
	-$(BIN)/respop strata validate territories/demo.toml
	$(BIN)/respop report territories/demo.toml --out output/demo/dossier-reunion.html
	@echo
	@echo "Done. The demo world (300,000 inhabitants, 2019-2023) is in output/demo/data;"
	@echo "the first report accounts for every row of its SNDS tables, the second for every row of"
	@echo "the Health Data Hub's own synthetic sample. Private outputs: output/demo/pmsi-check"
	@echo "respop run: territories (output/demo/run/territories, map.png), cases and indicators"
	@echo "(output/demo/run/cases), risk strata (output/demo/run/strata), all private; their"
	@echo "aggregated, small-cell-suppressed results in the store output/demo/respop.sqlite."
	@echo "(strata validate reports its checks; a failed check is shown, not hidden: see docs/strata.md)"
	@echo "Meeting dossier: output/demo/dossier-reunion.html"
ifneq ($(BOARD),no)
	@echo "The board of the demo territory follows (Ctrl+C stops it; make demo BOARD=no skips it):"
	$(BIN)/respop dashboard territories/demo.toml
endif

test: $(STAMP)
	$(BIN)/python -m pytest -n auto --dist loadscope --durations=30

SEEDS  ?= 1,2,3,4,5
SHAPES ?= demo,peripheral

validity: $(STAMP)
	$(BIN)/python benchmarks/validity.py --seeds $(SEEDS) --shapes $(SHAPES) --write-docs

clean:
	rm -rf $(VENV) output .pytest_cache .hypothesis
