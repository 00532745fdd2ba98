"""The sample in docs/testing.md: `cd examples/pytest_suite && pytest --looseends -q`.

The docs test runs it and compares its output with the page.
"""

import queue
import threading


def do_jobs(jobs):
    results = queue.Queue(maxsize=1)
    for job in jobs:
        threading.Thread(target=lambda j=job: results.put(j * j), name=f"worker-{job}", daemon=True).start()
    return results.get(timeout=1)  # the caller only wants the first result


def test_first_result():
    assert do_jobs([1, 2, 3, 4]) in {1, 4, 9, 16}


def test_nothing_started():
    assert sorted([3, 1, 2]) == [1, 2, 3]


def test_joins_its_thread():
    done = []
    worker = threading.Thread(target=done.append, args=(1,))
    worker.start()
    worker.join()
    assert done == [1]
