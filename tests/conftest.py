"""Shared test set-up: headless Chromium flags for dash_duo, and small synthetic clips."""


def pytest_setup_options():
    # Called by dash.testing to build the Chrome options; this machine has no network and no GPU.
    from selenium.webdriver.chrome.options import Options

    options = Options()
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,800",
    ):
        options.add_argument(flag)
    return options


def pytest_sessionfinish(session, exitstatus):
    # A child process left alive (a stuck background job, a run worker) would keep pytest from exiting, and CI
    # would then time out with every test passed. Name and end them, so the run ends with its real result.
    import psutil

    # multiprocess's resource tracker (started by spawned background jobs) ends by itself with this process.
    children = [c for c in psutil.Process().children(recursive=True) if "resource_tracker" not in _cmdline(c)]
    _, alive = psutil.wait_procs(children, timeout=5)
    if not alive:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    for child in alive:
        try:
            if reporter is not None:
                reporter.write_line(f"ending a process the tests left behind: {child.pid} {_cmdline(child)}")
            child.kill()
        except psutil.NoSuchProcess:
            pass


def _cmdline(process) -> str:
    import psutil

    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""
