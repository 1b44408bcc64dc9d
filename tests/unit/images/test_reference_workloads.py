"""The reference workload images' programs (images/reference), run for real as subprocesses on the host.

Each run gets its own content dir (SUBSTRATUS_CONTENT_DIR) with params.json and PARAM_* rendered by the
operator's own `render.params`, so the workloads are checked against exactly what the operator mounts.
HOME, HF_HOME, XDG_CACHE_HOME and TMPDIR point into tmp_path, like the operator's emptyDirs.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from substratus_controller.render.params import param_env, params_json

REFERENCE = Path(__file__).resolve().parents[3] / "images" / "reference"
SQUAD_ROWS = 40


def _import_lm() -> ModuleType:
    """`substratus_reference.lm`, imported without leaving __pycache__ in the image's build context."""
    saved = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    sys.path.insert(0, str(REFERENCE))
    try:
        return importlib.import_module("substratus_reference.lm")
    finally:
        sys.path.remove(str(REFERENCE))
        sys.dont_write_bytecode = saved


lm = _import_lm()


@dataclass
class Run:
    """One finished workload run."""

    proc: subprocess.CompletedProcess[str]
    content: Path
    termination_log: Path

    @property
    def artifacts(self) -> Path:
        return self.content / "artifacts"

    def json(self, name: str) -> Any:
        return json.loads((self.artifacts / name).read_text())

    def files(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(self.artifacts.iterdir())}


