"""The service's API documentation with no network: `/docs` (Swagger UI) and `/redoc` (ReDoc) of a real
`loan-default serve` process, opened in headless Chromium, list the operations from assets the service carries, and
no request leaves loopback; a built (non-editable) package serves the same assets.

Chromium resolves no host name (--host-resolver-rules) and sends everything but loopback to a closed proxy port, so a
page that needed a CDN would stay blank; its performance log holds every request the page tried, loaded or not. The
one outside URL the pages name (ReDoc's Redocly logo) is refused by the pages' Content-Security-Policy inside the
browser, before any connection: the log marks it blocked by "csp", and only such requests may name another host.
The browser tests skip when Chromium, its driver or selenium is missing, unless LD_REQUIRE_BROWSER=1 (CI sets it):
then they fail. Debian: `apt-get install -y chromium chromium-driver`."""
import json, os, shutil, subprocess, sys, types, zipfile
from pathlib import Path
from urllib.parse import urlsplit
import pytest, requests
from conftest import ROOT, chromium, free_port, stop
from test_serve import KEY, Service          # the service started as `loan-default serve` starts it

sys.path.insert(0, str(ROOT / "benchmarks"))
from serve_bench import train_registered

NAME = "serve-docs-test"
OPERATIONS = {"/predict", "/outcomes", "/health", "/ready", "/model", "/metrics", "/reason-codes", "/admin/reload"}
NO_KEYS = {"LD_API_KEYS": "", "LD_ADMIN_KEY": ""}

@pytest.fixture(scope="module")
def registry(mlflow_server, tmp_path_factory):
    "The session's `mlflow server` with one trained version of NAME at @production."
    before = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = mlflow_server
    try: assert train_registered(tmp_path_factory.mktemp("docs-model"), NAME) == "1"
    finally:
        if before is None: os.environ.pop("MLFLOW_TRACKING_URI", None)
        else: os.environ["MLFLOW_TRACKING_URI"] = before
    return types.SimpleNamespace(uri=mlflow_server)

def _service(registry, folder, **env):
    s = Service(folder, registry, LD_MODEL_NAME=NAME, **env)
    try: assert s.ready()["model"]["version"] == "1"
    except BaseException: stop(s.proc); raise
    return s

@pytest.fixture(scope="module")
def open_service(registry, tmp_path_factory):
    "The service with no key configured (a developer's machine): everything is open."
    s = _service(registry, tmp_path_factory.mktemp("open-service"), **NO_KEYS)
    yield s
    stop(s.proc)

@pytest.fixture(scope="module")
def keyed_service(registry, tmp_path_factory):
    "The service with API keys, as deployed."
    s = _service(registry, tmp_path_factory.mktemp("keyed-service"))
    yield s
    stop(s.proc)

# -- the schema, without a browser --------------------------------------------------------------------------------------

def test_the_schema_carries_examples_the_service_takes(open_service):
    schema = requests.get(f"{open_service.url}/openapi.json", timeout=30).json()
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert {"single", "batch"} <= set(body["examples"]), body.get("examples")
    assert schema["components"]["schemas"]["Applicant"]["examples"][0]["loan_grade"] in "ABCDEFG"
    for name, ex in body["examples"].items():
        r = requests.post(f"{open_service.url}/predict", json=ex["value"], timeout=30)
        assert r.status_code == 200 and len(r.json()["predictions"]) == len(ex["value"]["data"]), (name, r.text[:300])
    answer = schema["paths"]["/predict"]["post"]["responses"]["200"]["content"]["application/json"]["example"]
    assert any(p["decision"] == "decline" and p["reasons"] for p in answer["predictions"])
    error = schema["paths"]["/predict"]["post"]["responses"]["422"]["content"]["application/json"]
    assert error["schema"] == {"$ref": "#/components/schemas/ErrorBody"} and error["example"]["errors"]
    assert schema["paths"]["/outcomes"]["post"]["requestBody"]["content"]["application/json"]["examples"]

def test_the_docs_follow_the_key_rule(keyed_service, open_service):
    "With keys, the pages, the schema and the assets need one (like every endpoint but the probes); without keys, none does."
    paths = ["/docs", "/redoc", "/openapi.json", "/static/swagger-ui/swagger-ui-bundle.js", "/static/redoc/redoc.standalone.js"]
    assert [requests.get(keyed_service.url + p, timeout=30).status_code for p in paths] == [401] * 5
    assert [requests.get(keyed_service.url + p, headers={"X-API-Key": KEY}, timeout=30).status_code for p in paths] == [200] * 5
    assert [requests.get(open_service.url + p, timeout=30).status_code for p in paths] == [200] * 5
    policies = {requests.get(open_service.url + p, timeout=30).headers.get("content-security-policy") for p in ("/docs", "/redoc")}
    assert len(policies) == 1 and "default-src 'self'" in policies.pop()      # the pages may load from the service only

