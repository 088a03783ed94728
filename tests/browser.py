"""Headless Chromium (Debian's chromium + chromium-driver, driven by selenium) for the web demo.

Used by tests/test_web_demo.py and scripts/web_screenshot.py. No browser is ever downloaded:
``find_chromium`` returns the installed binaries or None (scripts/install_browser.sh installs
them). The browser may reach only 127.0.0.1: every other host name resolves to nothing, so a
page that needs the internet fails here.
"""
from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
DRIVER_NAMES = ("chromedriver", "chromium-driver")


def find_chromium() -> tuple[str, str] | None:
    """(browser, driver) executables, or None when either is missing."""
    browser = os.environ.get("AHA_CHROMIUM") or next((p for n in CHROMIUM_NAMES if (p := shutil.which(n))), None)
    driver = os.environ.get("AHA_CHROMEDRIVER") or next((p for n in DRIVER_NAMES if (p := shutil.which(n))), None)
    return (browser, driver) if browser and driver else None


def chrome(download_dir: str | Path | None = None, width: int = 1400, height: int = 1800, fake_webcam: bool = False):
    """A headless Chromium that reaches only loopback (autoplay allowed, downloads to ``download_dir``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_chromium()
    if found is None:
        raise RuntimeError("chromium and chromedriver are not installed (bash scripts/install_browser.sh)")
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium manager: never fetch a driver
    opts = webdriver.ChromeOptions()
    opts.binary_location = found[0]
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--window-size={width},{height}",
              "--autoplay-policy=no-user-gesture-required", "--disable-extensions", "--no-first-run",
              "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        opts.add_argument(a)
    if fake_webcam:
        opts.add_argument("--use-fake-device-for-media-stream")
        opts.add_argument("--use-fake-ui-for-media-stream")
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # network requests, for requested_urls()
    if download_dir is not None:
        opts.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                               "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=opts, service=Service(found[1]))
    if download_dir is not None:
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    return driver


class DemoPage:
    """The web demo's page in one browser: what a user does and what the page shows."""

    def __init__(self, driver, url: str, shot_dir: str | Path | None = None):
        self.d = driver
        self.shot_dir = Path(shot_dir) if shot_dir is not None else None  # a screenshot is saved there on a timeout
        self.d.get(url)
        self.wait(lambda: self.d.find_elements("css selector", "#aha-run"), 60, "the page to load")

    # ------------------------------------------------------------------ doing
    def wait(self, cond, timeout: float, what: str, poll: float = 0.25):
        end = time.monotonic() + timeout
        while True:
            v = cond()
            if v:
                return v
            if time.monotonic() > end:
                shot = ""
                if self.shot_dir is not None:
                    self.shot_dir.mkdir(parents=True, exist_ok=True)
                    path = self.shot_dir / f"timeout-{time.strftime('%H%M%S')}.png"
                    self.d.save_screenshot(str(path))
                    shot = f" (screenshot: {path})"
                raise TimeoutError(f"waited {timeout:.0f} s for {what}; status {self.status()}, errors {self.errors()}{shot}")
            time.sleep(poll)

    def upload(self, path) -> None:
        clear = self.d.find_elements("css selector", "#aha-upload button[aria-label='Clear']")
        if clear:
            clear[0].click()
        inp = self.wait(lambda: self.d.find_elements("css selector", "#aha-upload input[type=file]"), 20, "the file input")
        inp[0].send_keys(str(Path(path).resolve()))
        name = Path(path).name
        self.wait(lambda: name in self.d.find_element("css selector", "#aha-upload").text.replace("\n", ""), 60,
                  f"{name} to upload")

    def set_queries(self, text: str) -> None:
        self._type("#aha-queries textarea", text)

    def _type(self, css: str, text: str) -> None:
        el = self.d.find_element("css selector", css)
        self.d.execute_script("arguments[0].value = ''; arguments[0].dispatchEvent(new Event('input', {bubbles: true}));", el)
        el.send_keys(text)

    def click(self, css: str, timeout: float = 30) -> None:
        """Click once the element is there and nothing covers it (Gradio lays a progress overlay over a busy component)."""
        from selenium.common.exceptions import ElementClickInterceptedException, ElementNotInteractableException

        def clicked():
            found = self.d.find_elements("css selector", css)
            if not found:  # not there yet
                return False
            try:
                found[0].click()
                return True
            except (ElementClickInterceptedException, ElementNotInteractableException):
                return False

        self.wait(clicked, timeout, f"{css} to be clickable")

    def tab(self, name: str) -> None:
        self.click(f"button[role=tab][data-tab-id='{name.lower()}']")

    def run(self, timeout: float = 60) -> dict:
        """Press Run; returns the status of this press (not the previous one's)."""
        before = self.status().get("run")
        self.click("#aha-run")
        return self.wait(lambda: (s := self.status()).get("run") not in (None, before) and s, timeout, "the stream to start")

    def ask(self, text: str) -> None:
        self._type("#aha-ask textarea, #aha-ask input", text)
        self.click("#aha-ask-btn")

    # ------------------------------------------------------------------ reading
    def status(self) -> dict:
        els = self.d.find_elements("css selector", "#aha-status .aha-status")
        if not els:
            return {}
        e = els[0]
        return {k: e.get_attribute(f"data-{k}") for k in ("run", "state", "frames", "t", "follow")}

    def errors(self) -> list[str]:
        return [e.text for e in self.d.find_elements("css selector", "#aha-status .aha-error")]

    def wait_for_error(self, timeout: float = 60) -> str:
        return self.wait(lambda: self.errors(), timeout, "an error in the page")[0]

    def wait_until_finished(self, timeout: float = 600) -> dict:
        def finished():
            s = self.status()
            return s if s.get("state") in ("done", "failed") else None

        return self.wait(finished, timeout, "the end of the stream", poll=0.5)

    def curve_points(self) -> dict[str, int]:
        """Vertices of each curve in the page's SVG (one per scored frame)."""
        paths = self.d.execute_script(
            "return [...document.querySelectorAll('#aha-plot g[id^=aha-curve-] path')]"
            ".map(p => [p.closest('g[id^=aha-curve-]').id, p.getAttribute('d') || ''])")
        return {gid[len("aha-curve-"):]: len(re.findall(r"[ML]", d)) for gid, d in paths}

    def listed(self, kind: str) -> list[dict]:
        """Highlights the page lists: kind 'online', 'peak' or 'segment', with their data attributes."""
        return self.d.execute_script(
            "return [...document.querySelectorAll('#aha-highlights .aha-' + arguments[0])].map(e => Object.assign({}, e.dataset))",
            kind)

    def chat(self) -> list[str]:
        return [e.text for e in self.d.find_elements("css selector", "#aha-chat [data-testid=user], #aha-chat [data-testid=bot]")]

    def download_links(self) -> dict[str, object]:
        return {a.get_attribute("download"): a for a in self.d.find_elements("css selector", "#aha-files a[download]")}

    def requested_urls(self) -> list[str]:
        """Every URL the page requested since the last call (from Chromium's performance log)."""
        import json

        urls = []
        for entry in self.d.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg.get("method") == "Network.requestWillBeSent":
                urls.append(msg["params"]["request"]["url"])
        return urls

    def player(self) -> dict | None:
        return self.d.execute_script(
            "const v = document.querySelector('#aha-player video');"
            "return v ? {time: v.currentTime, paused: v.paused, ready: v.readyState, duration: v.duration} : null")
