"""cpu_threads kernels launched from several host threads at once."""
import threading

import numpy as np
import pytest

import portable as pt
from portable.backends import cpu_threading


@pt.kernel
def weighted(acc, x, out, k):
    for i in acc.uniform_elements(x.size):
        out[i] = x[i] * k + i


def test_a_thread_safe_layer_is_asked_for(monkeypatch):
    monkeypatch.delenv(cpu_threading.LAYER_VAR, raising=False)
    monkeypatch.setattr(cpu_threading.numba.config, "THREADING_LAYER", "default")
    cpu_threading.ask_for_a_thread_safe_layer()
    assert cpu_threading.numba.config.THREADING_LAYER == "threadsafe"


def test_a_layer_the_user_chose_is_kept(monkeypatch):
    monkeypatch.setenv(cpu_threading.LAYER_VAR, "workqueue")
    monkeypatch.setattr(cpu_threading.numba.config, "THREADING_LAYER", "workqueue")
    cpu_threading.ask_for_a_thread_safe_layer()
    assert cpu_threading.numba.config.THREADING_LAYER == "workqueue"


@pytest.mark.parametrize("host_threads", [2, 6])
def test_launches_from_several_host_threads_give_each_its_result(host_threads):
    device = pt.get_device("cpu_threads")
    n, rounds = 5003, 40
    failures: list[str] = []

    def job(seed: int) -> None:
        queue = pt.Queue(device, blocking=seed % 2 == 0)
        x = np.random.default_rng(seed).random(n)
        out = np.full(n, np.nan)
        for k in range(rounds):
            pt.launch(queue, pt.make_workdiv(device, n), weighted, x, out, float(k))
            queue.synchronize()
            if not np.array_equal(out, x * float(k) + np.arange(n)):
                failures.append(f"thread {seed}, round {k}")
                return

    threads = [threading.Thread(target=job, args=(seed,)) for seed in range(host_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    assert cpu_threading.layer_name() in {"tbb", "omp", "workqueue"}


@pytest.mark.parametrize("blocking", [True, False])
def test_one_queue_shared_by_host_threads_runs_its_work_in_turn(blocking):
    import time
    queue = pt.Queue(pt.get_device("cpu_serial"), blocking=blocking)
    running, overlaps, done = [0], [], []

    def work(tag):
        running[0] += 1
        if running[0] > 1:
            overlaps.append(tag)
        time.sleep(0.002)
        running[0] -= 1
        done.append(tag)

    def enqueue(tag):
        for k in range(20):
            queue.native.submit(lambda k=k: work((tag, k)))

    threads = [threading.Thread(target=enqueue, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queue.synchronize()
    assert not overlaps
    assert len(done) == 80  # synchronize waited for every host thread's work
