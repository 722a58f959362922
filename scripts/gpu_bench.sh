#!/usr/bin/env bash
# Benchmark every model under TensorFlow and JAX on a bare GPU machine (Python 3.12, CUDA 12 driver),
# batch 32, 224x224, bf16, and print one table. Run from the repository root:
#   scripts/gpu_bench.sh                       # install, then measure (about 10 minutes on one H100/H200)
#   SSNETS_BENCH_INSTALL=0 scripts/gpu_bench.sh # already installed
# Extra arguments are Hydra overrides for both backends; the same path runs on a CPU, e.g.
#   SSNETS_BENCH_INSTALL=0 SSNETS_BENCH_MODELS='[fast_fcn8]' scripts/gpu_bench.sh \
#     bench.batch_size=2 bench.image_size=64 bench.steps=2 bench.windows=2 trainer.precision=float32
set -euo pipefail

MODELS="${SSNETS_BENCH_MODELS:-[fcn8,fast_fcn8,mobilenet_unet,fc_densenet121]}"
# Each backend gets at most this long, so both fit in 10 minutes; rows finished by then are kept.
SECONDS_PER_BACKEND="${SSNETS_BENCH_SECONDS_PER_BACKEND:-290}"
OUT="${SSNETS_BENCH_OUT:-outputs/gpu_bench/$(date +%Y-%m-%d_%H-%M-%S)}"

if [[ "${SSNETS_BENCH_INSTALL:-1}" == 1 ]]; then
    # pyproject pins tensorflow-cpu (CI machines); on a GPU machine it is replaced by the CUDA build.
    python -m pip install -q -e .
    python -m pip uninstall -q -y tensorflow-cpu
    python -m pip install -q "tensorflow[and-cuda]==2.21.0" "jax[cuda12]==0.10.2"
fi

# TensorFlow runs the tf.data pipeline in the JAX process too: without growth it would take all GPU memory.
export TF_FORCE_GPU_ALLOW_GROWTH=true
export TF_CPP_MIN_LOG_LEVEL=2

for backend in tensorflow jax; do
    echo "== $backend: $MODELS" >&2
    # A backend that runs out of time still leaves the rows it finished in bench.json.
    KERAS_BACKEND="$backend" timeout "$SECONDS_PER_BACKEND" python -m ssnets.bench \
        "bench.models=$MODELS" bench.batch_size=32 bench.image_size=224 bench.steps=30 bench.windows=3 \
        bench.compare_loop=false bench.generator_images=0 trainer.precision=mixed_bfloat16 \
        "hydra.run.dir=$OUT/$backend" "$@" >&2 || echo "== $backend stopped early (exit $?)" >&2
done

python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
from ssnets.bench import markdown_table

out = Path(sys.argv[1])
rows = [row for backend in ("tensorflow", "jax") if (out / backend / "bench.json").is_file()
        for row in json.loads((out / backend / "bench.json").read_text())]
(out / "bench.md").write_text(markdown_table(rows))
print(markdown_table(rows))
print(f"Rows: {out}/{{tensorflow,jax}}/bench.json; table: {out}/bench.md")
PY
