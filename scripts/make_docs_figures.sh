#!/bin/sh
# Redraw the figures in docs/ from sample_data (needs matplotlib: pip install 'mlfit[plot]').
set -eu
cd "$(dirname "$0")/.."
"${PYTHON:-python}" -m mlfit normal-eq sample_data/houses.csv -y price --drop id \
    --plot docs/diagnostics.png --quiet > /dev/null
"${PYTHON:-python}" -m mlfit gmm sample_data/clusters.csv --k 1-6 --covariance all \
    --plot docs/clusters.png --quiet > /dev/null
