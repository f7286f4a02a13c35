"""The series in lanes (tools.series.execute_in_lanes): who waits for whom, failures, the thread setting."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from tools import series

ORDER = ["01", "02", "03", "04", "05", "09", "06", "07", "08", "10", "11", "12", "13", "14"]


def _jobs(order: list[str]) -> list[tuple[Path, Path]]:
    return [(Path(f"solutions/{n}_x.ipynb"), Path(f"/tmp/{n}_x.ipynb")) for n in order]


@pytest.fixture
def fake_execute(monkeypatch):
    """Record when each notebook starts and ends, and the kernels' thread setting; 09 is slow, 03 fails."""
    events: list[tuple[str, str, float]] = []
    threads: dict[str, str | None] = {}
    lock = threading.Lock()

    def execute(notebook, out, parameters, progress=False):
        name = notebook.name[:2]
        with lock:
            events.append(("start", name, time.perf_counter()))
            threads[name] = os.environ.get("OMP_NUM_THREADS")
        time.sleep(0.5 if name == "09" else 0.01)
        with lock:
            events.append(("end", name, time.perf_counter()))
        if name == "03":
            raise RuntimeError("cell 4 failed")
        return 0.0

    monkeypatch.setattr(series, "execute", execute)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    return events, threads


def test_the_reference_runs_users_wait_for_the_first_of_them_which_starts_first_after_02(fake_execute):
    events, threads = fake_execute
    seconds, errors = series.execute_in_lanes(_jobs(ORDER), {}, lanes=2, report=lambda line: None)
    start = {n: t for kind, n, t in events if kind == "start"}
    end = {n: t for kind, n, t in events if kind == "end"}
    assert start["09"] >= end["02"]  # 09 reads 02's baseline replies: started beside 02, it would generate them too
    after_02 = [n for t, n in sorted((t, n) for n, t in start.items() if t >= end["02"])]
    assert "09" in after_02[:2], after_02  # then the trainer first (the longest chain): the next lane free takes it
    for reader in ("06", "07", "13"):
        assert start[reader] >= end["09"], f"{reader} started before 09's reference run was done"
    assert start["12"] < end["09"]  # 12 trains its adapters first: it waits (on the training lock) only if it must
    assert start["11"] < end["09"]  # the other lane went on meanwhile
    assert list(seconds) == [f"{n}_x" for n in ORDER]  # every notebook ran, reported in the given order
    assert set(errors) == {"03_x"} and "cell 4 failed" in str(errors["03_x"])  # a failure does not stop the others
    assert set(threads.values()) == {"1"} and "OMP_NUM_THREADS" not in os.environ  # one thread each, restored after


def test_in_series_order_06_trains_and_the_others_wait_for_it(fake_execute):
    events, _ = fake_execute
    series.execute_in_lanes(_jobs(sorted(ORDER)), {}, lanes=2, report=lambda line: None)
    start = {n: t for kind, n, t in events if kind == "start"}
    end = {n: t for kind, n, t in events if kind == "end"}
    assert min(start, key=start.get) == "06"
    assert all(start[n] >= end["06"] for n in ("07", "09", "13"))


def test_one_lane_runs_them_in_turn_with_the_threads_left_alone(fake_execute, monkeypatch):
    events, threads = fake_execute
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    series.execute_in_lanes(_jobs(["01", "09", "06"]), {}, lanes=1, report=lambda line: None)
    assert [n for kind, n, _ in events if kind == "start"] == ["09", "01", "06"]
    assert set(threads.values()) == {"3"}
