"""Model server: `python3 -m substratus_reference.serve`.

Serves the model mounted at `/content/model/` over HTTP on `$HOST:$PORT` (default `0.0.0.0:8080`):
- `GET /` -> `{"status": "ok", "model": <name>}` (also the readiness probe);
- `GET /v1/models` -> an OpenAI-style model list;
- `POST /v1/completions` with `{"prompt": str, "max_tokens": int >= 0 (default 16)}` -> an OpenAI-style
  `text_completion` (other request fields, such as `model`, are ignored); a body that is not such a JSON
  object -> 400 with `{"error": {"message", "type"}}`.
A missing or invalid model at start-up fails with a clear message (exit 1). SIGTERM (and SIGINT) stop the
server promptly with exit 0. Every request is logged as one line on stdout.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

from . import contract, lm

MAX_BODY = 1 << 20


class ModelServer(ThreadingHTTPServer):
    """A threading HTTP server holding the model it serves."""

    def __init__(self, address: tuple[str, int], name: str, model: lm.Model) -> None:
        super().__init__(address, Handler)
        self.model_name = name
        self.model = model


class Handler(BaseHTTPRequestHandler):
    """The three endpoints; every response is JSON."""

    server: ModelServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        """`/` and `/v1/models`."""
        if self.path == "/":
            self.reply(HTTPStatus.OK, {"status": "ok", "model": self.server.model_name})
        elif self.path == "/v1/models":
            entry = {"id": self.server.model_name, "object": "model", "created": 0, "owned_by": "substratus"}
            self.reply(HTTPStatus.OK, {"object": "list", "data": [entry]})
        else:
            self.error(HTTPStatus.NOT_FOUND, f"no such endpoint: GET {self.path}")

    def do_POST(self) -> None:
        """`/v1/completions`."""
        if self.path != "/v1/completions":
            self.error(HTTPStatus.NOT_FOUND, f"no such endpoint: POST {self.path}")
            return
        request = self.read_json()
        if request is None:
            return
        prompt, max_tokens = request.get("prompt"), request.get("max_tokens", 16)
        if not isinstance(prompt, str):
            self.error(HTTPStatus.BAD_REQUEST, "'prompt' must be a string")
            return
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0:
            self.error(HTTPStatus.BAD_REQUEST, "'max_tokens' must be an integer >= 0")
            return
        completion = lm.complete(self.server.model, prompt, max_tokens)
        prompt_tokens = len(lm.tokens(prompt))
        self.reply(
            HTTPStatus.OK,
            {
                "id": f"cmpl-{uuid.uuid4().hex}",
                "object": "text_completion",
                "created": int(time.time()),
                "model": self.server.model_name,
                "choices": [{"index": 0, "text": completion.text, "finish_reason": completion.finish_reason}],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion.tokens,
                    "total_tokens": prompt_tokens + completion.tokens,
                },
            },
        )

    def read_json(self) -> dict[str, Any] | None:
        """The request body as a JSON object, or None after replying 400/413."""
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True  # the body is not read: the connection cannot be reused
            code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE if length > MAX_BODY else HTTPStatus.BAD_REQUEST
            self.error(code, "bad Content-Length")
            return None
        try:
            body = json.loads(self.rfile.read(length) or b"null")
        except ValueError as exc:
            self.error(HTTPStatus.BAD_REQUEST, f"the body is not valid JSON: {exc}")
            return None
        if not isinstance(body, dict):
            self.error(HTTPStatus.BAD_REQUEST, "the body must be a JSON object with a 'prompt'")
            return None
        return body

    def reply(self, status: HTTPStatus, document: dict[str, Any]) -> None:
        """Send `document` as a JSON response."""
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def error(self, status: HTTPStatus, message: str) -> None:
        """An OpenAI-style error response."""
        self.reply(status, {"error": {"message": message, "type": "invalid_request_error"}})

    def log_message(self, format: str, *args: Any) -> None:
        """One line per request on stdout (the base class writes to stderr)."""
        contract.log(f"{self.address_string()} {format % args}")


def load_model(directory: Path) -> tuple[str, lm.Model]:
    """The model's name and weights; any problem is a ContractError (exit 1: the Server cannot start)."""
    try:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        model = lm.load(directory)
    except FileNotFoundError as exc:
        raise contract.ContractError(
            f"no model in {directory} ({Path(str(exc.filename)).name} missing)", contract.FAILURE
        ) from exc
    except (OSError, ValueError) as exc:
        raise contract.ContractError(f"invalid model in {directory}: {exc}", contract.FAILURE) from exc
    name = config.get("name") if isinstance(config, dict) else None
    if not isinstance(name, str):
        raise contract.ContractError(f"invalid model in {directory}: config.json has no 'name'", contract.FAILURE)
    return name, model


def main() -> None:
    """Load the model, listen, serve until SIGTERM/SIGINT."""
    name, model = load_model(contract.model_dir())
    host = os.environ.get("HOST") or "0.0.0.0"
    port_text = os.environ.get("PORT") or "8080"
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise contract.ContractError(f"PORT must be a TCP port number, got {port_text!r}")
    try:
        server = ModelServer((host, int(port_text)), name, model)
    except OSError as exc:
        raise contract.ContractError(
            f"cannot listen on {host}:{port_text}: {exc.strerror or exc}", contract.FAILURE
        ) from exc

    def stop(signum: int, _frame: FrameType | None) -> None:
        contract.log(f"received {signal.Signals(signum).name}, shutting down")
        threading.Thread(target=server.shutdown).start()  # shutdown() waits for serve_forever: not in its thread

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    contract.log(f"serving {name} on http://{host}:{port_text}")
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    contract.log("stopped")


if __name__ == "__main__":
    contract.run(main)
