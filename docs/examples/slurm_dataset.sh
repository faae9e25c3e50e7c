#!/bin/bash
# A simulated training set of N_TOTAL spectra on a Slurm cluster (docs/scaling.md): an array of N_SHARDS tasks,
# each simulating its shard of the SAME data set (same --count, --seed and settings; only --shard differs), then
# one merge job that starts when every task has succeeded. Submit with:  bash docs/examples/slurm_dataset.sh
# Each task is resumable: a resubmitted task continues its shard from OUTPUT.partial.
set -euo pipefail

N_TOTAL=${N_TOTAL:-1000000}          # spectra in the whole set
N_SHARDS=${N_SHARDS:-200}            # array tasks (≈ 5,000 spectra each)
SEED=${SEED:-0}
MATERIAL=${MATERIAL:-Cu}
INSTRUMENT=${INSTRUMENT:-ARCS}
EI=${EI:-50}
WORK=${WORK:-$PWD/${MATERIAL}_${INSTRUMENT}_${EI}meV}   # on a file system every node sees
mkdir -p "$WORK/logs"

# 1. the shards: one array task per shard, one core each (the simulator uses one torch thread per core)
array_id=$(sbatch --parsable \
    --job-name=phonon-sim --array=0-$((N_SHARDS - 1)) \
    --cpus-per-task=1 --mem=4G --time=04:00:00 \
    --output="$WORK/logs/sim_%A_%a.out" \
    --wrap="export OMP_NUM_THREADS=1; phonon-ml simulate --material $MATERIAL --instrument $INSTRUMENT --ei $EI \
            --count $N_TOTAL --seed $SEED --shard \$SLURM_ARRAY_TASK_ID/$N_SHARDS \
            --output $WORK/shard_\$(printf %05d \$SLURM_ARRAY_TASK_ID).h5 --no-progress")

# 2. the merge: after every array task succeeded (afterok), checks that the shards belong together and writes
#    one file atomically, copying rows shard by shard (memory does not grow with the set); the shards can be
#    deleted afterwards
sbatch --job-name=phonon-merge --dependency=afterok:"$array_id" \
    --cpus-per-task=1 --mem=4G --time=02:00:00 \
    --output="$WORK/logs/merge_%j.out" \
    --wrap="phonon-ml merge --input $WORK/shard_*.h5 --output $WORK/set.h5"

echo "submitted array $array_id ($N_SHARDS shards of $N_TOTAL spectra) and its merge into $WORK/set.h5"
