"""The processes tests and benchmarks start: a free loopback port, waiting until a URL answers, stopping a process group.

tests/conftest.py and the benchmarks import these (benchmarks/ is on their path), so both start and stop servers alike."""
import os, signal, subprocess, time

def free_port() -> int:
    "A TCP port on 127.0.0.1 that nothing listens on now."
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

def wait_for(url: str, timeout: float = 60, proc=None) -> None:
    "Poll `url` until it answers 200, failing early if `proc` died."
    import requests
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None: raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if requests.get(url, timeout=2).status_code == 200: return
        except requests.RequestException: pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout} s")

def stop(proc: subprocess.Popen) -> None:
    "Stop a process we started (with start_new_session=True), by its PID: its whole process group, SIGTERM then SIGKILL."
    if proc.poll() is None:
        try: os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError: return
        try: proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL); proc.wait()
