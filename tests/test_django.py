"""Django's own test runner with the checks: a real project made by `django-admin startproject`, run by
`python manage.py test`, with views that leak a thread and a task and tests that leak nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("django", reason="Django is not installed (pip install 'looseends[live]')")

VIEWS = """
import asyncio
import queue
import threading

from django.http import HttpResponse

JOBS = []


def leaky(request):
    threading.Thread(target=queue.Queue().get, daemon=True, name="report-builder").start()
    return HttpResponse("started")


def fine(request):
    done = threading.Thread(target=sum, args=((),))
    done.start()
    done.join()
    return HttpResponse("ok")


async def leaky_async(request):
    JOBS.append(asyncio.get_running_loop().create_task(asyncio.Event().wait(), name="notifier"))
    return HttpResponse("queued")
"""

URLS = """
from django.urls import path

from shop import views

urlpatterns = [
    path("leak/", views.leaky),
    path("fine/", views.fine),
    path("leak-async/", views.leaky_async),
]
"""

TESTS = """
import asyncio
import threading
import unittest
import urllib.request

from django.test import LiveServerTestCase, SimpleTestCase, TestCase


class ViewTests(SimpleTestCase):
    def test_leaky_view(self):
        self.assertEqual(self.client.get("/leak/").status_code, 200)

    def test_fine_view(self):
        self.assertEqual(self.client.get("/fine/").status_code, 200)

    async def test_leaky_async_view(self):
        response = await self.async_client.get("/leak-async/")
        self.assertEqual(response.status_code, 200)


class DatabaseTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.value = 42

    def test_nothing_started(self):
        self.assertEqual(self.value, 42)


class ServerTests(LiveServerTestCase):
    def test_the_live_server_answers(self):
        with urllib.request.urlopen(self.live_server_url + "/fine/", timeout=10) as response:
            self.assertEqual(response.read(), b"ok")


class IsolatedTests(unittest.IsolatedAsyncioTestCase):
    async def test_forgets_a_task(self):
        asyncio.get_running_loop().create_task(asyncio.Event().wait(), name="forgotten")

    async def test_awaits_its_task(self):
        await asyncio.create_task(asyncio.sleep(0))


class ClassFixtureTests(SimpleTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        threading.Thread(target=threading.Event().wait, daemon=True, name="class-fixture").start()

    def test_nothing_of_its_own(self):
        pass
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("django")
    run = [sys.executable, "-m", "django"]
    subprocess.run([*run, "startproject", "site_", str(root)], check=True, timeout=120)
    subprocess.run([*run, "startapp", "shop"], cwd=root, check=True, timeout=120)
    (root / "shop" / "views.py").write_text(VIEWS)
    (root / "shop" / "urls.py").write_text(URLS)
    (root / "shop" / "tests.py").write_text(TESTS)
    settings = root / "site_" / "settings.py"
    settings.write_text(
        settings.read_text()
        + '\nROOT_URLCONF = "shop.urls"\nINSTALLED_APPS += ["shop"]\n'
        + 'TEST_RUNNER = "looseends.frontends.django_runner.DiscoverRunner"\nLOOSEENDS = {"timeout": 0.3}\n'
    )
    return root


def manage_test(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "manage.py", "test", "--parallel", "1", *args]
    return subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=300, check=False)


