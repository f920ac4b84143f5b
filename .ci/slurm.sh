#!/usr/bin/env bash
# Starts a single-node SLURM cluster on this machine (slurmctld and slurmd on localhost,
# munge for authentication) from Debian's packages, for the SLURM executor's tests. Run as
# root; idempotent (a cluster that answers `sinfo` is left alone).
set -euo pipefail
if [ "${1:-}" != --restart ] && sinfo -h >/dev/null 2>&1 && [ "$(sinfo -h -o %t | head -1)" = idle ]; then
    exit 0
fi
if [ "${1:-}" = --restart ]; then
    pkill -x slurmd || true
    pkill -x slurmctld || true
    for _ in $(seq 20); do
        pgrep -x slurmd >/dev/null || pgrep -x slurmctld >/dev/null || break
        sleep 0.5
    done
fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null
fi
host=$(hostname -s)
# At least 8 CPUs (more than a 2-core CI machine has: `SlurmdParameters=config_overrides`),
# so jobs asking for the executor's default 4 cores fit, as on a real cluster's nodes.
cpus=$(( $(nproc) > 8 ? $(nproc) : 8 ))
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge
chmod 0400 /etc/munge/munge.key
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
# Linux process tracking and no task plugin: no cgroups needed (containers, CI machines).
# Jobs stay known to slurmctld for 10 minutes after they end, so `scontrol` can say how
# they ended without an accounting database.
cat >/etc/slurm/slurm.conf <<CONF
ClusterName=synthpipe-ci
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
MinJobAge=600
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
pgrep -x slurmd >/dev/null || /usr/sbin/slurmd
for _ in $(seq 60); do
    state=$(sinfo -h -o %t 2>/dev/null | head -1 || true)
    case $state in
        idle|mix|alloc) exit 0 ;;
        down*|drain*) scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 1
done
echo "the SLURM cluster did not come up; see /var/log/slurm/" >&2
tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
exit 1
