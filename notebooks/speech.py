# %% [markdown]
# # Speech: every backbone, free-running, judged on unseen sentences
#
# The primary outcome of the study: does free-running generated speech say the text? Every
# backbone (Transformer, Mamba+Conv hybrid, pure Mamba, Mamba-2) is trained with one shared recipe and
# one budget of steps (`ssmtts.speech.speech_model` / `speech_training`, Phase 1's size), then
# generates every sentence of the **unseen-text set** (`data/text/unseen_pl.txt`: no word 3-gram in
# common with the training text; one voice per sentence, in rotation) greedily, with its own predicted
# durations and with the true ones. The **judge** (`ssmtts.judge`, a CTC recogniser trained on the
# training split's ground-truth audio and codec round trips) transcribes the audio; the error rates
# stand beside the judge's error on the ground truth and on the codec round trip (the ceiling) and on
# null inputs. MCD (DTW-aligned) stands beside its null baselines. During training the judge listens
# every few hundred steps to a fixed subset of the set (the error-vs-training curves).
#
# Finished runs (rows of `results/speech/runs.csv`) are skipped; an unfinished one resumes.
#
# **Run** `make speech` (results in `results/speech/`; finished runs are skipped). **Change** `notebooks/speech.py`, this notebook's source (jupytext pairs the two; `make notebooks` rewrites the `.ipynb`); the models are `backbone_jobs()` in `src/ssmtts/speech.py`.

# %% tags=["parameters"]
# Parameters (papermill overrides these; SSMTTS_PROFILE / SSMTTS_RESULTS let nbval run the smoke profile)
import os
profile = os.environ.get("SSMTTS_PROFILE", "cpu")   # smoke | cpu | paper
out_dir = os.environ.get("SSMTTS_RESULTS", "../results")
codec = os.environ.get("CODEC", "auto")            # auto | encodec | melkmeans
threads = int(os.environ.get("SSMTTS_THREADS", "0"))  # torch CPU threads; 0: torch default
backbones = ["transformer", "hybrid", "mamba", "mamba2"]


# %%
from pathlib import Path
import pandas as pd
from IPython.display import Audio, Markdown, display
from ssmtts.notebook import setup
from ssmtts.judge import PRIMARY_METRIC, committed_card, judge_card, judge_for
from ssmtts import speech, speech_figures as figs
corpus, _ = setup(profile, codec, threads)
judge = judge_for(corpus, profile)
out = Path(out_dir, 'speech')
print('judge:', judge.judge_id)

# %% [markdown]
# ## The judge's card
# Error rates on ground truth, codec round trips and null inputs (95 % bootstrap CIs over utterances); `per` is the primary metric (`ssmtts.judge` says why).

# %%
card = committed_card(judge, corpus, Path(out_dir, 'judge', 'card.csv'))   # `make judge` wrote it
if card is None:
    card = judge_card(judge, corpus, progress=False, limit=4 if profile == 'smoke' else None)
cols = ['split', 'input', 'n', 'cer', 'cer_lo', 'cer_hi', 'per', 'per_lo', 'per_hi']
display(card[cols].round(2))

# %% [markdown]
# ## Train, listen, measure
# Runs already in `runs.csv` are skipped.

# %%
runs = speech.run_speech(speech.backbone_jobs(profile, backbones), corpus, judge, out, profile,
                         progress=profile != 'smoke')
default = {mc.name for _, mc in speech.backbone_jobs(profile, backbones)}
runs = runs[runs.config.isin(default)]
baselines = pd.read_csv(out / 'baselines.csv')
print(len(runs) // 2, 'models; recipe:', speech.speech_model('hybrid', profile).decoder_tag or 'prev_codes')

# %% [markdown]
# ## Unseen sentences, predicted durations (the whole TTS path), beside the baselines

# %%
table = figs.speech_table(runs, baselines, 'predicted')
table.to_markdown(out / f'speech_{profile}.md', index=False)
display(table)

# %% [markdown]
# ## The same with the true durations (the decoder alone)

# %%
display(figs.speech_table(runs, baselines, 'true'))

# %% [markdown]
# ## Judge error while training (the listening subset; dashed: ground truth, dotted: codec round trip)

# %%
curve = pd.read_csv(out / 'curve.csv')
curve = curve[curve.config.isin(default)]
fig = figs.error_curves(curve, baselines)
fig.savefig(out / f'error_curves_{profile}.png', dpi=110, bbox_inches='tight')

# %% [markdown]
# ## Listen: generated unseen sentences and what the judge heard

# %%
sentences = pd.read_csv(out / 'sentences.csv')
sentences = sentences[sentences.config.isin(default)]
examples = figs.heard_examples(sentences.assign(model=sentences.config), out / 'wavs')
for _, r in examples.iterrows():
    display(Markdown(f'**{r.model}** {r.uid}: _{r.text}_  \njudge heard: `{r.heard}` (PER {r["PER %"]} %)'))
    display(Audio(r.wav))

# %% [markdown]
# ## The model `python -m ssmtts.speak` uses
# The best backbone by judge error (predicted durations).

# %%
display(speech.publish_speaker(out, corpus, profile, backbones))
