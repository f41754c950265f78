"""A pytest plugin (loaded by tests/conftest.py): skips CI does not expect fail the run.

A test that skips silently passes CI while testing nothing (Chromium or a package missing,
a service not configured). CI runs with ``--fail-on-skip``: any skip whose reason contains
none of the ``--allow-skip`` texts fails the run, and the summary lists them."""

_UNEXPECTED = []
_WORKER = []  # non-empty in a pytest-xdist worker: its reports reach the controller, which decides


def pytest_configure(config):
    if hasattr(config, "workerinput"):
        _WORKER.append(True)


def pytest_addoption(parser):
    group = parser.getgroup("skips")
    group.addoption("--fail-on-skip", action="store_true",
                    help="fail the run when a test skips for a reason not allowed by --allow-skip")
    group.addoption("--allow-skip", action="append", default=[], metavar="TEXT",
                    help="a skip whose reason contains TEXT is expected (repeatable)")


def _skip_reason(report):
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def pytest_runtest_logreport(report):
    if _WORKER:
        return
    if report.skipped and not hasattr(report, "wasxfail"):
        _UNEXPECTED.append((report.nodeid, _skip_reason(report)))


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if _WORKER or not config.getoption("--fail-on-skip"):
        return
    allowed = config.getoption("--allow-skip")
    unexpected = [(node, why) for node, why in _UNEXPECTED if not any(text in why for text in allowed)]
    _UNEXPECTED[:] = unexpected
    if unexpected and session.exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if config.getoption("--fail-on-skip") and _UNEXPECTED:
        terminalreporter.section("skips CI does not expect (--fail-on-skip)", red=True)
        for node, why in _UNEXPECTED:
            terminalreporter.line(f"{node}: {why}")
