# %% [markdown]
# # Decoder ablation: what the audio decoder reads
#
# What should the audio decoder read? Teacher-forced token accuracy rewards copying the previous
# frame, and a decoder that reads the previous frame's codes freezes into one repeated frame when it
# runs free. The Phase 1 hybrid is trained with each recipe (same size, budget and seed) and judged on
# the unseen-text set:
#
# * `prev_codes`: the previous frame's 8 codes (autoregressive, the study's original decoder);
# * `prev_codes_dropout`: the same through Tacotron-style prenet dropout (p = 0.5), on at inference too;
# * `none`: no codes (non-autoregressive given the durations), causal: it can stream frame by frame;
# * `none_bidirectional`: no codes, and the hybrid as the seeds described it (forward Mamba +
#   convolutions that look both ways); leak-free because it reads no targets, but it cannot stream.
#
# The default recipe of `ModelConfig` (and so of every speech run) is the one with the lowest judge
# error on predicted durations here.
#
# **Run** `make ablation` (results in `results/speech/`). **Change** `notebooks/decoder_ablation.py`, this notebook's source (jupytext pairs the two; `make notebooks` rewrites the `.ipynb`); the recipes are `DECODER_RECIPES` in `src/ssmtts/speech.py`.

# %% tags=["parameters"]
# Parameters (papermill overrides these; SSMTTS_PROFILE / SSMTTS_RESULTS let nbval run the smoke profile)
import os
profile = os.environ.get("SSMTTS_PROFILE", "cpu")   # smoke | cpu | paper
out_dir = os.environ.get("SSMTTS_RESULTS", "../results")
codec = os.environ.get("CODEC", "auto")            # auto | encodec | melkmeans
threads = int(os.environ.get("SSMTTS_THREADS", "0"))  # torch CPU threads; 0: torch default


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
# ## Train, listen, measure (one run per recipe)

# %%
jobs = speech.ablation_jobs(profile)
runs = speech.run_speech(jobs, corpus, judge, out, profile, progress=profile != 'smoke')
runs = runs[runs.config.isin({mc.name for _, mc in jobs})]
baselines = pd.read_csv(out / 'baselines.csv')

# %% [markdown]
# ## Judge error per recipe (bars: 95 % CIs over sentences; lines: baselines)

# %%
fig = figs.ablation_plot(runs, baselines)
fig.savefig(out / f'decoder_ablation_{profile}.png', dpi=110, bbox_inches='tight')
display(figs.speech_table(runs, baselines))

# %% [markdown]
# ## The choice

# %%
best, ranking = figs.choose_recipe(runs)
ranking.to_csv(out / f'decoder_ablation_{profile}.csv', index=False)
display(ranking.round(2))
current = speech.speech_model('hybrid', profile)
current_recipe = figs.recipe_of({f'model_{k}': v for k, v in current.to_dict().items()})
display(Markdown(f'Lowest judge error with predicted durations: **{best}**; '
                 f'the default recipe in `ModelConfig` is **{current_recipe}**.'))

# %% [markdown]
# ## Listen: one sentence per recipe

# %%
sentences = pd.read_csv(out / 'sentences.csv')
sentences = sentences[sentences.config.isin(set(runs.config))]
for _, r in figs.heard_examples(sentences.assign(model=sentences.config), out / 'wavs', 1).iterrows():
    display(Markdown(f'**{r.model}** {r.uid}: _{r.text}_  \njudge heard: `{r.heard}` (PER {r["PER %"]} %)'))
    display(Audio(r.wav))
