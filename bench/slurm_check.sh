#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, and `mfphys scan --cluster slurm` checked against a local run.
#
#   sudo bash bench/slurm_check.sh [OUT]      # OUT: where the two scans go (default /tmp/mfphys-slurm-check)
#
# Needs root and the Debian packages slurm-wlm and munge (apt-get install slurm-wlm munge).
# It writes /etc/slurm/slurm.conf for this one node (only when there is none, or ours), starts
# munged, slurmctld and slurmd (their pids in $OUT/pids, stopped at the end unless KEEP=1),
# runs a small teacher scan here and the same scan through SLURM jobs (dask-jobqueue, two jobs
# of one core), and checks that the two give the same cells (every variable but wall-clock times)
# and that the cells were trained in SLURM jobs. Uses PYTHON (default: python) and MFPHYS
# (default: mfphys) from the environment; exit 0 when the cells agree.
set -euo pipefail

OUT=${1:-/tmp/mfphys-slurm-check}
PYTHON=${PYTHON:-python}
MFPHYS=${MFPHYS:-mfphys}
CONF=/etc/slurm/slurm.conf
HOST=$(hostname -s)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
: > "$OUT/pids"

stop() {
  if [ "${KEEP:-0}" != 1 ]; then
    while read -r pid; do kill "$pid" 2>/dev/null || true; done < "$OUT/pids"
  fi
}
trap stop EXIT

command -v slurmctld >/dev/null || { echo "slurmctld not found: apt-get install slurm-wlm munge"; exit 3; }
[ "$(id -u)" = 0 ] || { echo "run as root (it starts munged, slurmctld and slurmd)"; exit 3; }

# --- munge: the authentication every SLURM daemon and command uses --------------------------------
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge && dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key 2>/dev/null || true
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge && chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  su -s /bin/sh munge -c "/usr/sbin/munged --force" 2>/dev/null || /usr/sbin/munged --force
  sleep 1
  pgrep -u munge -n munged >> "$OUT/pids" || true
fi

# --- slurm.conf for this node: CPUs and memory as the machine has them ------------------------------
CPUS=$(nproc)
MEM=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
if [ ! -f "$CONF" ] || grep -q "written by mfphys bench/slurm_check.sh" "$CONF"; then
  cat > "$CONF" <<EOF
# written by mfphys bench/slurm_check.sh: a one-node cluster for testing
ClusterName=mfphys-check
SlurmctldHost=$HOST
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/lib/slurm/slurmd
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmctldLogFile=$OUT/slurmctld.log
SlurmdLogFile=$OUT/slurmd.log
SlurmUser=root
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=check Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
fi
mkdir -p /var/lib/slurm/slurmd /var/lib/slurm/slurmctld
if ! scontrol ping 2>/dev/null | grep -q UP; then
  slurmctld -c && sleep 2 && cat /run/slurmctld.pid >> "$OUT/pids"
  slurmd && sleep 2 && cat /run/slurmd.pid >> "$OUT/pids"
fi
for _ in $(seq 30); do
  sinfo -h -o %T 2>/dev/null | grep -qE "idle|mix|alloc" && break
  scontrol update nodename="$HOST" state=resume 2>/dev/null || true
  sleep 1
done
sinfo

# --- the same small scan here and through SLURM -------------------------------------------------------
ARGS=(--dataset teacher --input-dim 20 --width 8 --depth 1,2 --n-train 200,400 --epochs 3 --batch-size 100
      -R 2 --n-test 200 --backend numpy -q)
rm -rf "$OUT/local" "$OUT/slurm"
"$MFPHYS" scan "${ARGS[@]}" --out "$OUT/local"
# the jobs write their logs in the working directory (SLURM's default): keep them in $OUT
(cd "$OUT" && "$MFPHYS" scan "${ARGS[@]}" --out "$OUT/slurm" --cluster slurm --jobs 2 --cores 1 --memory 1GB \
   --walltime 00:10:00 --job-extra=--comment=mfphys-check)
"$PYTHON" - "$OUT/local" "$OUT/slurm" <<'EOF'
import json
import sys
from pathlib import Path

import numpy as np
import xarray as xr

local, slurm = map(Path, sys.argv[1:])
TIMES = {"epoch_seconds", "eval_seconds"}
names = sorted(p.name for p in (local / "cells").glob("*.nc"))
assert names and names == sorted(p.name for p in (slurm / "cells").glob("*.nc")), "not the same cells"
hosts = set()
for name in names:
    a, b = xr.open_dataset(local / "cells" / name), xr.open_dataset(slurm / "cells" / name)
    assert set(a.data_vars) == set(b.data_vars), name
    for v in a.data_vars:
        if v not in TIMES:
            np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=f"{name}: {v}")
    assert a.attrs["config_hash"] == b.attrs["config_hash"]
    hosts.add(b.attrs["trained_on"])
print(f"{len(names)} cells identical to the local run (wall-clock times aside); trained on {sorted(hosts)}")
EOF
ls "$OUT"/slurm-*.out >/dev/null || { echo "no SLURM job ran (no slurm-*.out in $OUT)"; exit 1; }
echo "slurm check passed ($(ls "$OUT"/slurm-*.out | wc -l) jobs)"
