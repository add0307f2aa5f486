"""The pages in a real browser: Debian's Chromium driven by Selenium against the service on a
loopback port. A reviewer logs in, uploads the bundled meeting record for review, merges,
splits, moves, edits and confirms with the keyboard and the mouse, reloads (the state is kept),
finishes into the memory, and finds the corrected unit through the search page.

Screenshots of the editor, the search page, the concordance and the docs go to the test's
temporary folder (pytest keeps the last runs' under its basetemp).
Without chromium and chromium-driver the test is skipped with how to install them; with ``CI``
set it fails instead (``.ci/run`` installs them).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
import uvicorn

from service.config import Settings
from service.web.app import create_app

KEY = "browser-key-1"
ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "aligner" / "samples"
INSTALL = ("apt-get install -y chromium chromium-driver fonts-noto-cjk && "
           "pip install selenium")


def _browser_paths() -> tuple[str, str]:
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        chrome = None
    if not (chrome and driver):
        message = f"needs Chromium, chromium-driver and selenium: {INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return chrome, driver


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("browser") / "data", api_key=KEY,
                        encoder="none")
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(300):
        if server.started:
            break
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)


@pytest.fixture(scope="module")
def browser():
    chrome, driver_path = _browser_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="concordia-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chrome
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                "--window-size=1400,1000", "--lang=en-US"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


def _no_csp_violations(driver) -> None:
    """The pages work under their Content-Security-Policy: Chromium logged no violation."""
    logged = [e["message"] for e in driver.get_log("browser")]
    assert not [m for m in logged if "Content Security Policy" in m], logged


def _wait(driver, condition, timeout: float = 30):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # the editor redraws its rows after every change: elements found before it may go stale
    wait = WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,))
    return wait.until(condition)


def test_review_in_the_browser_then_find_it(server, browser, artifacts):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver = browser
    css = By.CSS_SELECTOR

    def beads():
        return driver.find_elements(css, "#beads .bead")

    def version() -> int:
        return int(driver.find_element(css, "#summary").text.split("version ")[1].split()[0])

    def press(keys: str) -> None:
        before = version()
        ActionChains(driver).send_keys(keys).perform()
        _wait(driver, lambda d: version() == before + 1)

    def select(index: int) -> None:
        driver.find_elements(css, "#beads .bead .meta")[index].click()

    def texts(index: int) -> tuple[str, str]:
        row = beads()[index]
        return (row.find_element(css, ".side.zh").text, row.find_element(css, ".side.en").text)

    # log in and open the sample meeting record for review from an upload
    driver.get(server + "/review")
    driver.find_element(css, "a[href^='/login']").click()
    driver.find_element(css, "input[name=key]").send_keys(KEY)
    driver.find_element(css, "form[action='/login'] button").click()
    # the login page's own address (/login?next=/review) ends the same: wait for the page
    _wait(driver, lambda d: d.find_elements(css, "input[name=zh]"))
    driver.find_element(css, "input[name=zh]").send_keys(str(SAMPLES / "meeting.zh.txt"))
    driver.find_element(css, "input[name=en]").send_keys(str(SAMPLES / "meeting.en.txt"))
    driver.find_element(css, "input[name=name]").send_keys("S/PV.9999")
    driver.find_element(css, "#review-upload button").click()
    _wait(driver, lambda d: "/review/" in d.current_url, timeout=120)
    _wait(driver, lambda d: len(beads()) > 5)
    headings = [h.text for h in driver.find_elements(css, ".section > h2")]
    assert any("Rycroft" in h and "里克罗夫特" in h for h in headings), headings
    start = len(beads())

    # the first pair of the United Kingdom's turn: merge with the next, split back
    uk = next(i for i, b in enumerate(beads()) if "I thank you, Mr. President" in b.text)
    zh0, en0 = texts(uk)
    zh1, en1 = texts(uk + 1)
    select(uk)
    press("m")
    assert len(beads()) == start - 1
    assert texts(uk)[1].startswith(en0) and en1 in texts(uk)[1]
    ActionChains(driver).send_keys("s").perform()
    _wait(driver, lambda d: d.find_element(css, "#split-dialog").is_displayed())
    # a split after the last sentence would leave nothing: no button offers it
    ends = driver.find_elements(css, "#split-en-ends button")
    assert [b.text for b in ends] == ["after sentence 1"]
    before = version()
    driver.find_element(css, "#split-dialog button[value=ok]").click()
    _wait(driver, lambda d: version() == before + 1)
    assert len(beads()) == start and texts(uk) == (zh0, en0) and texts(uk + 1) == (zh1, en1)

    # unpair: two sentences without a counterpart, no score and not "edited"; undo
    press("u")
    metas = [m.text for m in driver.find_elements(css, "#beads .bead .meta")[uk:uk + 2]]
    assert metas == ["", ""], metas
    assert all("unpaired" in b.get_attribute("class") for b in beads()[uk:uk + 2])
    driver.find_element(css, "[data-op=undo]").click()
    _wait(driver, lambda d: texts(uk) == (zh0, en0))

    # move the last Chinese sentence to the next pair, and back with the toolbar
    press("]")
    assert texts(uk)[0] != zh0 and len(texts(uk + 1)[0]) > len(zh1)
    driver.find_element(css, "[data-op=undo]").click()
    _wait(driver, lambda d: texts(uk) == (zh0, en0))

    # edit the English side (double click opens the editor), confirm it, confirm one more
    ActionChains(driver).double_click(beads()[uk].find_element(css, ".side.en")).perform()
    _wait(driver, lambda d: d.find_element(css, "#edit-dialog").is_displayed())
    corrected = "Thank you, Mr. President, for convening this timely meeting."
    area = driver.find_element(css, "#edit-en")
    area.clear()
    area.send_keys(corrected)
    before = version()
    driver.find_element(css, "#edit-dialog button[value=ok]").click()
    _wait(driver, lambda d: version() == before + 1)
    assert texts(uk)[1] == corrected
    press("c")

    # a pasted 100,000-character text: refused with a message, the dialog back with the text
    saved = version()
    ActionChains(driver).send_keys("e").perform()
    _wait(driver, lambda d: d.find_element(css, "#edit-dialog").is_displayed())
    driver.execute_script("document.getElementById('edit-zh').value = '长'.repeat(100000)")
    driver.find_element(css, "#edit-dialog button[value=ok]").click()
    _wait(driver, lambda d: "at most 2,000" in d.find_element(css, "#message").text)
    _wait(driver, lambda d: d.find_element(css, "#edit-dialog").is_displayed())
    assert len(driver.find_element(css, "#edit-zh").get_attribute("value")) == 100_000
    driver.find_element(css, "#edit-dialog button[value=cancel]").click()
    assert version() == saved and texts(uk) == (zh0, corrected)
    select(uk + 1)
    driver.find_element(css, "[data-op=confirm]").click()
    _wait(driver, lambda d: "confirmed" in beads()[uk + 1].get_attribute("class"))
    driver.save_screenshot(str(artifacts / "editor.png"))

    # a reload shows what the server kept
    saved = version()
    driver.refresh()
    _wait(driver, lambda d: len(beads()) == start)
    assert version() == saved and texts(uk)[1] == corrected
    assert "confirmed" in beads()[uk].get_attribute("class")

    # finish into the memory
    driver.find_element(css, "[data-op=finish]").click()
    box = driver.find_element(css, "#finish-memory")
    label = box.find_element(By.XPATH, "..")
    assert label.text == "add the confirmed pairs to the memory"
    beside = driver.execute_script("""
        const box = arguments[0].getBoundingClientRect(), range = document.createRange();
        range.selectNodeContents(arguments[1]);
        const text = [...range.getClientRects()].pop();
        return [box.right <= text.left + 1, Math.abs((box.top + box.bottom) / 2 -
                (text.top + text.bottom) / 2)];""", box, label)
    assert beside[0] and beside[1] < 6, beside  # on the text's line, before it
    driver.find_element(css, "#finish-dialog button[value=ok]").click()
    _wait(driver, lambda d: d.find_elements(css, "#finished-tmx"))
    assert "2 confirmed pairs" in driver.find_element(css, "#message").text

    # the corrected unit is found by the search page, reviewed
    driver.get(server + "/search")
    driver.find_element(css, "textarea[name=q]").send_keys(zh0)
    driver.find_element(css, "form.search button").click()
    _wait(driver, lambda d: d.find_elements(css, "li.match"))
    top = driver.find_elements(css, "li.match")[0]
    assert corrected in top.text and "100%" in top.text
    assert "reviewed by env" in top.text and "S/PV.9999" in top.text
    driver.save_screenshot(str(artifacts / "search.png"))

    # a pasted 100,000-character query is not sent; the text stays in the box
    box = driver.find_element(css, "textarea[name=q]")
    driver.execute_script("arguments[0].value = 'x'.repeat(100000)", box)
    driver.find_element(css, "form.search button").click()
    note = _wait(driver, lambda d: d.find_element(css, "#search-too-long"))
    _wait(driver, lambda d: note.is_displayed())
    assert "100,000 characters" in note.text and "at most 2,000" in note.text

    # a near match: the differences and the number that differs are shown
    changed = "共有河流为该区域7000多万人提供饮用水。"
    driver.get(server + "/search?" + urlencode({"q": changed, "min_fuzzy": 50}))
    top = _wait(driver, lambda d: d.find_elements(css, "li.match"))[0]
    assert [e.text for e in top.find_elements(css, "ins")] == ["6"]
    assert "differs: 7000 ≠ 6000" in top.text
    driver.save_screenshot(str(artifacts / "search-fuzzy.png"))

    # edit that unit from the search page (PATCH with the version it was read at)
    top.find_element(css, "[data-edit-unit]").click()
    _wait(driver, lambda d: d.find_element(css, "#unit-dialog").is_displayed())
    area = driver.find_element(css, "#unit-en")
    area.clear()
    area.send_keys("Shared rivers supply drinking water to over 60 million people.")
    driver.find_element(css, "#unit-save").click()
    _wait(driver, lambda d: not d.find_element(css, "#unit-dialog").is_displayed())
    driver.refresh()
    top = _wait(driver, lambda d: d.find_elements(css, "li.match"))[0]
    assert "to over 60 million people." in top.text
    _no_csp_violations(driver)


def test_memory_page_imports_a_tmx(server, browser, tmp_path):
    """The import form sends the file with the page's CSRF token and follows the import job."""
    from selenium.webdriver.common.by import By

    from aligner.models import TranslationUnit
    from aligner.tmx import write_tmx

    tmx = tmp_path / "small.tmx"
    write_tmx(tmx, [TranslationUnit("安全理事会今天开会。", "The Security Council met today."),
                    TranslationUnit("会议于上午10时开始。", "The meeting began at 10 a.m.")])
    browser.get(server + "/login?next=/memory")
    browser.find_element(By.CSS_SELECTOR, "input[name=key]").send_keys(KEY)
    browser.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#import-form input[type=file]"))
    browser.find_element(By.CSS_SELECTOR, "#import-form input[type=file]").send_keys(str(tmx))
    browser.find_element(By.CSS_SELECTOR, "#import-form button").click()
    status = browser.find_element(By.CSS_SELECTOR, "#import-status")
    _wait(browser, lambda d: status.text.startswith(("imported", "not imported")))
    assert status.text.startswith("imported 2"), status.text
    _no_csp_violations(browser)


