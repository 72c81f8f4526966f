# speechtao: every target depends on `setup`, which is idempotent (a stamp file per step).
SHELL := /bin/bash
PY := .venv/bin/python
PIP := .venv/bin/pip
STAMP := .venv/.stamp
# Debian packages the data tools drive (TTS engines, audio tools, real speech and text sources).
DEBS := espeak-ng flite festival festvox-kallpc16k festvox-us-slt-hts sox ffmpeg pocketsphinx-testdata \
        wordnet-base bible-kjv bible-kjv-text fortunes python3-doc alsa-utils
PYTEST_ARGS ?=

.PHONY: setup test test-slow finetune-asr clean-venv

setup: $(STAMP)-nemo $(STAMP)-debs

$(STAMP)-venv:
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	touch $@

$(STAMP)-core: $(STAMP)-venv pyproject.toml constraints.txt
	$(PIP) install -q -c constraints.txt -e '.[test]'
	touch $@

$(STAMP)-nemo: $(STAMP)-core
	$(PIP) install -q -c constraints.txt -e '.[test,nemo,tts]'
	touch $@

# Debian packages: installed only when missing and only as root; otherwise say what to install.
$(STAMP)-debs: $(STAMP)-venv
	@missing=$$(for d in $(DEBS); do dpkg -s $$d >/dev/null 2>&1 || echo $$d; done); \
	if [ -z "$$missing" ]; then true; \
	elif [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null; \
	else echo "note: missing Debian packages (install as root): $$missing"; fi
	touch $@

# The TAO flow on the bundled smart-home domain, from the shipped starter: evaluate, fine-tune, prune,
# retrain, export INT8, evaluate with ONNX Runtime; report in results/finetune_asr/report.md.
finetune-asr: setup
	SPEECHTAO_THREADS=1 OMP_NUM_THREADS=1 $(PY) -m speechtao asr flow --spec recipes/asr_flow.yaml

test: setup
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: setup
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

clean-venv:
	rm -rf .venv
