# Two commands set everything up on a fresh clone: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NOTEBOOKS_STAMP := $(VENV)/.notebooks-installed
# The server `make serve` runs, and its admin key, unless MEMORY_URL / MEMORY_API_KEY are set.
MEMORY_URL ?= http://$(or $(MEMORY_HOST),127.0.0.1):$(or $(MEMORY_PORT),8080)
ADMIN_KEY_FILE := $(or $(MEMORY_DATA_DIR),var)/admin.key

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export LITELLM_LOCAL_MODEL_COST_MAP := True
export ANONYMIZED_TELEMETRY := False

.PHONY: install serve notebooks test lint format bench clean

$(STAMP): pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: the CPU build; anything looser pulls GBs of CUDA wheels.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]' -e ./clients/python
	touch $(STAMP)

install: $(STAMP)

serve: install
	$(BIN)/memory-server serve

$(NOTEBOOKS_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[notebooks]'
	touch $(NOTEBOOKS_STAMP)

# JupyterLab on notebooks/, talking to the `make serve` server. JUPYTER_PATH puts this venv's
# python3 kernel ahead of any the user installed elsewhere; Jupyter refuses root without
# --allow-root (containers). JUPYTER_ARGS adds options, e.g. JUPYTER_ARGS="--no-browser --port 8890".
notebooks: $(NOTEBOOKS_STAMP)
	@key="$${MEMORY_API_KEY:-$${MEMORY_ADMIN_KEY:-$$(cat $(ADMIN_KEY_FILE) 2>/dev/null)}}"; \
	if [ -z "$$key" ]; then \
		echo "No API key: start the server with 'make serve' (it writes $(ADMIN_KEY_FILE))," \
			"or set MEMORY_API_KEY." >&2; \
		exit 1; \
	fi; \
	echo "Notebooks against $(MEMORY_URL)"; \
	MEMORY_URL="$(MEMORY_URL)" MEMORY_API_KEY="$$key" \
		JUPYTER_PATH="$(abspath $(VENV))/share/jupyter" \
		$(BIN)/jupyter lab --notebook-dir=notebooks \
		$$([ "$$(id -u)" = 0 ] && echo --allow-root) $(JUPYTER_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# One pytest worker per core, up to 4 (each loads the model); `pytest -n 0` runs in one process.
# Then the TypeScript client's checks and tests (its own server from this venv), if Node 20+ is here.
test: install lint
	$(BIN)/python -m pytest --numprocesses auto --maxprocesses 4
	@if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
		&& node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then \
		cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error \
			&& npm run --silent lint && npm test; \
	else \
		echo "SKIPPED: TypeScript client tests (clients/typescript): Node.js 20+ and npm not on PATH"; \
	fi

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
