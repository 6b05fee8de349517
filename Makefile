# Two commands do everything on a fresh Debian machine with Python 3.11:
#   make serve   install what is needed, then run the agent on http://localhost:8080
#   make test    install what is needed (Debian packages too), then run the whole suite

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU build of torch; an unpinned install would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
HOST ?= 0.0.0.0
PORT ?= 8080
APT_PACKAGES := chromium espeak-ng sox fonts-lohit-telu coturn
PYTEST_ARGS ?=

.PHONY: serve turn test test-fast bench lint format clean apt-packages demo-model asr-model \
  endpoint-model

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The stamp is rebuilt whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q -e ".[test]"
	touch $@

apt-packages:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

serve: $(VENV)/.installed
	$(BIN)/telugu-s2s serve --host $(HOST) --port $(PORT)

# coturn next to the agent; the shared secret comes from TURN_SECRET or TURN_SECRET_FILE.
TURN_ARGS ?=
turn: $(VENV)/.installed apt-packages
	$(BIN)/telugu-s2s turn $(TURN_ARGS)

test: $(VENV)/.installed-test apt-packages
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

bench: $(VENV)/.installed-test apt-packages
	$(BIN)/python -m benchmarks.latency --spawn

# The demo model from scratch on 2 CPU cores: synthetic Telugu corpus, the recognizer on it
# (`asr-model`: the text streams learn from its hearing, and `train s2s` refuses one that
# hears the corpus at over 30 % CER), codec, S2S transformer with its text streams, then a
# float16 export, its evaluation figures and its model card.
# The S2S model is trained in four stages (docs/benchmarks.md): audio and text together
# (S2S_STEPS), text before audio on text-only pairs (600 steps, a warm restart stopped at step
# 700 of 1,000, the copy path for 300 steps, the piece-before signatures for 1,000), then audio
# and text again from there with text-only pairs beside every batch (JOINT_STEPS). The S2S
# stages took about 6 hours on 2 cores, measured stage by stage; the codec comes on top, and
# half an hour for the recognizer. Every stage resumes where it stopped
# when run again.
DEMO_WORK ?= build/demo
DEMO_OUT ?= models/checkpoints/demo
CODEC_STEPS ?= 5000
S2S_STEPS ?= 1400
S2S_TEXT_WEIGHT ?= 4
JOINT_STEPS ?= 1200
MONOLOGUE = $(BIN)/telugu-s2s train monologue --data $(DEMO_WORK)/data/manifest.jsonl \
  --lr 3e-4 --batch-size 16 --device $(DEVICE) --threads $(TRAIN_THREADS) --save-every 50 --resume --no-progress
DEVICE ?= auto
# Within 2 CPU hours the codec gets reconstruction losses only; on a GPU, add the GAN phase,
# e.g. CODEC_GAN="--adversarial-start 20000" CODEC_STEPS=40000.
CODEC_GAN ?= --no-adversarial
# The inverse-STFT decoder: at the recipe's 5,000 steps PESQ-WB 1.68 / STOI 0.82 against the
# transposed convs' 1.10 / 0.67 on the same files (docs/benchmarks.md, 2026-12-03).
CODEC_DECODER ?= istft
# torch CPU threads of the codec and S2S stages (0: torch's choice).
TRAIN_THREADS ?= 0

