"""Driving the demo page (tools/serve.py) in a headless Chromium through
Selenium (https://www.selenium.dev/documentation/webdriver/): the browser
test (tests/tools/test_serve_browser.py) and the docs' screenshot
(tools/serve_screenshot.py) share this.

Chromium and its driver are Debian's packages (``tools/setup_browser.sh``
installs them); Selenium is given both paths, so its driver manager never
looks for a download.
"""
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = os.environ.get("VLCORE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("VLCORE_CHROMEDRIVER", "/usr/bin/chromedriver")
# Headless, and nothing that reaches out to the network on its own (without
# the background-networking flags a closed network refuses connections).
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,1100")


def missing():
    """Why the browser cannot run here ("" if it can)."""
    gone = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    return f"{' and '.join(gone)} not installed (bash tools/setup_browser.sh installs them)" if gone else ""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(config, checkpoint, port, log_path, extra=()):
    """``tools/serve.py`` as a subprocess, its output in ``log_path``."""
    cmd = [sys.executable, os.path.join(ROOT, "tools", "serve.py"), "-c", config,
           "-o", f"Global.checkpoint={checkpoint}", "--port", str(port), *extra]
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    log = open(log_path, "w")
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_ready(proc, url, log_path, timeout=180):
    """Until ``url`` answers; an error with the server's log if it exits or
    does not answer in time."""
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"tools/serve.py exited ({proc.returncode}):\n{open(log_path).read()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"tools/serve.py did not answer {url} in {timeout} s:\n{open(log_path).read()[-3000:]}")


def stop_server(proc):
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def browser(profile_dir=None):
    """A headless Chromium with a new empty profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={profile_dir or tempfile.mkdtemp(prefix='serve-chromium-')}")
    return webdriver.Chrome(options=opts, service=Service(executable_path=CHROMEDRIVER))


def _wait(driver, predicate, timeout, what):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait
    # the page re-renders while it is read: a vanished element means "look again"
    return WebDriverWait(driver, timeout, poll_frequency=0.25,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(
        lambda d: predicate(d), message=f"timed out waiting for {what}")


def open_tab(driver, url, title, timeout=60):
    from selenium.webdriver.common.by import By
    if driver.current_url.rstrip("/") != url.rstrip("/"):
        driver.get(url)
    xpath = f"//button[@role='tab'][contains(., '{title}')]"
    _wait(driver, lambda d: d.find_element(By.XPATH, xpath), timeout, f"the tab {title!r}").click()


def table_rows(driver, elem_id):
    """The cells' text of each body row of the Gradio Dataframe ``elem_id``
    (Gradio 6 draws it as ARIA grid rows; the header row has no gridcells)."""
    from selenium.webdriver.common.by import By
    rows = driver.find_elements(By.CSS_SELECTOR, f"#{elem_id} [role=row]")
    cells = [[c.text.strip() for c in r.find_elements(By.CSS_SELECTOR, "[role=gridcell]")] for r in rows]
    return [c for c in cells if c and any(c)]


def clear_and_type(box, text):
    """Replace a text box's content the way a user does (Svelte's bound value
    follows key events, not WebElement.clear())."""
    from selenium.webdriver.common.keys import Keys
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    if text:
        box.send_keys(text)


def search(driver, url, caption, timeout=60):
    """Type ``caption`` in "Caption → images", press search: ``(rows of the
    results table, the tab's message)`` once either appears."""
    from selenium.webdriver.common.by import By
    open_tab(driver, url, "Caption → images")
    box = _wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, "#search-caption textarea"), timeout,
                "the caption box")
    clear_and_type(box, caption)
    before = table_rows(driver, "search-table")
    driver.find_element(By.ID, "search-button").click()

    def done(d):
        rows = table_rows(d, "search-table")
        message = d.find_element(By.ID, "search-message").text.strip()
        return (rows, message) if (rows and rows != before) or message else None
    return _wait(driver, done, timeout, "search results or a message")
