# Two commands do all the set-up on a fresh machine (each installs what it needs first):
#   make train   train and evaluate the default preset on FSDD (official split) -> runs/default/
#   make test    lint, type-check and run the whole test suite
# FSDD is read from $FSDD_ROOT, else ../shared/data/fsdd when present, else downloaded to the cache.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch, from PyTorch's own CPU wheel index: a bare "torch" from PyPI pulls a
# multi-GB CUDA build on Linux. For a CUDA machine: make install TORCH=torch TORCH_INDEX=
TORCH       ?= torch==2.13.0+cpu
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

ifeq ($(FSDD_ROOT),)
ifneq ($(wildcard ../shared/data/fsdd/recordings),)
export FSDD_ROOT := $(abspath ../shared/data/fsdd)
endif
endif

.PHONY: install browser voices train test pretrained
install: $(VENV)/.installed

# Debian's speech synthesisers: filler words for --filler-voices (flite, festival) and the non-digit benchmark's
# held-out voices (espeak-ng). Best effort: without them those tests skip.
voices:
	@(command -v flite && command -v text2wave && command -v espeak-ng) >/dev/null \
		|| (apt-get update -qq && apt-get install -y -qq flite festival festvox-kallpc16k espeak-ng >/dev/null) \
		|| echo "note: could not install flite/festival/espeak-ng; the synthesised-word tests will be skipped"

# Debian's Chromium for the real-browser tests of the web pages, and npm, which fetches onnxruntime-web for
# export --web (best effort: without them those tests skip).
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
		|| echo "note: could not install chromium; the browser tests will be skipped"
	@command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq npm >/dev/null) \
		|| echo "note: could not install npm; the in-browser page's tests will be skipped"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)" $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install -q -e ".[train,test,web,onnx,peer]"
	touch $@

train: install
	$(BIN)/spoken-digits train --out runs/default

# The pretrained model inside the package (src/spoken_digits/pretrained/digits.onnx + digits.json):
# the default recipe on every FSDD clip, exported with its card (about 4 minutes on 2 cores).
pretrained: install
	$(BIN)/spoken-digits train --split all --out runs/pretrained
	$(BIN)/spoken-digits export runs/pretrained/model.pt --package

test: install browser voices
	$(BIN)/ruff check src tests fuzz benchmarks docs/tables.py
	$(BIN)/mypy --ignore-missing-imports src/spoken_digits
	$(BIN)/python -m pytest -q
