#!/usr/bin/env bash
# Data-parallel smoke run and scaling efficiency on every visible GPU:
#   efficiency = images/s on N GPUs / (N x images/s on one GPU)
# with the global batch growing with N (BATCH_PER_GPU images per GPU), so each GPU does the same work.
#   scripts/gpu_scaling.sh                       # FastFCN8 at 224, 3 epochs
#   MODEL=mobilenet_unet KERAS_BACKEND=jax scripts/gpu_scaling.sh
# train_images_per_second is measured over fit (validation included); epoch 1 (compilation) is part of it,
# so use enough epochs that it is small.
set -euo pipefail
cd "$(dirname "$0")/.."
gpus=$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | wc -l || true)
if [ "${gpus:-0}" -lt 2 ]; then
  echo "gpu_scaling: ${gpus:-0} GPU(s) visible; data-parallel scaling needs at least 2." >&2
  exit 1
fi
MODEL=${MODEL:-fast_fcn8} BATCH_PER_GPU=${BATCH_PER_GPU:-16} EPOCHS=${EPOCHS:-3}
work=$(mktemp -d)
run() {  # run STRATEGY GPU_LIST -> prints train_images_per_second
  local batch=$(( BATCH_PER_GPU * $(echo "$2" | tr ',' '\n' | wc -l) ))
  CUDA_VISIBLE_DEVICES=$2 python -m ssnets.run model="$MODEL" data.image_size=224 data.num_train=$((batch * 8)) \
    data.num_val=32 data.num_test=0 data.batch_size=$batch trainer.epochs="$EPOCHS" trainer.verbose=2 \
    trainer.strategy="$1" logger.tracking_uri="sqlite:///$work/mlflow.db" logger.log_model=false \
    hydra.run.dir="$work/$1-$2" >"$work/$1-$2.log" 2>&1 || { tail -n 30 "$work/$1-$2.log" >&2; exit 1; }
  python - "$work" <<'PY'
import sys
from mlflow.tracking import MlflowClient
client = MlflowClient(f"sqlite:///{sys.argv[1]}/mlflow.db")
latest = client.search_runs([client.get_experiment_by_name("ssnets").experiment_id],
                            order_by=["attributes.start_time DESC"], max_results=1)[0]
print(f"{latest.data.metrics['train_images_per_second']:.2f}")
PY
}
all=$(seq -s, 0 $((gpus - 1)))
one=$(run single 0)
many=$(run data_parallel "$all")
python -c "
one, many, n = $one, $many, $gpus
print(f'{n} GPUs: {many:.1f} images/s; 1 GPU: {one:.1f} images/s; speed-up {many / one:.2f}x; efficiency {many / (n * one):.0%}')"
echo "runs and logs: $work"
