#!/usr/bin/env bash
# Start a single-node Slurm (munged, slurmctld, slurmd) on this machine, for ablate's Slurm tests
# and for trying `ablate run --slurm` locally. Needs root and Debian's slurm-wlm and munge.
#
#   tests/slurm/start.sh     # prints "reused" when a Slurm already answers, else "started"
#   tests/slurm/stop.sh      # stops only what start.sh started
#
# The configuration is tests/slurm/slurm.conf.in with its state under $ABLATE_SLURM_STATE
# (default /tmp/ablate-slurm); it is installed as /etc/slurm/slurm.conf so that sbatch, squeue
# and scontrol find it without SLURM_CONF. An /etc/slurm/slurm.conf that start.sh did not write
# is never replaced.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
state="${ABLATE_SLURM_STATE:-/tmp/ablate-slurm}"
conf=/etc/slurm/slurm.conf
marker="# ablate test cluster"

if scontrol ping 2>/dev/null | grep -q "is UP"; then
    echo "reused: a Slurm controller already answers ($(scontrol ping | head -1 | xargs))"
    exit 0
fi
for tool in munged slurmctld slurmd sbatch; do
    command -v "$tool" >/dev/null || { echo "start.sh: $tool not found; apt-get install slurm-wlm munge" >&2; exit 2; }
done
if [ -f "$conf" ] && ! head -1 "$conf" | grep -q "^$marker"; then
    echo "start.sh: $conf exists and was not written by this script; not replacing it" >&2
    exit 2
fi

mkdir -p "$state/ctld" "$state/d"
: > "$state/started"  # what this script started, one daemon per line, for stop.sh

# munge: the authentication daemon, run as its own user (it refuses root).
if ! pgrep -x munged >/dev/null; then
    [ -f /etc/munge/munge.key ] || { mungekey --create 2>/dev/null || /usr/sbin/create-munge-key -f; chown munge:munge /etc/munge/munge.key; }
    install -d -o munge -g munge -m 0755 /run/munge
    runuser -u munge -- /usr/sbin/munged
    echo munged >> "$state/started"
fi

sed -e "s|@STATE@|$state|g" -e "s|@CPUS@|$(nproc)|g" "$here/slurm.conf.in" > "$conf"

# -c: start with no jobs. A test cluster's saved jobs are those of killed sessions and runs whose
# folders are gone; recovered, they would hold the node while the tests wait for it.
slurmctld -c
echo slurmctld >> "$state/started"
# The node is called localhost in slurm.conf, whatever the hostname is.
slurmd -N localhost
echo slurmd >> "$state/started"

# Ready when the node takes jobs (idle), usually within a few seconds.
for _ in $(seq 1 60); do
    if sinfo -h -N -o "%t" 2>/dev/null | grep -qE "^(idle|mix|alloc)"; then
        echo "started: single-node Slurm ($(nproc) CPUs, partition $(sinfo -h -o %P | head -1)); state in $state"
        exit 0
    fi
    sleep 0.5
done
echo "start.sh: Slurm did not come up; see $state/slurmctld.log and $state/slurmd.log" >&2
sinfo -N -l >&2 || true
exit 1
