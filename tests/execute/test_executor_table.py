"""The executor table (issue 18): every executor is a row called one way, with one options type."""

from __future__ import annotations

import dataclasses

import pytest

from ablate.execute.errors import ExecutorError
from ablate.execute.executors import EXECUTORS, Executor, run_sweep
from ablate.execute.observer import RunObserver
from ablate.execute.options import SweepOptions


def test_every_executor_is_a_row():
    assert set(EXECUTORS) == {"in-process", "local", "ray", "slurm"}
    assert all(isinstance(row, Executor) for row in EXECUTORS.values())
    # Slurm's driver does not catch signals: Ctrl-C stops waiting, the job goes on.
    assert EXECUTORS["slurm"].stopping is None and EXECUTORS["slurm"].interrupted[0] == "stopped waiting"


def test_a_row_gets_the_one_options_object_and_a_stop_request(tmp_path):
    seen = {}

    def fake(exp, results, where, options, observer, should_stop):
        seen.update(where=where, options=options, observer=observer, stop=should_stop())
        return "summary"

    options = SweepOptions(force=True, limit=3, plugins=("mine",))
    observer = RunObserver()
    row = Executor(fake, lambda where: f"fake {where}", "stopping the fake")
    said = []
    assert run_sweep(row, None, tmp_path, "here", options, observer, said.append) == "summary"
    assert seen == {"where": "here", "options": options, "observer": observer, "stop": False}
    assert not said  # announced only when a signal comes
    assert run_sweep(dataclasses.replace(row, stopping=None), None, tmp_path, "x", options, observer, said.append)


def test_work_options_carry_force_and_its_start_time():
    assert SweepOptions().work(12.0, "w").forced_since is None
    work = SweepOptions(force=True, keep_checkpoints=True, use_cache=False).work(12.0, "cuda:0 #1")
    assert (work.force, work.forced_since, work.keep_checkpoints, work.use_cache, work.worker) == (
        True,
        12.0,
        True,
        False,
        "cuda:0 #1",
    )


def test_executor_errors_share_one_type():
    from ablate.execute.local import PoolError
    from ablate.execute.ray import RayError
    from ablate.execute.slurm.array import SlurmError

    for error in (PoolError, RayError, SlurmError):
        assert issubclass(error, ExecutorError)
    assert issubclass(PoolError, ValueError) and issubclass(RayError, RuntimeError)  # as before


def test_describe_names_where_the_cells_go():
    from ablate.execute.local import Slot
    from ablate.execute.ray import RayOptions
    from ablate.execute.slurm.array import SlurmOptions

    slots = [Slot(0, "cpu", 1), Slot(1, "cpu", 1)]
    assert EXECUTORS["local"].describe(slots) == "2 workers on cpu"
    assert EXECUTORS["local"].workers(slots) == {0: "cpu #0", 1: "cpu #1"}
    assert EXECUTORS["ray"].describe(RayOptions("auto")) == "Ray tasks (auto)"
    assert EXECUTORS["slurm"].describe(SlurmOptions()) == "Slurm array (default partition)"
    assert EXECUTORS["in-process"].describe("cpu") == "device cpu"


@pytest.mark.parametrize("module", ["ray", "submitit"])
def test_a_missing_extra_is_one_line(module, monkeypatch):
    import builtins

    from ablate.execute.errors import import_extra

    real = builtins.__import__

    def hide(name, *args, **kw):
        if name == module:
            raise ImportError(name)
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", hide)
    with pytest.raises(ExecutorError, match=r"^--x needs X, which is not installed: pip install 'ablate\[extra\]'$"):
        import_extra(module, ExecutorError, "--x needs X", "extra")
