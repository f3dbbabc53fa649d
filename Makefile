# The two commands of the README: `make demo` and `make test`. Each creates .venv with the
# Python found as $(PYTHON) (3.11 or newer) and installs the project into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "newsletter needs Python 3.11 or newer: run make PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	rm -rf demo
	$(BIN)/newsletter init demo --publication "Demo Nieuws" --from nieuws@example.nl --site-url https://nieuws.example.nl --language nl
	cd demo && ../$(BIN)/newsletter subscribers import ../examples/subscribers.csv
	cd demo && ../$(BIN)/newsletter subscribers list
	cd demo && ../$(BIN)/newsletter send ../examples/article.txt
	cd demo && ../$(BIN)/newsletter status
	@echo "The messages are in demo/outbox/ (the built-in capture server: nothing left this machine):"
	@ls demo/outbox/

test: $(VENV)/.installed-test
	$(BIN)/ruff check newsletter
	$(BIN)/mypy
	$(BIN)/python -m pytest

bench: $(VENV)/.installed-test
	$(BIN)/python bench/import_subscribers.py
	$(BIN)/python bench/render.py
	$(BIN)/python bench/send.py
	$(BIN)/python bench/digest.py
	$(BIN)/python bench/cli_start.py
	$(BIN)/python bench/import_graph.py
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/bounces.py
	$(BIN)/python bench/web.py

clean:
	rm -rf $(VENV) demo build *.egg-info
