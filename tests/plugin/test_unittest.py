"""unittest: the mixin under `python -m unittest` and under pytest, IsolatedAsyncioTestCase included."""

from __future__ import annotations

import sys

import pytest

SUITE = """
import asyncio
import threading
import unittest

import looseends

NEVER = threading.Event()


class TestThreads(looseends.LeakCheckMixin, unittest.TestCase):
    looseends_options = {"timeout": 0.1}

    def setUp(self):
        self.helper = threading.Thread(target=NEVER.wait, name="from-setup", daemon=True)
        self.helper.start()

    def test_leaks_from_setup(self):
        pass

    def test_clean(self):
        t = threading.Thread(target=sum, args=([1],))
        t.start()
        t.join()

    def tearDown(self):
        pass


class TestClean(looseends.LeakCheckMixin, unittest.TestCase):
    def test_nothing(self):
        pass


class TestAsync(looseends.LeakCheckMixin, unittest.IsolatedAsyncioTestCase):
    looseends_options = {"timeout": 0.1}

    async def test_forgets_a_task(self):
        queue = asyncio.Queue(maxsize=1)
        await queue.put(0)
        self.task = asyncio.create_task(queue.put(1), name="forgotten-put")
        await asyncio.sleep(0)

    async def test_awaits_its_task(self):
        await asyncio.create_task(asyncio.sleep(0))
"""


def test_mixin_under_python_m_unittest(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_unit=SUITE)
    result = pytester.run(sys.executable, "-m", "unittest", "-v", "test_unit")
    assert result.ret == 1
    err = result.stderr.str()
    assert "Ran 5 tests" in err
    assert "FAILED (failures=3)" in err  # both TestThreads tests see setUp's thread; the async leak
    assert "1 thread blocked in threading.Event.wait" in err
    assert "during test_unit.TestThreads.test_leaks_from_setup" in err
    assert "called from" not in err  # unittest's and pytest's own frames are not the user's
    assert "1 task blocked in asyncio.Queue.put (queue full, maxsize=1, size=1)" in err
    assert "forgotten-put" in err
    assert "test_awaits_its_task (test_unit.TestAsync.test_awaits_its_task) ... ok" in err
    assert "test_nothing (test_unit.TestClean.test_nothing) ... ok" in err


def test_mixin_and_isolated_asyncio_under_pytest(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_unit=SUITE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=3)
    result.stdout.fnmatch_lines(["*LeakError*", "*1 task blocked in asyncio.Queue.put*"])


def test_isolated_asyncio_test_case_with_the_plugin_alone(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_plain="""
import asyncio
import unittest

class TestAsync(unittest.IsolatedAsyncioTestCase):
    async def test_forgets_a_task(self):
        self.task = asyncio.create_task(asyncio.sleep(3600), name="sleeper")
        await asyncio.sleep(0)
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--looseends")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*1 task blocked in asyncio.sleep (3600 s) for *",  # once, no loop: no "loop never stopped"
            "*then: cancelled by its runner when the event loop shut down*",
        ]
    )


MIXIN_WITH_OPTIONS = """
import threading
import unittest

import looseends

NEVER = threading.Event()


class TestWithOptions(looseends.LeakCheckMixin, unittest.TestCase):
    looseends_options = {"timeout": 0.1, "ignore": [looseends.ignore_name("known-*")]}

    def test_leaks_one_known_and_one_not(self):
        for name in ("known-helper", "forgotten"):
            threading.Thread(target=NEVER.wait, name=name, daemon=True).start()
"""


@pytest.mark.parametrize("flags", [(), ("--looseends",)], ids=["mixin alone", "mixin and plugin"])
def test_a_mixin_test_is_reported_once_with_the_mixins_options(
    pytester: pytest.Pytester, flags: tuple[str, ...]
) -> None:
    """Alone, the mixin fails the test; with the plugin on, the plugin checks it instead (a teardown
    error, in the session summary and JSON) and uses the class's options. Never both."""
    pytester.makepyfile(test_unit=MIXIN_WITH_OPTIONS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *flags)
    out = result.stdout.str()
    if flags:
        result.assert_outcomes(passed=1, errors=1)
        assert "LeakError" not in out
    else:
        result.assert_outcomes(failed=1)
    # Once in the report; pytest's own short summary repeats messages whole under CI=1.
    assert out.split("short test summary info")[0].count("unit: forgotten (daemon)") == 1
    assert "known-helper" not in out  # the class's ignore rule holds under the plugin too
