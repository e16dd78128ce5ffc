#!/bin/bash

# Parameters
#SBATCH --cpus-per-task=1
#SBATCH --error=/work/wt28/res/one/slurm/%j_0_log.err
#SBATCH --job-name=ablate-one
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --open-mode=append
#SBATCH --output=/work/wt28/res/one/slurm/%j_0_log.out
#SBATCH --signal=USR2@90
#SBATCH --time=60
#SBATCH --wckey=submitit

# setup
export PYTHONPATH=/work/wt28
export PYTHONSAFEPATH=1

# command
export SUBMITIT_EXECUTOR=slurm
srun --unbuffered --output /work/wt28/res/one/slurm/%j_%t_log.out --error /work/wt28/res/one/slurm/%j_%t_log.err /work/main/.venv/bin/python -u -m submitit.core._submit /work/wt28/res/one/slurm
