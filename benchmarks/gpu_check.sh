#!/usr/bin/env bash
# The GPU measurements of issue 13 in one script (< 8 min on one GPU). On a machine with CUDA,
# from the repository root:
#
#     bash benchmarks/gpu_check.sh [OUT_DIR]
#
# and send back OUT_DIR/gpu_check.log (OUT_DIR defaults to a new temporary directory). It runs
#   1. the device: nvidia-smi's name and driver, torch and its CUDA
#   2. python benchmarks/bench_gpu.py: steps/s of the four layouts, peak memory, projected
#      device-hours of the reference audience (< 5 min)
#   3. python run_pipeline.py --preset tiny: the whole chain, training on CUDA (wall time)
#   4. the Nmax σ=0.44 replicas of (3) trained again with --set tf32=true: TF32's effect on the
#      unseen-sample (held-out) loss, next to its speed-up in (2)
#   5. python -m pytest tests/test_gpu_path.py: CUDA float32 equals the CPU's within round-off,
#      the CUDA graph of the step reproduces the eager step
# Without CUDA every step runs on the CPU and says so (that is how it is tested without a GPU);
# GPU_CHECK_QUICK=1 makes step 2 `bench_gpu.py --quick`.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$(mktemp -d -t gpu_check.XXXXXX)}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
PYTHON="${PYTHON:-python3}"
cd "$REPO"
exec > >(tee "$OUT/gpu_check.log") 2>&1

step() { echo; echo "=== $(date '+%T') $*"; }

step "1. device"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || echo "no nvidia-smi: no NVIDIA GPU visible"
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'available:', torch.cuda.is_available())"
git describe --always --dirty 2>/dev/null || true

step "2. bench_gpu.py"
timeout 330 "$PYTHON" benchmarks/bench_gpu.py ${GPU_CHECK_QUICK:+--quick}

step "3. run_pipeline.py --preset tiny --root $OUT/tiny"
start=$SECONDS
timeout 180 "$PYTHON" run_pipeline.py --preset tiny --root "$OUT/tiny"
echo "run_pipeline.py --preset tiny: $((SECONDS - start)) s"

step "4. TF32 and the unseen-sample loss (tiny preset, Nmax sigma=0.44, replicas 0-1)"
mkdir -p "$OUT/tiny_tf32"
ln -sfn "$OUT/tiny/training_datasets_T32" "$OUT/tiny_tf32/training_datasets_T32"
timeout 90 "$PYTHON" hpc_train_sigma.py --preset tiny --root "$OUT/tiny_tf32" --set tf32=true \
    --ensemble Nmax --replicas 0-1 --sigma 0.44
"$PYTHON" - "$OUT/tiny" "$OUT/tiny_tf32" <<'EOF'
import sys
import pandas as pd
for r in (0, 1):
    off, on = (pd.read_csv(f"{root}/trained_models_sigma44/Nmax/replica_{r}_best_history.csv")["val_loss"]
               for root in sys.argv[1:])
    print(f"replica {r}: held-out loss per epoch, TF32 off {off.round(6).tolist()}, TF32 on "
          f"{on.round(6).tolist()}; max relative difference {((on - off).abs() / off).max():.2e}")
EOF

step "5. tests/test_gpu_path.py"
timeout 120 "$PYTHON" -m pytest -q -rs tests/test_gpu_path.py

step "done: $OUT/gpu_check.log"