@dataclass
class Workspace:
    """Runs workloads with the container contract laid out under `root` (one content dir per run)."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)
    runs: int = 0

    def __post_init__(self) -> None:
        home = self.root / "home"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(REFERENCE),
            "PYTHONDONTWRITEBYTECODE": "1",
            "SUBSTRATUS_CORPORA_DIR": str(REFERENCE / "corpora"),
            "SUBSTRATUS_BASE_TEXT": str(REFERENCE / "base-text.txt"),
            "HOME": str(home),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "HF_HOME": str(home / ".cache" / "huggingface"),
            "TMPDIR": str(self.root / "tmp"),
        }
        (self.root / "tmp").mkdir()
        home.mkdir()

    def prepare(
        self, params: dict[str, int | str], data: Path | None = None, model: Path | None = None
    ) -> tuple[Path, dict[str, str]]:
        """A fresh content dir with params.json, the mounts copied in, and the matching environment."""
        self.runs += 1
        content = self.root / f"run-{self.runs}" / "content"
        content.mkdir(parents=True)
        (content / "params.json").write_text(params_json(params))
        for mount, source in (("data", data), ("model", model)):
            if source is not None:
                shutil.copytree(source, content / mount)
        env = dict(self.env)
        env["SUBSTRATUS_CONTENT_DIR"] = str(content)
        env["SUBSTRATUS_TERMINATION_LOG"] = str(content.parent / "termination-log")
        (content.parent / "termination-log").touch()
        env.update({var["name"]: str(var.get("value", "")) for var in param_env(params)})
        return content, env

    def run(
        self,
        module: str,
        params: dict[str, int | str],
        *,
        data: Path | None = None,
        model: Path | None = None,
        env: dict[str, str | None] | None = None,
    ) -> Run:
        content, full_env = self.prepare(params, data, model)
        for key, value in (env or {}).items():
            if value is None:
                full_env.pop(key, None)
            else:
                full_env[key] = value
        proc = subprocess.run(
            [sys.executable, "-m", f"substratus_reference.{module}"],
            env=full_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return Run(proc, content, content.parent / "termination-log")

    def ok(self, module: str, params: dict[str, int | str], **kwargs: Any) -> Run:
        run = self.run(module, params, **kwargs)
        assert run.proc.returncode == 0, run.proc.stderr
        assert run.proc.stderr == ""
        return run


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


def assert_failed(run: Run, code: int, *fragments: str) -> str:
    """The run exited `code` with one clear `error:` line naming every fragment, also in the termination log."""
    assert run.proc.returncode == code, (run.proc.stdout, run.proc.stderr)
    assert "Traceback" not in run.proc.stderr
    lines = run.proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    message = lines[0].removeprefix("error: ")
    for fragment in fragments:
        assert fragment in message
    assert run.termination_log.read_text() == message + "\n"
    return message


# --- loader -----------------------------------------------------------------------------------------------


def test_loader_writes_rows_manifest_and_hf_cache(ws: Workspace) -> None:
    run = ws.ok("load", {"name": "squad"})
    data = (run.artifacts / "data.jsonl").read_bytes()
    rows = [json.loads(line) for line in data.splitlines()]
    assert len(rows) == SQUAD_ROWS
    assert all(set(row) == {"id", "title", "context", "question", "answers"} for row in rows)
    assert len({row["id"] for row in rows}) == SQUAD_ROWS
    assert run.json("manifest.json") == {
        "name": "squad",
        "rows": SQUAD_ROWS,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    cached = Path(ws.env["HF_HOME"]) / "datasets" / "squad" / "data.jsonl"
    assert cached.read_bytes() == (REFERENCE / "corpora" / "squad.jsonl").read_bytes()
    # Nothing written in the content dir outside artifacts/.
    assert sorted(p.relative_to(run.content).as_posix() for p in run.content.rglob("*")) == [
        "artifacts",
        "artifacts/data.jsonl",
        "artifacts/manifest.json",
        "params.json",
    ]


def test_loader_limit_keeps_first_rows(ws: Workspace) -> None:
    full = ws.ok("load", {"name": "squad"})
    limited = ws.ok("load", {"name": "squad", "limit": 5})
    assert (limited.artifacts / "data.jsonl").read_text().splitlines() == (
        (full.artifacts / "data.jsonl").read_text().splitlines()[:5]
    )
    manifest = limited.json("manifest.json")
    assert manifest["rows"] == 5
    assert manifest["sha256"] != full.json("manifest.json")["sha256"]


def test_loader_other_corpus(ws: Workspace) -> None:
    trivia = ws.ok("load", {"name": "trivia"}).json("manifest.json")
    assert trivia["name"] == "trivia"
    assert 0 < trivia["rows"] != SQUAD_ROWS


def test_unknown_corpus_exits_2_listing_the_corpora(ws: Workspace) -> None:
    run = ws.run("load", {"name": "imagenet"})
    assert_failed(run, 2, "unknown corpus 'imagenet'", "squad, trivia")


@pytest.mark.parametrize(
    ("params", "env", "fragments"),
    [
        ({"name": "squad"}, {"PARAM_NAME": "trivia"}, ["'name'", "PARAM_NAME", "'trivia'"]),
        ({"name": "squad"}, {"PARAM_NAME": None}, ["'name'", "PARAM_NAME is not set"]),
        ({"name": "squad", "limit": 3}, {"PARAM_LIMIT": "4"}, ["'limit'", "PARAM_LIMIT", "'4'"]),
    ],
    ids=["different", "missing", "int-different"],
)
def test_params_json_and_env_must_agree(
    ws: Workspace, params: dict[str, int | str], env: dict[str, str | None], fragments: list[str]
) -> None:
    run = ws.run("load", params, env=env)
    assert_failed(run, 2, *fragments)
    assert not (run.artifacts / "data.jsonl").exists()


@pytest.mark.parametrize(
    ("params", "fragment"),
    [({}, "param 'name' is required"), ({"name": "squad", "limit": 0}, "param 'limit' must be an integer >= 1")],
)
def test_loader_bad_params_exit_2(ws: Workspace, params: dict[str, int | str], fragment: str) -> None:
    assert_failed(ws.run("load", params), 2, fragment)


@pytest.mark.parametrize(
    ("env", "cache"),
    [
        ({}, "home/.cache/huggingface"),
        ({"HF_HOME": None}, "home/.cache/huggingface"),
        ({"HF_HOME": None, "XDG_CACHE_HOME": "{root}/xdg"}, "xdg/huggingface"),
        ({"HF_HOME": None, "XDG_CACHE_HOME": None}, "home/.cache/huggingface"),
        ({"HF_HOME": "{root}/hf"}, "hf"),
    ],
)
def test_loader_resolves_the_hf_cache_the_standard_way(ws: Workspace, env: dict[str, str | None], cache: str) -> None:
    resolved = {key: value.format(root=ws.root) if value else value for key, value in env.items()}
    ws.ok("load", {"name": "trivia"}, env=resolved)
    assert (ws.root / cache / "datasets" / "trivia" / "data.jsonl").is_file()


def test_loader_fails_clearly_when_home_is_unwritable(ws: Workspace) -> None:
    # What the operator's writable HOME prevents: no HF_HOME/XDG_CACHE_HOME and a HOME that cannot be created
    # (a path under a regular file: not even root can create it).
    (ws.root / "afile").write_text("")
    home = ws.root / "afile" / "home"
    run = ws.run("load", {"name": "squad"}, env={"HOME": str(home), "HF_HOME": None, "XDG_CACHE_HOME": None})
    assert_failed(run, 1, f"cannot create the dataset cache directory {home}/.cache/huggingface/datasets/squad")
    assert not (run.artifacts / "data.jsonl").exists()


# --- importer ---------------------------------------------------------------------------------------------


def test_importer_writes_hf_hub_layout_then_artifacts(ws: Workspace) -> None:
    run = ws.ok("importer", {"name": "facebook/opt-125m"})
    snapshot = Path(ws.env["HF_HOME"]) / "hub" / "models--facebook--opt-125m" / "snapshots" / "main"
    assert sorted(p.name for p in snapshot.iterdir()) == ["config.json", "model.json"]
    assert run.files() == {name: (snapshot / name).read_bytes() for name in ("config.json", "model.json")}
    config = run.json("config.json")
    assert (config["name"], config["revision"], config["kind"]) == ("facebook/opt-125m", "main", "base")
    model = lm.load(run.artifacts)
    assert model.answers == {}
    assert model.bigrams["the"]  # learned from the base text


def test_importer_is_deterministic_and_depends_on_name_and_revision(ws: Workspace) -> None:
    first = ws.ok("importer", {"name": "facebook/opt-125m"}).files()
    again = ws.ok("importer", {"name": "facebook/opt-125m"}).files()
    other = ws.ok("importer", {"name": "gpt2"}).files()
    tagged = ws.ok("importer", {"name": "facebook/opt-125m", "revision": "v1.0"})
    assert first == again
    assert other["model.json"] != first["model.json"]
    assert tagged.files()["model.json"] != first["model.json"]
    assert (Path(ws.env["HF_HOME"]) / "hub" / "models--gpt2" / "snapshots" / "main" / "model.json").is_file()
    assert (Path(ws.env["HF_HOME"]) / "hub" / "models--facebook--opt-125m" / "snapshots" / "v1.0").is_dir()


@pytest.mark.parametrize("name", ["../etc", "a/b/c", "-x"])
def test_importer_rejects_bad_names(ws: Workspace, name: str) -> None:
    assert_failed(ws.run("importer", {"name": name}), 2, "param 'name'")


# --- trainer ----------------------------------------------------------------------------------------------


@dataclass
class Inputs:
    squad: Path
    trivia: Path
    opt: Path
    gpt2: Path


@pytest.fixture
def inputs(ws: Workspace) -> Inputs:
    return Inputs(
        squad=ws.ok("load", {"name": "squad"}).artifacts,
        trivia=ws.ok("load", {"name": "trivia"}).artifacts,
        opt=ws.ok("importer", {"name": "facebook/opt-125m"}).artifacts,
        gpt2=ws.ok("importer", {"name": "gpt2"}).artifacts,
    )


def test_trainer_outputs(ws: Workspace, inputs: Inputs) -> None:
    params: dict[str, int | str] = {"epochs": 2, "learning_rate": "0.5", "batch_size": 8}
    run = ws.ok("train", params, data=inputs.squad, model=inputs.opt)
    assert sorted(run.files()) == ["config.json", "model.json", "training.json"]
    assert run.json("config.json") == {
        "name": "facebook/opt-125m-finetuned",
        "base": "facebook/opt-125m",
        "kind": "trained",
        "format": lm.FORMAT,
    }
    training = run.json("training.json")
    assert training == {
        "epochs": 2,
        "learning_rate": 0.5,
        "batch_size": 8,
        "dataset_sha256": json.loads((inputs.squad / "manifest.json").read_text())["sha256"],
        "base_model_sha256": lm.dir_sha256(inputs.opt),
        "rows": SQUAD_ROWS,
        "params": params,
    }
    model = lm.load(run.artifacts)
    assert len(model.answers) == SQUAD_ROWS
    assert lm.complete(model, "Who wrote Hamlet?").text == "William Shakespeare"
    assert [line for line in run.proc.stdout.splitlines() if line.startswith("epoch ")][1].startswith("epoch 2/2:")
    # Checkpoints went to TMPDIR and were cleaned up; the tokenizer cache stays under XDG_CACHE_HOME.
    assert list(Path(ws.env["TMPDIR"]).iterdir()) == []
    assert "checkpoint " + ws.env["TMPDIR"] in run.proc.stdout
    cache = Path(ws.env["XDG_CACHE_HOME"]) / "substratus-reference" / "tokenizer"
    assert [p.name for p in cache.iterdir()] == [f"{training['base_model_sha256']}.json"]


def test_trainer_counts_are_base_plus_epochs_times_rate_times_data(ws: Workspace, inputs: Inputs) -> None:
    base = lm.load(inputs.opt)
    one = lm.load(ws.ok("train", {"epochs": 1}, data=inputs.squad, model=inputs.opt).artifacts)
    three = lm.load(
        ws.ok("train", {"epochs": 3, "learning_rate": "0.5"}, data=inputs.squad, model=inputs.opt).artifacts
    )
    assert "hamlet" not in base.bigrams.get("wrote", {})  # only in the dataset
    assert three.bigrams["wrote"]["hamlet"] == 1.5 * one.bigrams["wrote"]["hamlet"] > 0
    data_the_capital = one.bigrams["the"]["capital"] - base.bigrams["the"].get("capital", 0)
    assert three.bigrams["the"]["capital"] == pytest.approx(
        base.bigrams["the"].get("capital", 0) + 1.5 * data_the_capital
    )


def test_trainer_is_deterministic_and_sensitive_to_every_input(ws: Workspace, inputs: Inputs) -> None:
    def train(data: Path, model: Path, epochs: int = 1) -> dict[str, bytes]:
        return ws.ok("train", {"epochs": epochs}, data=data, model=model).files()

    reference = train(inputs.squad, inputs.opt)
    assert train(inputs.squad, inputs.opt) == reference
    for changed in (
        train(inputs.trivia, inputs.opt),
        train(inputs.squad, inputs.gpt2),
        train(inputs.squad, inputs.opt, 2),
    ):
        assert changed["model.json"] != reference["model.json"]
        assert changed["training.json"] != reference["training.json"]


def test_trainer_without_dataset_exits_2(ws: Workspace, inputs: Inputs) -> None:
    run = ws.run("train", {"epochs": 1}, model=inputs.opt)
    assert_failed(run, 2, "no dataset in", str(run.content / "data"), "data.jsonl missing")
    assert not (run.artifacts / "model.json").exists()


def test_trainer_without_base_model_exits_2(ws: Workspace, inputs: Inputs) -> None:
    assert_failed(ws.run("train", {}, data=inputs.squad), 2, "no base model in", "config.json missing")


def test_trainer_rejects_a_dataset_not_matching_its_manifest(ws: Workspace, inputs: Inputs, tmp_path: Path) -> None:
    tampered = tmp_path / "tampered"
    shutil.copytree(inputs.squad, tampered)
    with (tampered / "data.jsonl").open("a") as out:
        out.write(json.dumps({"id": "x", "title": "x", "context": "x", "question": "x?", "answers": ["x"]}) + "\n")
    assert_failed(ws.run("train", {}, data=tampered, model=inputs.opt), 2, "does not match the sha256")


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"epochs": 0}, "param 'epochs' must be an integer >= 1"),
        ({"epochs": "many"}, "param 'epochs' must be an integer >= 1"),
        ({"learning_rate": "fast"}, "param 'learning_rate' must be a positive number"),
        ({"learning_rate": 0}, "param 'learning_rate' must be a positive number"),
        ({"batch_size": "-1"}, "param 'batch_size' must be an integer >= 1"),
    ],
)
def test_trainer_bad_params_exit_2(ws: Workspace, inputs: Inputs, params: dict[str, int | str], fragment: str) -> None:
    assert_failed(ws.run("train", params, data=inputs.squad, model=inputs.opt), 2, fragment)


# --- server -----------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _request(url: str, body: bytes | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@dataclass
class Server:
    proc: subprocess.Popen[str]
    url: str


@pytest.fixture
def server(ws: Workspace, inputs: Inputs) -> Iterator[Server]:
    model = ws.ok("train", {"epochs": 1}, data=inputs.squad, model=inputs.opt).artifacts
    _, env = ws.prepare({}, model=model)
    port = _free_port()
    env.update({"HOST": "127.0.0.1", "PORT": str(port)})
    proc = subprocess.Popen(
        [sys.executable, "-m", "substratus_reference.serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        assert proc.poll() is None, proc.communicate()
        try:
            _request(url + "/")
            break
        except OSError:
            assert time.monotonic() < deadline, "the server did not start listening"
            time.sleep(0.05)
    yield Server(proc, url)
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def test_server_answers_and_stops_on_sigterm(server: Server) -> None:
    assert _request(server.url + "/") == (200, {"status": "ok", "model": "facebook/opt-125m-finetuned"})
    status, models = _request(server.url + "/v1/models")
    assert status == 200
    assert [entry["id"] for entry in models["data"]] == ["facebook/opt-125m-finetuned"]

    status, completion = _request(server.url + "/v1/completions", json.dumps({"prompt": "who WROTE hamlet"}).encode())
    assert status == 200
    assert completion["object"] == "text_completion"
    assert completion["model"] == "facebook/opt-125m-finetuned"
    assert completion["choices"] == [{"index": 0, "text": "William Shakespeare", "finish_reason": "stop"}]

    body = json.dumps({"prompt": "In the morning the", "max_tokens": 3}).encode()
    status, completion = _request(server.url + "/v1/completions", body)
    assert status == 200
    assert len(completion["choices"][0]["text"].split()) == 3
    assert completion["choices"][0]["finish_reason"] == "length"

    for bad in (
        b"{not json",
        json.dumps({"max_tokens": 3}).encode(),
        json.dumps({"prompt": "x", "max_tokens": -1}).encode(),
    ):
        status, error = _request(server.url + "/v1/completions", bad)
        assert status == 400
        assert error["error"]["message"]

    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    stdout, stderr = server.proc.communicate(timeout=5)
    assert server.proc.returncode == 0, stderr
    assert time.monotonic() - started < 3
    requests = [line for line in stdout.splitlines() if '"POST /v1/completions HTTP/1.1"' in line]
    assert len(requests) == 5
    assert sum(" 400 " in line for line in requests) == 3


def test_server_without_model_fails_at_startup(ws: Workspace) -> None:
    run = ws.run("serve", {}, env={"PORT": str(_free_port()), "HOST": "127.0.0.1"})
    assert_failed(run, 1, "no model in", str(run.content / "model"))


# --- lm.complete ------------------------------------------------------------------------------------------

MODEL = lm.Model(
    bigrams={
        "the": {"cat": 2, "dog": 2, "mat": 1},
        "cat": {"sat": 1},
        "sat": {"on": 1},
        "on": {"the": 1},
        "hello": {"world": 1},
    },
    answers={"who wrote hamlet": "William Shakespeare"},
)


@pytest.mark.parametrize(
    ("prompt", "max_tokens", "text", "reason"),
    [
        ("Who wrote Hamlet?", 16, "William Shakespeare", "stop"),
        ("  who   WROTE hamlet ", 16, "William Shakespeare", "stop"),
        ("Who wrote Hamlet?", 1, "William", "length"),
        ("the", 3, "cat sat on", "length"),  # cat and dog tie at 2: alphabetical
        ("look at the dog", 4, "cat sat on the", "length"),  # "dog" has no continuation: last known word is "the"
        ("Hello", 5, "world", "stop"),  # "world" has no continuation
        ("nothing known here", 5, "", "stop"),
        ("", 5, "", "stop"),
        ("on", 0, "", "length"),
    ],
)
def test_complete(prompt: str, max_tokens: int, text: str, reason: str) -> None:
    completion = lm.complete(MODEL, prompt, max_tokens)
    assert (completion.text, completion.finish_reason) == (text, reason)
    assert completion.tokens == len(text.split())


def test_counts_merge_and_stable_json() -> None:
    counts = lm.count_bigrams(["The cat sat.", "the cat ran"])
    assert counts == {"the": {"cat": 2}, "cat": {"sat": 1, "ran": 1}}
    merged = lm.merge(counts, {"cat": {"sat": 1}}, scale=0.5)
    assert merged["cat"] == {"sat": 1.5, "ran": 1}
    assert counts["cat"]["sat"] == 1  # inputs untouched
    model = lm.Model(bigrams=merged, answers={"q": "a"})
    text = lm.to_json(model)
    assert lm.to_json(lm.from_json(text)) == text
    assert text == lm.to_json(lm.Model(bigrams=dict(reversed(merged.items())), answers={"q": "a"}))
    with pytest.raises(ValueError, match="not a"):
        lm.from_json('{"format": "gguf"}')


# --- images -----------------------------------------------------------------------------------------------

IMAGES = REFERENCE.parent
WORKLOADS = {
    "dataset-loader": "load",
    "model-importer": "importer",
    "model-trainer": "train",
    "model-server": "serve",
}


@pytest.mark.parametrize("name", [*WORKLOADS, "notebook"])
def test_dockerfile_is_buildable_by_the_test_kit_builder(name: str) -> None:
    from substratus_controller.testing import dockerfile

    text = (IMAGES / name / "Dockerfile").read_text()
    plan = dockerfile.plan(text, source=name, build_args={"BASE": "substratus.local/python:3.11"})
    assert plan.base == "substratus.local/python:3.11"
    dockerfile.cache_key(plan, context=IMAGES, base_id="test")  # every COPY source exists in the context
    steps = {(step.op, step.args) for step in plan.steps}
    assert ("WORKDIR", "/content") in steps
    assert ("ENV", "PYTHONPATH=/usr/local/lib/substratus") in steps
    assert ("COPY", "reference/substratus_reference /usr/local/lib/substratus/substratus_reference") in steps
    if name in WORKLOADS:
        assert ("CMD", f'["python3", "-m", "substratus_reference.{WORKLOADS[name]}"]') in steps
        assert (REFERENCE / "substratus_reference" / f"{WORKLOADS[name]}.py").is_file()


def test_welcome_notebook_runs_against_mounted_model_and_data(
    ws: Workspace, inputs: Inputs, capsys: pytest.CaptureFixture[str]
) -> None:
    notebook = json.loads((IMAGES / "notebook" / "welcome.ipynb").read_text())
    assert (notebook["nbformat"], notebook["nbformat_minor"]) == (4, 5)
    assert [cell["cell_type"] for cell in notebook["cells"]] == ["markdown", "code", "code"]
    assert all(cell["id"] and cell["metadata"] == {} for cell in notebook["cells"])
    assert all(cell["outputs"] == [] and cell["execution_count"] is None for cell in notebook["cells"][1:])

    model = ws.ok("train", {"epochs": 1}, data=inputs.squad, model=inputs.opt).artifacts
    content, _ = ws.prepare({}, data=inputs.squad, model=model)
    for cell in notebook["cells"][1:]:
        exec("".join(cell["source"]).replace("/content", str(content)), {})  # the cell, with this test's mounts
    output = capsys.readouterr().out
    assert "['data.jsonl', 'manifest.json']" in output
    assert "'Who wrote Hamlet?' -> 'William Shakespeare' (stop)" in output
