#!/usr/bin/env bash
# The GPU checks of issue 5 in one go, printing short tables. Budget: 450 s in all (BUDGET=...),
# under ~8 minutes on one H100/H200 with start-up; every stage has its own timeout and gets at
# most the time left. On a machine without CUDA it runs a small CPU smoke version of the same
# stages, so the script itself can be tested anywhere.
#
#   scripts/gpu_check.sh            # from the repository root; uses .venv if there is one
#   OUT=/some/dir scripts/gpu_check.sh   # keep the JSON files (default: a temporary folder)
#   STAGES="1 4" scripts/gpu_check.sh    # only these stages (default: 1 2 3 4 6; tests/scripts/test_scripts.py
#                                        # runs the CPU smoke version of 1, 4 and 6 this way)
#
# Stages:
#   1. environment (torch, CUDA, device, Triton for the compiled LRN)
#   2. correctness on the device: LRN vs nn.LocalResponseNorm fwd+bwd (eager, compiled, auto),
#      stored-vs-independent throughput test; 2b. the pytest-benchmark suite's CUDA cases
#   3. scripts/compare_loops.py: ablate vs hand-written vs blog-style loop (baseline alexnet65,
#      bf16, batch 256), LRN vs no-norm (and torch's LRN), stored vs independent clock, and
#      (when Fashion-MNIST is installed) ablate's loop on cached real data vs random tensors
#   4. ablate bench: baseline and LRN, bf16, batch 256 and 1024; then compile=default, batch 256
#   5. executors (issue 8; not in the default STAGES, ~6 minutes on its own: STAGES=5 BUDGET=420):
#      scripts/gpu_packing.py (K = 1, 2, 4, 8 cells on one GPU: images/s in all, wall time), then
#      scripts/measure_workers.py on experiments/factorial.toml --set train.epochs=1 (36 cells, 10000
#      training images each to fit the budget):
#      one worker against --workers-per-device 4
#   6. fused seeds (issue 25): ablate bench --fuse 1,2,4,8,16 of AlexNet-65, bf16 + channels_last,
#      train step at batch 128 and 256: one table of images/s (all members and one member's) per K,
#      and the K that --fuse-seeds auto would take from it
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -z "${VIRTUAL_ENV:-}" ] && [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
status=0
stage() { echo; echo "== $*"; }
BUDGET=${BUDGET:-450}  # seconds for the whole script; a stage gets at most what is left
STAGES=${STAGES:-1 2 3 4 6}
want() { [[ " $STAGES " == *" $1 "* ]]; }
run() {  # run TIMEOUT CMD...: a stage that fails or times out is reported, the script goes on
    local limit=$1; shift
    local left=$((BUDGET - SECONDS))
    if [ "$left" -lt 20 ]; then echo "!! skipped (time budget of ${BUDGET}s spent): $*"; status=1; return; fi
    [ "$limit" -gt "$left" ] && limit=$left
    timeout "$limit" "$@"
    local rc=$?
    if [ $rc -ne 0 ]; then echo "!! exit $rc (124 = timed out after ${limit}s): $*"; status=1; fi
}

if python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    GPU=1
else
    GPU=0
fi

if want 1; then
stage "1. environment"
python - <<'EOF'
import torch
from ablate.runtime.provenance import device_name
from torch.utils._triton import has_triton
dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
print(f"device: {device_name(dev)}; triton available: {has_triton()}")
if dev.type == "cuda":
    print(f"bf16 supported: {torch.cuda.is_bf16_supported()}, memory {torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
else:
    print("no CUDA device: running the CPU smoke version (small sizes; numbers are NOT GPU numbers)")
EOF
fi

if want 2; then
stage "2. correctness on the device"
run 120 python -m pytest -q -p no:cacheprovider tests/models/test_lrn.py tests/train/test_throughput.py
if [ "$GPU" = 1 ]; then
    stage "2b. pytest-benchmark suite on CUDA (forward, forward+backward per variant; the three loops)"
    run 120 python -m pytest -q -p no:cacheprovider tests/benchmarks -k cuda --benchmark-only \
        --benchmark-group-by=group --benchmark-columns=min,median,mean,rounds --benchmark-json "$OUT/benchmarks.json"
fi
fi

if want 3; then
stage "3. loops, LRN ratio, stored vs independent (scripts/compare_loops.py)"
if [ "$GPU" = 1 ]; then
    run 180 python scripts/compare_loops.py --device cuda --batch-size 256 --precision bf16 --steps 100 \
        --rounds 3 --quiet --json "$OUT/compare_loops.json"
    if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || [ -n "${ABLATE_DATA:-}" ]; then
        run 90 python scripts/compare_loops.py --device cuda --batch-size 256 --precision bf16 --steps 100 \
            --rounds 3 --quiet --sections real-data --json "$OUT/compare_real_data.json"
    else
        echo "(real-data comparison skipped: no Fashion-MNIST; apt-get install dataset-fashion-mnist or set ABLATE_DATA)"
    fi
else
    run 300 python scripts/compare_loops.py --device cpu --batch-size 4 --steps 2 --rounds 1 --quiet \
        --json "$OUT/compare_loops.json"
fi
fi

if want 4; then
stage "4. ablate bench"
if [ "$GPU" = 1 ]; then
    run 60 ablate bench relu-overlap-none-drop relu-overlap-lrn-drop -b 256,1024 --precision bf16 --results "$OUT/results"
    # Last, as it may not fit: torch.compile of the whole model (for the compile default decision).
    run 100 ablate bench relu-overlap-none-drop -b 256 --precision bf16 --mode train --compile default --results "$OUT/results"
else
    run 120 ablate bench relu-overlap-none-drop relu-overlap-lrn-drop -b 2 --precision fp32 --warmup 1 --steps 1 --repeats 2 \
        --device cpu --results "$OUT/results"
fi
python -c "from pathlib import Path; from ablate.bench import write_bench_report; print('bench report:', write_bench_report(Path('$OUT/results'), Path('$OUT/reports')))"
fi

if want 5; then
stage "5. executors: cells packed on one GPU; factorial sweep, 1 worker vs 4 per GPU"
if [ "$GPU" = 1 ]; then
    run 200 python scripts/gpu_packing.py --device cuda:0 --packs 1,2,4,8
    run 400 python scripts/measure_workers.py --device cuda --experiment experiments/factorial.toml \
        --set train.epochs=1 --set data.train_size=10000 --workers auto --workers-per-device 4
else
    run 200 python scripts/gpu_packing.py --device cpu --packs 1,2 --train-size 32 --epochs 1 --batch 16
fi
fi

if want 6; then
stage "6. fused seeds: K = 1, 2, 4, 8, 16 seeds of alexnet65 as one model (bf16, channels_last)"
if [ "$GPU" = 1 ]; then
    run 240 ablate bench relu-overlap-none-drop -b 128,256 --precision bf16 --mode train --channels-last \
        --fuse 1,2,4,8,16 --results "$OUT/results"
else
    run 120 ablate bench relu-overlap-none-drop -b 2 --precision fp32 --mode train --fuse 1,2 --warmup 1 --steps 1 \
        --repeats 1 --device cpu --results "$OUT/results"
fi
fi

echo
echo "outputs in $OUT; overall status $status"
exit $status
