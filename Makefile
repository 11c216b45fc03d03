# Everything bootstraps itself: `make phase1` or `make test` on a fresh clone creates .venv,
# installs the pinned packages, builds the corpus, then runs.
SHELL := /bin/bash
PY      := .venv/bin/python
STAMP   := .venv/.installed
PROFILE ?= cpu
CODEC   ?= auto
# progress bars off inside executed notebooks (their rates would make every re-execution differ)
PAPERMILL := TQDM_DISABLE=1 $(PY) -m papermill --cwd notebooks -k python3
# glibc malloc tuning: big tensors are reused instead of returned to the OS each step
export MALLOC_MMAP_THRESHOLD_=33554432
export MALLOC_TRIM_THRESHOLD_=4294967296
export MALLOC_TOP_PAD_=1073741824
export CODEC

.PHONY: help gpu-check venv data judge ablation speech phase1 phase2 phase3 phase4 phase5 phases samples report all bench timing test notebooks lab

# `make` alone: the targets (their `## ` comments) and the variables
help:
	@echo "usage: make <target> [VARIABLE=value ...]   (every target bootstraps .venv and data/build itself)"
	@echo
	@grep -E '^[a-z0-9 -]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  %-34s %s\n", $$1, $$2}'
	@echo
	@echo "variables:"
	@echo "  PROFILE=smoke|cpu|paper      run size (default cpu: a 2-core laptop; smoke: seconds; paper: reported sizes, GPU)"
	@echo "  THREADS=N                    torch CPU threads (0: torch's default)"
	@echo "  CODEC=auto|encodec|melkmeans codec of the corpus (auto: EnCodec if its weights load, else the offline codec)"
	@echo "  CORPUS=dir                   your LJSpeech-style corpus (metadata.csv + wavs/) instead of the shipped one"
	@echo "  EXECUTOR=serial|ray          ray: a phase's runs as Ray tasks, side by side (RAY_ADDRESS: a running cluster)"
	@echo "  RESULTS=dir                  where CSVs go (default results/, smoke: results/smoke/; CORPUS: results/user/)"
	@echo "  PHASE=phaseN ROUNDS=n        for make timing (default phase1, 10 rounds)"
	@echo "  TORCH_INDEX=url              e.g. https://download.pytorch.org/whl/cpu for the CPU wheel of torch"
	@echo "  BENCH_BASELINE=commit        make bench: the commit the training-speed benchmark compares against"
	@echo "  (phase grids: src/ssmtts/phases.py; claims and pre-registered outcomes: data/claims.csv)"

venv: $(STAMP)  ## create .venv with the pinned packages
$(STAMP): requirements.txt pyproject.toml
	@command -v python3 >/dev/null || { echo "python3 (>=3.10) is required"; exit 1; }
	@command -v g++ >/dev/null || echo "note: no g++ found; the CPU scan kernel falls back to a slower parallel scan (apt-get install g++)"
	test -d .venv || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	# TORCH_INDEX=https://download.pytorch.org/whl/cpu: the CPU wheel of torch from PyTorch's index (a stock
	# Linux pip resolves torch==2.13.0 to the CUDA build, several GB of CUDA libraries)
	$(if $(TORCH_INDEX),$(PY) -m pip install -q torch==2.13.0 --index-url $(TORCH_INDEX),)
	$(PY) -m pip install -q -r requirements.txt
	# encodec 0.1.1 declares torchaudio, whose wheels force another torch build: install it alone
	$(PY) -m pip install -q --no-deps encodec==0.1.1
	$(PY) -m pip install -q --no-deps -e .
	# the ray extra: EXECUTOR=ray runs a phase's runs as Ray tasks (optional for users, installed here for the tests)
	$(PY) -m pip install -q "ray==$(RAY_VERSION)"
	# GPU machines: mamba-ssm's fused kernels (needs a CUDA torch and nvcc); optional, never fatal
	@if command -v nvidia-smi >/dev/null 2>&1 && $(PY) -c "import torch,sys; sys.exit(not torch.cuda.is_available())"; then \
		echo "CUDA found: installing the cuda extra (mamba-ssm, causal-conv1d)"; \
		$(PY) -m pip install -q --no-build-isolation -e '.[cuda]' || \
		echo "warning: mamba-ssm did not install; on CUDA the Mamba layers use the PyTorch parallel scan"; \
	fi
	# rfc3987-syntax (via jupyter-events) costs ~3 s at every nbformat import
	$(PY) -m pip uninstall -q -y rfc3987-syntax || true
	touch $(STAMP)

RAY_VERSION := 2.60.0
# EXECUTOR=ray (any phase target): every run a Ray task, side by side on this machine's cores or on the
# cluster at RAY_ADDRESS (checkpoints on a path every worker sees: SSMTTS_CHECKPOINTS); rows name the executor
EXECUTOR ?= serial
export EXECUTOR

# CORPUS=<folder>: a user's LJSpeech-style corpus (metadata.csv + wavs/) for every target, built in data/build-user/
CORPUS ?=
export CORPUS
data: $(STAMP)  ## build the corpus (text -> speech -> codec tokens + durations) into data/build/
	$(PY) -m ssmtts.corpus --codec $(CODEC)

notebooks: $(STAMP)  ## rewrite notebooks/*.ipynb from their jupytext sources notebooks/*.py
	$(PY) -m ssmtts.notebook

# smoke runs go to the git-ignored results/smoke/ so they never mix with committed results
# a user's corpus (CORPUS) writes to results/user/<profile>/, never beside the shipped corpus's results
RESULTS ?= $(if $(CORPUS),results/user/$(PROFILE),$(if $(filter smoke,$(PROFILE)),results/smoke,results))

