#!/usr/bin/env bash
# Issue 31's benchmarks on a GPU machine in one command (about 10 minutes): torch on $DEVICE (default cuda);
# Brian2's numpy and cpp_standalone targets on the same machine's CPU beside them. Each command is cut at
# $LIMIT seconds (default 150) so that one slow configuration cannot take the rest's time; it then says so.
# Writes $OUT (default bench/results/gpu): device.txt, step_floor.txt, simulate_*/results.json,
# recurrent_peers.json, peers/; record the numbers in bench/RESULTS.md with the device's name.
#
#   bash bench/gpu.sh
#   DEVICE=cpu DURATION=0.01 LIMIT=60 bash bench/gpu.sh     # a dry run where there is no GPU
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-bench/results/gpu}
DURATION=${DURATION:-0.1}
LIMIT=${LIMIT:-150}
mkdir -p "$OUT"

run() {  # a benchmark command, cut at $LIMIT seconds
    echo "== $*"
    timeout "$LIMIT" "$@" || echo "== exit $? (124: cut at $LIMIT s): $*"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } > "$OUT/device.txt"
cat "$OUT/device.txt"
run python bench/step_floor.py --neurons 4000 --steps 1000 --device "$DEVICE" | tee "$OUT/step_floor.txt"
# target 1 and the GPU goal: CUBA 1000 and 4000 against Brian2's numpy target and cpp_standalone; 32 variants
run python bench/simulate.py --networks cuba --sizes 1000 4000 --duration "$DURATION" --dtypes float32 \
    --backends torch numpy cpp_standalone --batches 1 32 --device "$DEVICE" --out "$OUT/simulate_cuba"
# target 2: the step through torch.compile as one graph (fixed shapes), beside the eager step's rows above
run python bench/simulate.py --networks cuba --sizes 1000 4000 --duration "$DURATION" --dtypes float32 \
    --backends torch-compiled --batches 1 32 --device "$DEVICE" --out "$OUT/simulate_cuba_compiled"
run python bench/simulate.py --networks cobahh --sizes 4000 --duration "$DURATION" --dtypes float32 \
    --backends torch numpy --batches 1 32 --device "$DEVICE" --out "$OUT/simulate_cobahh"
run python bench/simulate.py --networks brunel --sizes 10000 --duration "$DURATION" --dtypes float32 \
    --backends torch numpy --batches 1 --device "$DEVICE" --out "$OUT/simulate_brunel"
# target 3: training, recurrent and feed-forward, against snnTorch and Norse
run python bench/recurrent_peers.py --device "$DEVICE" --out "$OUT/recurrent_peers.json"
run python bench/peers.py --device "$DEVICE" --skip brian scaling --rounds 5 --out "$OUT/peers"
echo "wrote $OUT"
