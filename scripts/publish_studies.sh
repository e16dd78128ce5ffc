#!/usr/bin/env bash
# The published studies under results/ and reports/: the four single-axis studies on real
# Fashion-MNIST images (Debian's dataset-fashion-mnist, no download), 5 seeds each, on this
# machine's CPU; then every report and the index reports/README.md.
#
#   bash scripts/publish_studies.sh            # CPU-sized studies (the committed ones)
#   bash scripts/publish_studies.sh --device cuda   # the [gpu] tables: full-size studies
#
# Finished cells are skipped, so an interrupted run continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
for study in pooling activation normalization dropout; do
    ablate run "experiments/fashion-mnist/$study.toml" "$@"
done
ablate report