def test_api_docs_render_offline(server, browser, artifacts):
    """Swagger UI draws the OpenAPI 3.1 document from assets the service itself serves."""
    from selenium.webdriver.common.by import By

    browser.get(server + "/docs")
    title = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".swagger-ui .info .title"))
    assert "Concordia" in title[0].text
    assert browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")  # the routes
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(url.startswith(server) for url in loaded), loaded
    browser.save_screenshot(str(artifacts / "docs.png"))
    _no_csp_violations(browser)


def test_concordance_and_fonts_as_drawn(server, browser, artifacts):
    """The left context of a Chinese hit is cut at its start, never next to the term; English
    is drawn in a Latin font (a CJK font draws ’ full-width)."""
    from selenium.webdriver.common.by import By

    from aligner.models import TranslationUnit
    from aligner.tmx import tmx_chunks

    long_zh = "安全理事会成员面前摆着文件S/2026/412，其中载有一封关于中亚地区跨界水资源合作的信。"
    units = [TranslationUnit(long_zh, "Members of the Council’s have before them a letter.")]
    data = b"".join(tmx_chunks(units))
    import httpx

    job = httpx.post(server + "/tm/import", files={"file": ("c.tmx", data)},
                     headers={"X-API-Key": KEY}).json()
    _wait(browser, lambda d: httpx.get(f"{server}/jobs/{job['id']}").json()["state"] == "done")
    browser.get(server + "/concordance?term=水资源")
    left = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "table.kwic td.left"))[0]
    text = left.find_element(By.CSS_SELECTOR, "span")
    cell, inner = browser.execute_script(
        "return [arguments[0].getBoundingClientRect(), arguments[1].getBoundingClientRect()]",
        left, text)
    assert inner["width"] > cell["width"]  # the context is wider than its column
    assert inner["right"] <= cell["right"] + 1  # its end, next to the term, is shown
    assert inner["left"] < cell["left"]  # its start is what is cut
    browser.save_screenshot(str(artifacts / "concordance-zh.png"))
    widths = browser.execute_script("""
        const probe = (el) => { const s = document.createElement('span');
          s.textContent = '’’’’’’’’’’'; el.appendChild(s);
          const w = s.getBoundingClientRect().width / parseFloat(getComputedStyle(s).fontSize);
          s.remove(); return w; };
        return [probe(document.querySelector('table.kwic td.other')),
                probe(document.querySelector('table.kwic td.hit'))];""")
    english, chinese = widths
    assert english < 4, widths  # ten Latin apostrophes: under half an em each
    assert chinese > english  # the Chinese cell still uses the CJK font's wide one
