"""Claims in the results folder: atomic creation, live claims respected, stale ones taken over."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

from ablate.store.claims import HeldClaim, list_claims, pid_alive, read_claim


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_claim(path, host, pid, age_s=0.0, token="theirs"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"host": host, "pid": pid, "started": time.time() - age_s, "worker": "other", "token": token})
    )
    os.utime(path, (time.time() - age_s, time.time() - age_s))


def test_acquire_creates_claim_and_release_removes_it(tmp_path):
    lease = HeldClaim(tmp_path, "exp", "abc", worker="cpu #0")
    assert lease.acquire()
    claim = read_claim(tmp_path / "exp" / "claims" / "abc")
    assert claim.pid == os.getpid() and claim.worker == "cpu #0" and claim.token == lease.token
    assert not claim.stale() and list(list_claims(tmp_path, "exp")) == ["abc"]
    assert not HeldClaim(tmp_path, "exp", "abc").acquire()  # a second claimant is refused
    lease.release()
    assert not (tmp_path / "exp" / "claims" / "abc").exists()


def test_live_claim_of_another_process_is_respected(tmp_path):
    import socket

    write_claim(tmp_path / "exp" / "claims" / "abc", socket.gethostname(), os.getppid())
    assert pid_alive(os.getppid())
    assert not HeldClaim(tmp_path, "exp", "abc").acquire()


def test_claim_of_dead_pid_on_this_host_is_taken_over(tmp_path):
    import socket

    path = tmp_path / "exp" / "claims" / "abc"
    pid = dead_pid()
    write_claim(path, socket.gethostname(), pid)
    assert read_claim(path).stale()
    lease = HeldClaim(tmp_path, "exp", "abc")
    assert lease.acquire()
    assert lease.took_over is not None and lease.took_over.pid == pid
    assert read_claim(path).token == lease.token
    lease.release()


def test_claim_from_another_host_expires_only_after_the_timeout(tmp_path):
    path = tmp_path / "exp" / "claims" / "abc"
    write_claim(path, "some-other-host", 12345, age_s=5)
    assert read_claim(path).owner_alive() is None  # cannot tell from here
    assert not HeldClaim(tmp_path, "exp", "abc", timeout=60).acquire()
    write_claim(path, "some-other-host", 12345, age_s=120)  # no heartbeat for two minutes
    lease = HeldClaim(tmp_path, "exp", "abc", timeout=60)
    assert lease.acquire()
    lease.release()


def test_only_one_of_many_takes_over_a_stale_claim(tmp_path):
    import socket

    write_claim(tmp_path / "exp" / "claims" / "abc", socket.gethostname(), dead_pid())
    leases = [HeldClaim(tmp_path, "exp", "abc") for _ in range(8)]
    barrier = threading.Barrier(len(leases))
    won: list[bool] = [False] * len(leases)

    def contend(i: int) -> None:
        barrier.wait()
        won[i] = leases[i].acquire()

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(len(leases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(won) == 1
    for lease, ok in zip(leases, won):
        if ok:
            lease.release()


def test_heartbeat_refreshes_and_detects_a_lost_claim(tmp_path):
    lease = HeldClaim(tmp_path, "exp", "abc", heartbeat=0.05)
    assert lease.acquire()
    path = tmp_path / "exp" / "claims" / "abc"
    os.utime(path, (time.time() - 100, time.time() - 100))
    time.sleep(0.3)
    assert read_claim(path).age() < 5  # refreshed
    path.unlink()  # someone removed (took over) the claim
    time.sleep(0.3)
    assert lease.lost
    lease.release()


def test_unparsable_claim_expires_by_its_age(tmp_path):
    path = tmp_path / "exp" / "claims" / "abc"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert not read_claim(path).stale(timeout=60)
    os.utime(path, (time.time() - 120, time.time() - 120))
    assert read_claim(path).stale(timeout=60)
