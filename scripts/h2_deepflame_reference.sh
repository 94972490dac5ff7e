#!/usr/bin/env bash
# An externally trained hydrogen network through import -> condense -> export, judged by
# PyTorch. Writes the working files to runs/h2-deepflame/ (git-ignored) and the report to
# results/interop/h2-deepflame/.
#
# 1. States: constant-pressure H2/air ignitions (h2o2.yaml, T0 1000-1500 K, phi 0.5-2,
#    0.5-2 atm) sampled in the DFODE-kit layout; three disjoint sets of trajectories (seeds
#    11, 12, 13): 200 for PyTorch's training, 40 for the reduction (4,000 states, the "few
#    thousand" a user labels), 40 held out for the judgement.
# 2. Labels: `combustion label` (DFODE-kit's constant-volume isothermal step, dt = 1e-6 s);
#    the training set with 2 augmented copies per state.
# 3. PyTorch trains the DFODE-kit layout 12-400x4-9 (GELU, 490,009 parameters)
#    (`scripts/deepflame_reference.py train`): the network this workspace did not train.
# 4. `combustion import`, `condense --target-ratio 0.4` on the 4,000 states, `export`.
# 5. PyTorch compares `combustion predict` with its own inference on the held-out states, and
#    judges both checkpoints on the held-out labels.
#
# Needs a Python with torch, numpy and h5py (for example a venv with `pip install torch h5py`):
#   PYTHON=path/to/venv/bin/python scripts/h2_deepflame_reference.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
R=runs/h2-deepflame
OUT=results/interop/h2-deepflame
M=data/mechanisms/h2o2.yaml
mkdir -p "$R" "$OUT"
cargo build --release -q -p experiments --bin combustion
B=target/release/combustion
start=$(date +%s)

gen() { # name trajectories seed
  "$B" generate --mechanism $M --output "$R/gen_$1.h5" --trajectories "$2" --samples 100 \
    --temperature-range 1000:1500 --augment 0 --seed "$3" > /dev/null
}
gen train 200 11
gen reduce 40 12
gen heldout 40 13
"$B" label --input "$R/gen_train.h5" --mechanism $M --output "$R/train.h5" --augment 2 --seed 1
"$B" label --input "$R/gen_reduce.h5" --mechanism $M --output "$R/reduce.h5" --seed 1
"$B" label --input "$R/gen_heldout.h5" --mechanism $M --output "$R/heldout.h5" --seed 1

"$PYTHON" scripts/deepflame_reference.py train --data "$R/train.h5" --output "$R/h2_dfode.pt" \
  --epochs 150 --seed 0 | tee "$OUT/pytorch_training.txt"

"$B" import --checkpoint "$R/h2_dfode.pt" --mechanism $M --output "$R/imported"
"$B" condense --model "$R/imported" --data "$R/reduce.h5" --mechanism $M --target-ratio 0.4 \
  --output "$R/reduced" 2>&1 | tr '\r' '\n' | grep -v '^\s*\[' | tee "$OUT/condense.txt"
"$B" export --model "$R/reduced" --format deepflame --output "$R/reduced.pt"

"$B" predict --model "$R/imported" --input "$R/gen_heldout.h5" --output "$R/predicted.h5"
"$PYTHON" scripts/deepflame_reference.py compare --checkpoint "$R/h2_dfode.pt" \
  --input "$R/gen_heldout.h5" --predicted "$R/predicted.h5" > "$OUT/compare_f32.json"
"$B" predict --model "$R/imported" --input "$R/gen_heldout.h5" --output "$R/predicted_bf16.h5" --precision bf16
"$PYTHON" scripts/deepflame_reference.py compare --checkpoint "$R/h2_dfode.pt" \
  --input "$R/gen_heldout.h5" --predicted "$R/predicted_bf16.h5" > "$OUT/compare_bf16.json"
"$PYTHON" scripts/deepflame_reference.py judge --data "$R/heldout.h5" \
  --checkpoint "$R/h2_dfode.pt" "$R/reduced.pt" > "$OUT/judge.json"

cat > "$OUT/provenance.json" <<EOF
{"script": "scripts/h2_deepflame_reference.sh", "git_revision": "$(git rev-parse HEAD)$(git diff --quiet || echo -dirty)",
 "seeds": {"trajectories": [11, 12, 13], "label": 1, "pytorch": 0},
 "cpu": "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)", "seconds": $(( $(date +%s) - start ))}
EOF
"$PYTHON" - "$OUT" <<'EOF'
import json, sys
out = sys.argv[1]
j = json.load(open(f"{out}/judge.json"))
a, b = j["models"]
c = json.load(open(f"{out}/compare_f32.json"))
print(f"original {a['parameters']} params: normalized L1 {a['normalized_l1']:.4e}, mean relative RMSE {a['mean_relative_rmse']:.4e}")
print(f"reduced  {b['parameters']} params ({100 * b['parameters'] / a['parameters']:.1f} %): normalized L1 "
      f"{b['normalized_l1']:.4e} ({b['normalized_l1'] / a['normalized_l1']:.3f}x), mean relative RMSE "
      f"{b['mean_relative_rmse']:.4e} ({b['relative_rmse_vs_first']:.3f}x)")
print(f"import vs PyTorch: largest |dY| difference over the largest change {c['max_relative_difference']:.2e}")
EOF
