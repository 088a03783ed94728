import json
import os
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from utils.paths import shared_data_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")


@pytest.fixture(scope="session")
def shared_data():
    d = shared_data_dir()
    if d is None:
        pytest.skip("../shared/data is absent (set AHA_SHARED_DATA to the shared data folder)")
    return d


@pytest.fixture(scope="session")
def qwen2_tokenizer(shared_data):
    from models.chat import load_tokenizer

    return load_tokenizer(str(shared_data / "tokenizers" / "qwen2"))


@pytest.fixture()
def tiny_model():
    from models.build import build_model

    m = build_model("aha-tiny", seed=0)
    m.eval()
    return m


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny matrices: one intra-op thread is several times faster than two on a busy 2-core runner."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class _JudgeHandler(BaseHTTPRequestHandler):
    """An OpenAI-compatible /chat/completions endpoint. Each request takes the next action of
    ``server.plan`` (else ``server.default``): "ok:<text>" answers text, "sleep:<s>" waits then
    answers "5", a number answers that HTTP error, "echo:<code>" answers that status with the request
    headers (API key included) in the reason phrase, a header and the body (for 200 also in the reply
    text), "garbage" answers 200 with a body that is not JSON."""

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_POST(self):
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        srv.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        action = srv.plan.popleft() if srv.plan else srv.default
        try:
            if action.startswith("echo:"):  # a hostile or buggy server: the request headers, key included, everywhere
                code = int(action.split(":", 1)[1])
                echoed = "; ".join(f"{k}: {v}" for k, v in self.headers.items())
                body = {"headers": dict(self.headers.items()), "error": {"message": echoed}}
                if code == 200:
                    body["choices"] = [{"message": {"role": "assistant", "content": f"4 {echoed}"}}]
                payload = json.dumps(body).encode()
                self.send_response(code, echoed.replace("\r", " ").replace("\n", " "))
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Echo", echoed)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            if action == "garbage":
                payload = b"<html>not json</html>"
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            if action.startswith("sleep:"):
                time.sleep(float(action.split(":", 1)[1]))
                action = "ok:5"
            if action.startswith("ok:"):
                payload = json.dumps({"choices": [{"message": {"role": "assistant",
                                                               "content": action[3:]}}]}).encode()
                self.send_response(200)
            else:
                payload = b'{"error": "planned failure"}'
                self.send_response(int(action))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)


@pytest.fixture()
def judge_server():
    """A local fake judge (``base_url``, ``requests`` seen, ``plan`` of actions; answers "4" by default)."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _JudgeHandler)
    srv.daemon_threads = True
    srv.plan, srv.default, srv.requests = deque(), "ok:4", []
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.base_url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
    yield srv
    srv.shutdown()
    srv.server_close()