def test_a_built_package_serves_the_same_assets(tmp_path):
    "A wheel built from the tracked files, installed apart (not editable): its app serves the packaged copies, byte for byte."
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    subprocess.run(["tar", "-cf", str(tmp_path / "src.tar"), *[f for f in files if f and (ROOT / f).exists()]], cwd=ROOT, check=True)
    src = tmp_path / "src"; src.mkdir()
    subprocess.run(["tar", "-xf", str(tmp_path / "src.tar")], cwd=src, check=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
                   check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("loan_default-*.whl"))
    with zipfile.ZipFile(wheel) as z: assert "loan_default/static/redoc/redoc.standalone.js" in z.namelist()
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)], check=True, capture_output=True)
    code = """import hashlib, json, re, sys, warnings
sys.path.insert(0, sys.argv[1]); warnings.filterwarnings("ignore")
from fastapi.testclient import TestClient
from loan_default.config import get_settings
from loan_default.serve import STATIC_DIR, create_app
app = create_app(get_settings(model_name="m", api_keys="", admin_key="", prediction_store=f"sqlite:///{sys.argv[2]}/p.db"))
c = TestClient(app)
urls = sorted(set(re.findall(r'(?:src|href)="([^"]+)"', c.get("/docs").text + c.get("/redoc").text)))
print(json.dumps({"static": str(STATIC_DIR), "assets": {u: hashlib.sha256(c.get(u).content).hexdigest() for u in urls}}))
app.state.store.close()"""
    r = subprocess.run([sys.executable, "-c", code, str(site), str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["static"] == str(site / "loan_default" / "static")
    sums = dict(line.split("  ")[::-1] for line in (ROOT / "loan_default" / "static" / "SHA256SUMS").read_text().splitlines())
    assert len(got["assets"]) == 4 and all(got["assets"][u] == sums[u.removeprefix("/static/")] for u in got["assets"]), got

# -- a real browser with no network ------------------------------------------------------------------------------------

OFFLINE_FLAGS = ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",     # no name resolves
                 "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--window-size=1280,900"]

@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    "Headless Chromium (conftest.chromium) with no network and a log of the page's requests."
    closed = f"--proxy-server=http://127.0.0.1:{free_port()}"        # any other address goes to a closed port (loopback bypasses proxies)
    driver = chromium(tmp_path_factory.mktemp("chromium-profile"), OFFLINE_FLAGS + [closed], page_timeout=60, log_requests=True)
    yield driver
    driver.quit()

def _wait(driver, condition, timeout=45):
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout).until(condition)

def _requested(driver) -> dict[str, str | None]:
    "Every URL the page asked for since the last call, and why the browser blocked it (None: not blocked), from Chromium's performance log."
    events = [json.loads(e["message"])["message"] for e in driver.get_log("performance")]
    blocked = {e["params"]["requestId"]: e["params"].get("blockedReason") for e in events if e["method"] == "Network.loadingFailed"}
    return {e["params"]["request"]["url"]: blocked.get(e["params"]["requestId"]) for e in events if e["method"] == "Network.requestWillBeSent"}

def _outside(requested: dict, service_url: str) -> list[str]:
    "The URLs that went out to another host: not the service, not local to the browser (data:, blob:, about:, chrome:), not refused by the CSP."
    ours = urlsplit(service_url).netloc
    return [u for u, why in requested.items()
            if urlsplit(u).scheme not in ("data", "blob", "about", "chrome") and urlsplit(u).netloc != ours and why != "csp"]

def _open(driver, url: str) -> None:
    driver.get("about:blank"); _requested(driver)          # forget what came before
    driver.get(url)

def test_browser_swagger_ui_lists_the_operations_offline(browser, open_service, tmp_path):
    from selenium.webdriver.common.by import By
    _open(browser, f"{open_service.url}/docs")
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")) >= len(OPERATIONS))
    browser.save_screenshot(str(tmp_path / "docs.png"))
    paths = {e.get_attribute("data-path") for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert OPERATIONS <= paths, paths
    assert "loan_default prediction service" in browser.find_element(By.CSS_SELECTOR, ".info .title").text
    post = browser.find_element(By.CSS_SELECTOR, ".opblock-post")          # styled: the packaged CSS is applied
    assert browser.execute_script("return getComputedStyle(arguments[0]).backgroundColor", post) not in ("", "rgba(0, 0, 0, 0)")
    predict = next(e for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path") if e.get_attribute("data-path") == "/predict")
    predict.click()                                                        # the body's example, shown as the request to try
    _wait(browser, lambda d: "app-2026-000417" in d.find_element(By.CSS_SELECTOR, ".opblock.is-open").text)
    urls = _requested(browser)
    assert any(u.endswith("/static/swagger-ui/swagger-ui-bundle.js") for u in urls) and any(u.endswith("/openapi.json") for u in urls), urls
    assert not _outside(urls, open_service.url), urls

def test_browser_redoc_lists_the_operations_offline(browser, open_service, tmp_path):
    from selenium.webdriver.common.by import By
    _open(browser, f"{open_service.url}/redoc")
    _wait(browser, lambda d: "/reason-codes" in d.find_element(By.TAG_NAME, "body").text)
    browser.save_screenshot(str(tmp_path / "redoc.png"))
    text = browser.find_element(By.TAG_NAME, "body").text
    assert all(p in text for p in OPERATIONS), [p for p in OPERATIONS if p not in text]
    assert "Score applications" in text and "app-2026-000417" in browser.page_source   # a summary; the request example (folded JSON)
    urls = _requested(browser)
    assert any(u.endswith("/static/redoc/redoc.standalone.js") for u in urls) and any(u.endswith("/openapi.json") for u in urls), urls
    assert not _outside(urls, open_service.url), urls

def test_browser_docs_of_a_keyed_service(browser, keyed_service):
    "With keys the docs need one: a browser without it gets the 401 body; one that sends X-API-Key (an extension does) gets the page."
    from selenium.webdriver.common.by import By
    _open(browser, f"{keyed_service.url}/docs")
    assert "unauthorized" in browser.find_element(By.TAG_NAME, "body").text
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"X-API-Key": KEY}})
    try:
        _open(browser, f"{keyed_service.url}/docs")
        _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")) >= len(OPERATIONS))
        assert not _outside(_requested(browser), keyed_service.url)
    finally:
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
