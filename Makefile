# Everything bootstraps itself: `make phase1` or `make test` on a fresh clone creates .venv,
# installs the pinned packages, builds the corpus, then runs.
SHELL := /bin/bash
PY      := .venv/bin/python
STAMP   := .venv/.installed
PROFILE ?= cpu
CODEC   ?= auto
PAPERMILL := $(PY) -m papermill --cwd notebooks -k python3
# glibc malloc tuning: big tensors are reused instead of returned to the OS each step
export MALLOC_MMAP_THRESHOLD_=33554432
export MALLOC_TRIM_THRESHOLD_=4294967296
export MALLOC_TOP_PAD_=1073741824
export CODEC

.PHONY: venv data judge ablation speech phase1 phase2 phase3 phase4 phase5 phases samples report all bench timing test notebooks lab

venv: $(STAMP)
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
	# GPU machines: mamba-ssm's fused kernels (needs a CUDA torch and nvcc); optional, never fatal
	@if command -v nvidia-smi >/dev/null 2>&1 && $(PY) -c "import torch,sys; sys.exit(not torch.cuda.is_available())"; then \
		echo "CUDA found: installing the cuda extra (mamba-ssm, causal-conv1d)"; \
		$(PY) -m pip install -q --no-build-isolation -e '.[cuda]' || \
		echo "warning: mamba-ssm did not install; on CUDA the Mamba layers use the PyTorch parallel scan"; \
	fi
	# rfc3987-syntax (via jupyter-events) costs ~3 s at every nbformat import
	$(PY) -m pip uninstall -q -y rfc3987-syntax || true
	touch $(STAMP)

data: $(STAMP)
	$(PY) -m ssmtts.corpus --codec $(CODEC)

notebooks: $(STAMP)
	$(PY) notebooks/make_notebooks.py

# smoke runs go to the git-ignored results/smoke/ so they never mix with committed results
RESULTS ?= $(if $(filter smoke,$(PROFILE)),results/smoke,results)

THREADS ?= 0
NB_phase1 := phase1_transformer_vs_hybrid
NB_phase2 := phase2_pure_vs_hybrid
NB_phase3 := phase3_layers_hidden_expand
NB_phase4 := phase4_stateful_chunks
NB_phase5 := phase5_embedding_width
NB_ablation := decoder_ablation
NB_speech := speech

# `make phaseN`: runs the phase notebook with papermill; the executed copy lands beside its CSVs
phase1 phase2 phase3 phase4 phase5: data
	mkdir -p $(RESULTS)/$@
	SSMTTS_THREADS=$(THREADS) $(PAPERMILL) notebooks/$(NB_$@).ipynb $(RESULTS)/$@/$(NB_$@)_$(PROFILE).ipynb \
		-p profile $(PROFILE) -p out_dir ../$(RESULTS) -p threads $(THREADS)

phases: phase1 phase2 phase3 phase4 phase5

# the judge (a CTC recogniser of the corpus's own audio, cached under data/build/judge/) and its card
judge: data
	$(PY) -m ssmtts.judge --profile $(PROFILE) --out $(RESULTS)/judge --threads $(THREADS)

# speech runs: the decoder ablation, then every backbone with the chosen recipe, judged on unseen text
ablation speech: judge
	mkdir -p $(RESULTS)/speech
	SSMTTS_THREADS=$(THREADS) $(PAPERMILL) notebooks/$(NB_$@).ipynb $(RESULTS)/speech/$(NB_$@)_$(PROFILE).ipynb \
		-p profile $(PROFILE) -p out_dir ../$(RESULTS) -p threads $(THREADS)

# speech from the Phase 1 models and the best Phase 3 model: WAVs + objective measures in $(RESULTS)/samples/
samples: data
	$(PY) -m ssmtts.samples --results $(RESULTS) --profile $(PROFILE) --threads $(THREADS)

# the report reads only results/**.csv; HTML with figures embedded (works offline)
report: $(STAMP)
	mkdir -p $(RESULTS)/report
	$(PAPERMILL) notebooks/report.ipynb $(RESULTS)/report/report_$(PROFILE).ipynb \
		-p profile $(PROFILE) -p results_dir ../$(RESULTS)
	$(PY) -m jupyter nbconvert --to html --log-level WARN $(RESULTS)/report/report_$(PROFILE).ipynb

# the speech runs, every phase, the samples, then the report, on $(PROFILE); prints the wall-clock time it took
all: data
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory ablation speech phases samples report PROFILE=$(PROFILE) THREADS=$(THREADS) && \
	echo "make all ($(PROFILE)) took $$(( ($$(date +%s) - start) / 60 )) min $$(( ($$(date +%s) - start) % 60 )) s"

# the timing pass: a phase's configurations timed side by side in fresh processes (cost claims come from it)
PHASE ?= phase1
timing: data
	$(PY) -m ssmtts.timing --phase $(PHASE) --profile $(PROFILE) --out $(RESULTS)

BENCH_BASELINE ?= 54469e3
bench: $(STAMP)
	$(PY) benchmarks/scan_bench.py --out results/bench
	$(PY) benchmarks/step_bench.py --out results/bench
	$(PY) benchmarks/step_bench.py --phase phase1 --label hybrid --backends cpu,cpu+glibc-malloc,pytorch,pytorch+glibc-malloc --out results/bench
	# training speed vs the commit before the speed work, and paper-size generation (~30 min)
	$(PY) benchmarks/train_bench.py --baseline $(BENCH_BASELINE) --out results/bench
	$(PY) benchmarks/profile_step.py --shape phase1 --out results/bench
	$(PY) benchmarks/profile_step.py --shape phase3 --out results/bench

test: data
	$(PY) -m pytest -q tests
	SSMTTS_PROFILE=smoke SSMTTS_RESULTS=$$(mktemp -d) $(PY) -m pytest -q --nbval-lax --nbval-current-env --nbval-cell-timeout=600 notebooks

lab: $(STAMP)
	.venv/bin/jupyter lab --notebook-dir=notebooks
