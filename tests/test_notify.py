"""Alerts from `loan-default drift --notify URL`, end to end: a real receiver process, the installed console script, a
shifted synthetic file. The alert reaches the receiver as one JSON POST; with the receiver gone, the report is still
written, the delivery failure is stored in it and said in the output, and the exit code follows --fail-on only."""
import json, subprocess, sys, textwrap
import pytest
from conftest import CLI, BASE_ENV, SYNTHETIC_GATES, run_cli, one_line_error, free_port, wait_for, stop
from loan_default.drift import SCORE
from loan_default.profile import save_profile
from loan_default.synth import synthesize, _default_chance
from test_drift import synthetic_reference   # the drift tests' reference profile (30,000 clean synthetic rows)


# A receiver as its own process: it appends each POST (content type and body) as a JSON line to a file and answers 200.
RECEIVER = textwrap.dedent('''
    import json, sys
    from http.server import BaseHTTPRequestHandler, HTTPServer
    port, log = int(sys.argv[1]), sys.argv[2]
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a): pass
        def _answer(self, text=b"ok"):
            self.send_response(200); self.send_header("Content-Length", str(len(text))); self.end_headers(); self.wfile.write(text)
        def do_GET(self): self._answer()
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            with open(log, "a") as f: f.write(json.dumps(dict(path=self.path, type=self.headers.get("Content-Type"), body=body)) + "\\n")
            self._answer()
    HTTPServer(("127.0.0.1", port), Handler).serve_forever()
''')

@pytest.fixture
def receiver(tmp_path):
    "A receiver process on a free port: yields (url, file of received POSTs, process)."
    script, log, port = tmp_path / "receiver.py", tmp_path / "received.jsonl", free_port()
    script.write_text(RECEIVER)
    proc = subprocess.Popen([sys.executable, str(script), str(port), str(log)], start_new_session=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/", timeout=20, proc=proc)
        yield f"http://alerts:hunter2@127.0.0.1:{port}/hooks/T1", log, proc
    finally: stop(proc)

@pytest.fixture
def shifted(tmp_path, synthetic_reference):
    "A reference profile file and a scored current file whose grade mix moved (drift status alert)."
    save_profile(synthetic_reference, tmp_path / "profile.json")
    cur = synthesize(5_000, seed=15, shift="grade_mix", dirty=False)
    cur.assign(**{SCORE: _default_chance(cur)}).to_csv(tmp_path / "current.csv", index=False)
    return tmp_path / "current.csv", tmp_path / "profile.json"

def _drift(current, profile, out, *extra):
    "The installed command on `current` against `profile`, with the synthetic data's registration gates."
    return run_cli("drift", "--current", current, "--profile", profile, "--threshold", "0.4", "--no-log", "--out", out, *extra,
                   env=SYNTHETIC_GATES, timeout=300)

def _received(log) -> list[dict]:
    return [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []

def test_alert_delivered_then_not_delivered_when_the_receiver_is_down(tmp_path, receiver, shifted):
    url, log, proc = receiver
    current, profile = shifted
    r = _drift(current, profile, tmp_path / "out1", "--fail-on", "warn", "--notify", url)
    assert r.returncode == 1, r.stdout + r.stderr                      # --fail-on warn on an alert
    got = _received(log)
    assert len(got) == 1 and got[0]["type"] == "application/json" and got[0]["path"] == "/hooks/T1", got
    body = json.loads(got[0]["body"])
    assert body["status"] == "alert" and body["text"].startswith("loan-default drift ALERT:"), body["text"]
    assert "loan_grade" in body["text"] and body["rows"] == 5_000
    rep = json.loads((tmp_path / "out1" / "report.json").read_text())
    assert (tmp_path / "out1" / "report.html").is_file()
    assert rep["notification"]["delivered"] is True and rep["notification"]["attempts"] == 1 and rep["notification"]["status"] == 200
    assert "hunter2" not in rep["notification"]["url"] and "hunter2" not in r.stdout + r.stderr
    assert "T1" not in json.dumps(rep["notification"]) + r.stdout + r.stderr       # the path is the webhook's secret too
    assert "alert sent to" in r.stdout + r.stderr

    stop(proc)                                                          # the receiver is gone
    r = _drift(current, profile, tmp_path / "out2", "--fail-on", "warn", "--notify", url)
    assert r.returncode == 1, r.stdout + r.stderr                      # the same exit code: it follows --fail-on only
    assert "Traceback" not in r.stdout + r.stderr
    rep = json.loads((tmp_path / "out2" / "report.json").read_text())
    assert (tmp_path / "out2" / "report.html").is_file() and rep["status"] == "alert"
    n = rep["notification"]
    assert n["delivered"] is False and n["attempts"] == 3 and n["status"] is None and "connection refused" in n["error"], n
    assert "alert NOT delivered to" in r.stdout + r.stderr and "after 3 attempts" in r.stdout + r.stderr
    assert "hunter2" not in r.stdout + r.stderr + json.dumps(rep)
    assert len(_received(log)) == 1                                     # nothing more arrived

def test_below_the_level_nothing_is_posted_and_the_exit_code_is_unchanged(tmp_path, receiver, shifted):
    "Without --fail-on the level is 'alert'; a calm file posts nothing and exits 0, as it would without --notify."
    url, log, proc = receiver
    _, profile = shifted
    calm = synthesize(5_000, seed=12, dirty=False)
    calm.assign(**{SCORE: _default_chance(calm)}).to_csv(tmp_path / "calm.csv", index=False)
    r = _drift(tmp_path / "calm.csv", profile, tmp_path / "out", "--notify", url)
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    assert rep["status"] in ("ok", "warn") and r.returncode == 0, r.stdout + r.stderr
    assert _received(log) == [] and not (rep.get("notification") or {}).get("delivered")

def test_a_url_that_is_no_webhook_is_one_line_error(tmp_path, shifted):
    current, profile = shifted
    r = _drift(current, profile, tmp_path / "out", "--notify", "ftp://alerts:hunter2@example.org/x")
    line = one_line_error(r, "is not a webhook URL")
    assert "hunter2" not in line
