"""Runs the real ``tessera`` binary for the tests, on a free loopback port."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

API_KEY = "python-client-test-key-0123456789abcdef"
REPO = Path(__file__).resolve().parents[3]


def binary() -> Path:
    """``TESSERA_BIN``, else ``$CARGO_TARGET_DIR/debug/tessera`` (default ``target/``)."""
    explicit = os.environ.get("TESSERA_BIN")
    if explicit:
        path = Path(explicit)
    else:
        target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
        path = target / "debug" / "tessera"
    if not path.exists():
        raise RuntimeError(
            f"the tessera binary is missing ({path}): build it with "
            "`cargo build -p tessera-server --bin tessera` or run ./scripts/test"
        )
    return path


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    directory: tempfile.TemporaryDirectory[str]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.directory.cleanup()


def start(extra_config: str = "") -> Server:
    """A service on the memory store with ``extra_config`` appended to its configuration."""
    d = tempfile.TemporaryDirectory(prefix="tessera-python-")
    root = Path(d.name)
    config = root / "tessera.toml"
    config.write_text(
        f'listen = "127.0.0.1:0"\ndata_dir = "{root / "data"}"\n\n'
        f'[store]\nurl = "memory:"\n\n{extra_config}'
    )
    log = root / "stderr.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    env["TESSERA_API_KEY"] = API_KEY
    with open(root / "stdout.txt", "wb") as out, open(log, "wb") as err:
        process = subprocess.Popen(
            [str(binary()), "serve", "--config", str(config)],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=root,
            env=env,
        )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        # Every line the service writes, the address it bound included, is on stderr.
        text = log.read_text(errors="replace")
        marker = "Tessera listening on http://"
        if marker in text:
            address = text.split(marker, 1)[1].split()[0].split('"')[0]
            return Server(url=f"http://{address}", process=process, directory=d)
        if process.poll() is not None:
            raise RuntimeError(f"tessera exited ({process.returncode}):\n{text}")
        time.sleep(0.02)
    process.kill()
    raise RuntimeError("tessera did not start within 20 s")
