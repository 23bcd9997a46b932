#!/usr/bin/env bash
# Stop the localhost SLURM that up.sh started (jobs are cancelled first).
set -u
scancel --user="$(id -un)" >/dev/null 2>&1 || true
pkill -x slurmd || true
pkill -x slurmctld || true
pkill -x munged || true
for _ in $(seq 1 20); do
  pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null || break
  sleep 0.5
done
exit 0
