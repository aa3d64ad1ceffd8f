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