THREADS ?= 0
NB_phase1 := phase1_transformer_vs_hybrid
NB_phase2 := phase2_pure_vs_hybrid
NB_phase3 := phase3_layers_hidden_expand
NB_phase4 := phase4_stateful_chunks
NB_phase5 := phase5_embedding_width
NB_ablation := decoder_ablation
NB_speech := speech

# `make phaseN`: runs the phase notebook with papermill; the executed copy lands beside its CSVs
phase1 phase2 phase3 phase4 phase5: data  ## run one phase's notebook (skips finished runs, resumes the rest)
	mkdir -p $(RESULTS)/$@
	SSMTTS_THREADS=$(THREADS) $(PAPERMILL) notebooks/$(NB_$@).ipynb $(RESULTS)/$@/$(NB_$@)_$(PROFILE).ipynb \
		-p profile $(PROFILE) -p out_dir ../$(RESULTS) -p threads $(THREADS)
	$(PY) -m ssmtts.files $(RESULTS)/$@/$(NB_$@)_$(PROFILE).ipynb

phases: phase1 phase2 phase3 phase4 phase5  ## every phase

# the judge (a CTC recogniser of the corpus's own audio, cached under data/build/judge/) and its card
judge: data  ## the judge (a CTC recogniser of the corpus's audio) and its card
	$(PY) -m ssmtts.judge --profile $(PROFILE) --out $(RESULTS)/judge --threads $(THREADS)

# speech runs: the decoder ablation, then every backbone with the chosen recipe, judged on unseen text
ablation speech: judge  ## speech runs: the decoder ablation / every backbone, judged on unseen text
	mkdir -p $(RESULTS)/speech
	SSMTTS_THREADS=$(THREADS) $(PAPERMILL) notebooks/$(NB_$@).ipynb $(RESULTS)/speech/$(NB_$@)_$(PROFILE).ipynb \
		-p profile $(PROFILE) -p out_dir ../$(RESULTS) -p threads $(THREADS)
	$(PY) -m ssmtts.files $(RESULTS)/speech/$(NB_$@)_$(PROFILE).ipynb

# speech from the Phase 1 models and the best Phase 3 model: WAVs + objective measures in $(RESULTS)/samples/
samples: data  ## WAVs and objective measures of the Phase 1 and best Phase 3 models
	$(PY) -m ssmtts.samples --results $(RESULTS) --profile $(PROFILE) --threads $(THREADS)

# the report reads only results/**.csv; HTML with figures embedded (works offline)
report: $(STAMP)  ## the report notebook + HTML from results/**.csv (trains nothing)
	mkdir -p $(RESULTS)/report
	$(PAPERMILL) notebooks/report.ipynb $(RESULTS)/report/report_$(PROFILE).ipynb \
		-p profile $(PROFILE) -p results_dir ../$(RESULTS)
	$(PY) -m ssmtts.files $(RESULTS)/report/report_$(PROFILE).ipynb
	$(PY) -m jupyter nbconvert --to html --log-level WARN $(RESULTS)/report/report_$(PROFILE).ipynb

# the speech runs, every phase, the samples, then the report, on $(PROFILE); prints the wall-clock time it took
all: data  ## speech runs, every phase, samples, report
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory ablation speech phases samples report PROFILE=$(PROFILE) THREADS=$(THREADS) && \
	echo "make all ($(PROFILE)) took $$(( ($$(date +%s) - start) / 60 )) min $$(( ($$(date +%s) - start) % 60 )) s"

# the timing pass: a phase's configurations timed side by side in fresh processes (cost claims come from it)
PHASE ?= phase1
ROUNDS ?= 10
timing: data  ## the timing pass of PHASE (costs side by side, fresh processes; ROUNDS interleaved rounds)
	$(PY) -m ssmtts.timing --phase $(PHASE) --profile $(PROFILE) --rounds $(ROUNDS) --out $(RESULTS)

BENCH_BASELINE ?= 54469e3
bench: $(STAMP)  ## kernel, training-step and generation benchmarks into results/bench/ (slow)
	$(PY) benchmarks/scan_bench.py --out results/bench
	$(PY) benchmarks/step_bench.py --out results/bench
	$(PY) benchmarks/step_bench.py --phase phase1 --label hybrid --backends cpu,cpu+glibc-malloc,pytorch,pytorch+glibc-malloc --out results/bench
	# training speed vs the commit before the speed work, and paper-size generation (~30 min)
	$(PY) benchmarks/train_bench.py --baseline $(BENCH_BASELINE) --out results/bench
	$(PY) benchmarks/profile_step.py --shape phase1 --out results/bench
	$(PY) benchmarks/profile_step.py --shape phase3 --out results/bench

# the tests run on the shipped corpus whatever CORPUS says (they check its properties)
test: $(STAMP)  ## unit tests + the notebooks under nbval on the smoke profile
	CORPUS= $(PY) -m ssmtts.corpus --codec $(CODEC)
	CORPUS= EXECUTOR=serial $(PY) -m pytest -q tests
	CORPUS= EXECUTOR=serial SSMTTS_PROFILE=smoke SSMTTS_RESULTS=$$(mktemp -d) $(PY) -m pytest -q --nbval-lax --nbval-current-env --nbval-cell-timeout=600 notebooks

# the CUDA path on real hardware (results/gpu/); without CUDA: one line, exit 0
gpu-check: data  ## check the CUDA path (scan, generation, paper-size training steps) on a GPU
	$(PY) -m ssmtts.gpu_check --out results/gpu

lab: $(STAMP)  ## JupyterLab at the repository root (notebooks/, results/ browsable)
	.venv/bin/jupyter lab --notebook-dir=. $$( [ "$$(id -u)" = 0 ] && echo --allow-root )
