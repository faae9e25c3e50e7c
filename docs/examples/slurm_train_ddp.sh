#!/bin/bash
# Training one bundle on several GPUs of one node with torchrun (docs/scaling.md): one process per GPU, gradients
# averaged by DistributedDataParallel (nccl), rank 0 writes the checkpoints and the bundle.
# Submit with:  sbatch docs/examples/slurm_train_ddp.sh SET.h5 BUNDLE
#SBATCH --job-name=phonon-train
#SBATCH --nodes=1
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=16
#SBATCH --mem=128G
#SBATCH --time=12:00:00
set -euo pipefail
DATA=${1:?give the data set}
BUNDLE=${2:?give the output bundle}
# --resume continues from BUNDLE.checkpoints after a preemption or a time-out (same command, same settings)
torchrun --standalone --nproc_per_node "${SLURM_GPUS_ON_NODE:-4}" "$(which phonon-ml)" train \
    --data "$DATA" --output "$BUNDLE" --device cuda --no-progress --resume
