#!/usr/bin/env bash
# Stop the daemons tests/slurm/start.sh started (listed in its state folder), and only those:
# a Slurm that start.sh found running and reused is left alone.
set -uo pipefail
state="${ABLATE_SLURM_STATE:-/tmp/ablate-slurm}"
[ -f "$state/started" ] || exit 0

stop_pidfile() {  # name pidfile
    local pid
    pid="$(cat "$2" 2>/dev/null || true)"
    if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        echo "stopped $1 (pid $pid)"
    fi
}
grep -qx slurmd "$state/started" && stop_pidfile slurmd "$state/slurmd.pid"
grep -qx slurmctld "$state/started" && stop_pidfile slurmctld "$state/slurmctld.pid"
grep -qx munged "$state/started" && stop_pidfile munged /run/munge/munged.pid
rm -f "$state/started"