def test_the_leaking_views_fail_their_tests_and_the_rest_pass(project: Path) -> None:
    result = manage_test(project, "shop", "-v", "2")
    out = result.stderr
    assert result.returncode != 0, out
    # unittest's own failure headers: its verbose "... FAIL" may come lines after the test's name, when
    # asyncio logs "Task was destroyed but it is pending!" for a task the check's collection destroyed.
    assert "FAIL: test_leaky_view (shop.tests.ViewTests.test_leaky_view)" in out, out
    assert "FAIL: test_leaky_async_view (shop.tests.ViewTests.test_leaky_async_view)" in out, out
    assert "FAIL: test_forgets_a_task (shop.tests.IsolatedTests.test_forgets_a_task)" in out, out
    clean_tests = (
        "test_fine_view",
        "test_nothing_started",
        "test_the_live_server_answers",
        "test_awaits_its_task",
    )
    for clean in (*clean_tests, "test_nothing_of_its_own"):
        assert f"{clean} (shop.tests." in out
        assert any(line.startswith(f"{clean} (") and line.endswith("... ok") for line in out.splitlines()), (
            out
        )
    # The thread's report names the view's line; the task is reported with what it waited on.
    assert "created by leaky at shop/views.py:" in out, out
    assert "threading.Thread(target=queue.Queue().get" in out
    assert "created by leaky_async at shop/views.py:" in out
    assert "then: cancelled by its runner when the event loop shut down" in out
    # asgiref's own executor behind Django's async tests is gone after a collection: not the test's leak.
    assert "executor never shut down" not in out
    assert "1 leaked unit in 1 group: 1 task" in out
    assert "created by IsolatedTests.test_forgets_a_task at shop/tests.py:" in out
    assert "FAILED (failures=3)" in out
    # What setUpClass started and tearDownClass left is the run's: reported at its end, failing the run.
    run_end = out[out.index("leaks found in: session end") :]
    assert "created by ClassFixtureTests.setUpClass at shop/tests.py:" in run_end


def test_a_baseline_lets_the_known_leaks_pass_and_a_report_records_them(project: Path) -> None:
    update = manage_test(project, "shop", "--looseends-baseline=leaks.json", "--looseends-baseline-update")
    assert update.returncode == 0, update.stderr
    # The forgotten task is a garbage cycle: read live in one run, destroyed by the collector in another,
    # sometimes with its coroutine closed first (its wait then unknown): the baseline must match it either
    # way (seen on 3.15). It lists each leaking test, and no other.
    entries = json.loads((project / "leaks.json").read_text())["leaks"]
    owners = sorted({entry["owner"] for entry in entries})
    assert owners == [
        "session end",
        "shop.tests.IsolatedTests.test_forgets_a_task",
        "shop.tests.ViewTests.test_leaky_async_view",
        "shop.tests.ViewTests.test_leaky_view",
    ], entries
    if len(entries) != len(owners):  # the 3.15 case, not reproduced since: shown if a later assert fails
        print("one test's leak written as two entries:", entries, update.stderr, sep="\n")
    again = manage_test(project, "shop", "--looseends-baseline=leaks.json", "--looseends-report=report.json")
    assert again.returncode == 0, f"{again.stderr}\nthe baseline: {entries}"
    findings = json.loads((project / "report.json").read_text())["findings"]
    assert {finding["owner"] for finding in findings if finding["baselined"]} == set(owners)


def test_parallel_workers_are_refused_with_a_clear_message(project: Path) -> None:
    command = [sys.executable, "manage.py", "test", "shop", "--parallel", "2"]
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode != 0
    assert "looseends: the checks see this process only; run with --parallel 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_class_fixtures_leak_fails_the_run_even_when_every_test_passed(project: Path) -> None:
    result = manage_test(project, "shop.tests.ClassFixtureTests")
    assert "Ran 1 test" in result.stderr
    assert "\nOK\n" in result.stderr
    assert result.returncode == 1, result.stderr
    assert "leaks found in: session end" in result.stderr


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('{"timeout": -1}', "looseends: invalid timeout=-1 from settings.LOOSEENDS"),
        ('{"colour": "red"}', "looseends: "),
        ('["timeout", 1]', "looseends: settings.LOOSEENDS must be a dict of check() options"),
    ],
)
def test_bad_settings_stop_the_run_in_one_line(project: Path, setting: str, message: str) -> None:
    (project / "site_" / "bad_settings.py").write_text(
        f"from site_.settings import *\nLOOSEENDS = {setting}\n"
    )
    result = manage_test(project, "shop.tests.ViewTests.test_fine_view", "--settings", "site_.bad_settings")
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