demo-model: $(VENV)/.installed-test apt-packages asr-model endpoint-model
	$(BIN)/telugu-s2s train codec --data $(DEMO_WORK)/data/manifest.jsonl --preset demo \
	  --out $(DEMO_WORK)/codec --steps $(CODEC_STEPS) --batch-size 8 $(CODEC_GAN) \
	  --decoder $(CODEC_DECODER) --device $(DEVICE) --threads $(TRAIN_THREADS) --resume \
	  --no-progress
	$(BIN)/telugu-s2s train s2s --data $(DEMO_WORK)/data/manifest.jsonl \
	  --codec $(DEMO_WORK)/codec --preset demo --out $(DEMO_WORK)/s2s --steps $(S2S_STEPS) \
	  --batch-size 8 --pairing intent --text-weight $(S2S_TEXT_WEIGHT) --eval-every 200 \
	  --device $(DEVICE) --threads $(TRAIN_THREADS) --save-every 50 --resume --no-progress
	$(BIN)/telugu-s2s models export $(DEMO_WORK)/s2s $(DEMO_WORK)/s2s-audio
	$(MONOLOGUE) --out $(DEMO_WORK)/monologue --init $(DEMO_WORK)/s2s-audio --steps 600 \
	  --eval-every 100
	$(MONOLOGUE) --out $(DEMO_WORK)/monologue --steps 1000 --stop-at 700 --eval-every 100
	$(MONOLOGUE) --out $(DEMO_WORK)/monologue-copy --init $(DEMO_WORK)/monologue --copy-pieces \
	  --steps 300 --eval-every 0
	$(MONOLOGUE) --out $(DEMO_WORK)/monologue-follow --init $(DEMO_WORK)/monologue-copy \
	  --follow-pieces --steps 1000 --eval-every 250
	$(BIN)/telugu-s2s train s2s --data $(DEMO_WORK)/data/manifest.jsonl \
	  --codec $(DEMO_WORK)/codec --preset demo --out $(DEMO_WORK)/s2s-text \
	  --init $(DEMO_WORK)/monologue-follow --text-pairs 8 --steps $(JOINT_STEPS) --lr 3e-4 \
	  --batch-size 8 --pairing intent --text-weight $(S2S_TEXT_WEIGHT) --eval-every 300 \
	  --device $(DEVICE) --threads $(TRAIN_THREADS) --save-every 50 --resume --no-progress
	$(BIN)/telugu-s2s models export $(DEMO_WORK)/s2s-text $(DEMO_OUT)
	$(BIN)/telugu-s2s eval codec --checkpoint $(DEMO_OUT) \
	  --data $(DEMO_WORK)/data/manifest.jsonl --json > $(DEMO_OUT)/eval-codec.json
	$(BIN)/telugu-s2s eval s2s --checkpoint $(DEMO_OUT) \
	  --data $(DEMO_WORK)/data/manifest.jsonl --json > $(DEMO_OUT)/eval-s2s.json
	$(BIN)/telugu-s2s eval eot --checkpoint $(DEMO_OUT) \
	  --data $(DEMO_WORK)/data/manifest.jsonl --json > $(DEMO_OUT)/eval-eot.json
	$(BIN)/telugu-s2s models card $(DEMO_OUT) --codec-run $(DEMO_WORK)/codec \
	  --s2s-run $(DEMO_WORK)/s2s --s2s-run $(DEMO_WORK)/monologue \
	  --s2s-run $(DEMO_WORK)/monologue-copy --s2s-run $(DEMO_WORK)/monologue-follow \
	  --s2s-run $(DEMO_WORK)/s2s-text --data $(DEMO_WORK)/data/manifest.jsonl

# The shipped streaming recognizer (models/checkpoints/asr) on the demo corpus: CTC training on
# one torch thread (faster than two on a busy 2-core machine) to 1,200 steps, then resumed to
# 1,800 and to 2,400 (each resume stretches the cosine schedule: a warm restart), float16
# export, test-split evaluation. About 40 minutes of training on 2 CPU cores
# (docs/benchmarks.md); each stage resumes where it stopped when run again.
ASR_OUT ?= models/checkpoints/asr
ASR_STAGES ?= 1200 1800 2400

asr-model: $(VENV)/.installed apt-packages
	test -f $(DEMO_WORK)/data/manifest.jsonl || \
	  $(BIN)/telugu-s2s data synth $(DEMO_WORK)/data --seed 0
	for steps in $(ASR_STAGES); do \
	  $(BIN)/telugu-s2s train asr --data $(DEMO_WORK)/data/manifest.jsonl --preset demo \
	    --out $(DEMO_WORK)/asr --steps $$steps --batch-size 16 --lr 2e-3 --threads 1 \
	    --device $(DEVICE) --resume --no-progress || exit 1; \
	done
	$(BIN)/telugu-s2s models export $(DEMO_WORK)/asr $(ASR_OUT)
	$(BIN)/telugu-s2s eval asr --checkpoint $(ASR_OUT) --data $(DEMO_WORK)/data/manifest.jsonl \
	  --threads 1 --json > $(ASR_OUT)/eval-asr.json

# The content end-of-turn head (`serve --eot content`) on the recognizer's outputs: 1,000
# train-split user turns streamed as a call hears them, fitted, measured on the test split's
# (about 10 minutes on one core, docs/benchmarks.md). Fitted again whenever the recognizer is.
ENDPOINT_OUT ?= models/checkpoints/endpoint

endpoint-model: $(VENV)/.installed apt-packages
	$(BIN)/telugu-s2s train endpoint --data $(DEMO_WORK)/data/manifest.jsonl \
	  --recognizer $(ASR_OUT) --out $(ENDPOINT_OUT) --train-turns 1000 --test-turns 300 \
	  --threshold 0.98 --max-silence-ms 1200 > $(DEMO_WORK)/endpoint.log

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
