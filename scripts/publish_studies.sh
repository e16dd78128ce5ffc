#!/usr/bin/env bash
# The published studies under results/ and reports/: the four single-axis studies on real
# Fashion-MNIST images (Debian's dataset-fashion-mnist, no download), 5 seeds each, and the
# full factorial of the four axes (36 variants, 3 seeds), on this machine's CPU; then every
# report and the index reports/README.md. On a 2-core CPU: about 85 minutes for the four
# single-axis studies, about 100 minutes for the factorial.
#
#   bash scripts/publish_studies.sh --device cpu      # CPU-sized studies (the committed ones)
#   RESULTS=results-gpu REPORTS=reports-gpu bash scripts/publish_studies.sh --device cuda
#                                                     # the [gpu] tables: full-size studies, kept
#                                                     # beside the CPU ones, not mixed with them
#   bash scripts/publish_studies.sh --device cpu --workers 2   # any other `ablate run` option
#
# Finished cells are skipped, so an interrupted run continues where it stopped (a killed cell
# from its last checkpoint).
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=${RESULTS:-results}
REPORTS=${REPORTS:-reports}
for study in pooling activation normalization dropout factorial; do
    ablate run "experiments/fashion-mnist/$study.toml" --results "$RESULTS" "$@"
done
ablate report --results "$RESULTS" --out "$REPORTS"
