#!/usr/bin/env bash
# Bring up a single-node SLURM on localhost (slurmctld + slurmd + munge), for the tests.
# Installs Debian's slurm-wlm and munge when missing (needs root); idempotent: a running
# cluster is left as it is.  Exit 0 when `sinfo` shows the node idle, 1 otherwise.
#   tests/slurm/up.sh            # CPUS=8 by default (more than the real cores: config_overrides)
set -euo pipefail
CPUS="${SLURM_TEST_CPUS:-8}"
STATE=/var/lib/anatprep-slurm
HOST="$(hostname -s)"

log() { echo "slurm-up: $*" >&2; }

if timeout 5 sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
  log "already running"; exit 0
fi
if [ "$(id -u)" != 0 ]; then log "needs root"; exit 1; fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  log "installing slurm-wlm and munge"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && \
         apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null; }
fi

# munge: key, runtime dir, daemon as user munge
mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 400 /etc/munge/munge.key
chmod 755 /run/munge
if ! pgrep -x munged >/dev/null; then
  su -s /bin/sh munge -c "/usr/sbin/munged --force" || { log "munged failed"; exit 1; }
fi

# a test cluster starts empty: jobs saved by an earlier controller (a run cut off mid-way)
# would come back as ghosts holding CPUs, and their ids would collide with new jobs in sacct
rm -rf "$STATE/ctld" "$STATE/d" /var/log/slurm/jobcomp.log
mkdir -p /etc/slurm "$STATE/ctld" "$STATE/d" /var/log/slurm
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=anatprep
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
JobAcctGatherType=jobacct_gather/none
DependencyParameters=kill_invalid_depend
ReturnToService=2
MinJobAge=300
SchedulerParameters=sched_interval=2
SlurmctldTimeout=120
SlurmdTimeout=300
MpiDefault=none
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=16000 State=UNKNOWN
PartitionName=debug Nodes=${HOST} Default=YES MaxTime=INFINITE State=UP
CONF

pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
pgrep -x slurmd >/dev/null || /usr/sbin/slurmd
for _ in $(seq 1 30); do
  if timeout 5 sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    log "up: $(sinfo -h -o '%N %c CPUs %T')"; exit 0
  fi
  scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
  sleep 1
done
log "did not come up; see /var/log/slurm/"
exit 1
