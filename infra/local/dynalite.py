"""dynalite, an independent DynamoDB implementation (npm), as the local runtime's store when asked.

moto is one implementation of DynamoDB; what it lets through the real service may not. The same
end-to-end tests run on dynalite too, so a behaviour only moto has cannot pass.
`python -m infra.local.dynalite` installs it (`make test` does).
"""

import hashlib
import selectors
import shutil
import subprocess
import sys
import time

from infra.local.template import ROOT

# package.json pins dynalite; the lock pins the whole tree with integrity hashes.
PACKAGE = ROOT / "infra" / "local" / "node"
PREFIX = ROOT / ".miaofa" / "node"  # project-local and git-ignored
STAMP = PREFIX / ".installed"  # the hash of the lock last installed in full
# In memory, on a free loopback port it prints once listening. It exits when its stdin ends, so
# the server does not outlive the process that started it, even one killed without cleaning up.
SERVE = """
const server = require('dynalite')({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 })
server.listen(0, '127.0.0.1', () => console.log(server.address().port))
process.stdin.on('end', () => process.exit(0)).resume()
"""


class DynaliteError(RuntimeError):
    """dynalite could not be installed or started."""


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise DynaliteError(
            f"dynalite (MIAOFA_STORE=dynalite, make test) needs Node.js 20+ with {name} on the PATH"
        )
    return path


def install() -> None:
    """Install the locked dynalite under .miaofa/node, unless that exact tree is there already."""
    lock = hashlib.sha256((PACKAGE / "package-lock.json").read_bytes()).hexdigest()
    if STAMP.is_file() and STAMP.read_text() == lock:
        return
    npm = _tool("npm")
    print("miaofa: installing dynalite (npm) under .miaofa/node", file=sys.stderr, flush=True)
    PREFIX.mkdir(parents=True, exist_ok=True)
    STAMP.unlink(missing_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(PACKAGE / name, PREFIX / name)
    # No install scripts: the one native module (classic-level) ships prebuilt binaries.
    command = [npm, "ci", "--prefix", str(PREFIX), "--ignore-scripts", "--no-audit", "--no-fund"]
    done = subprocess.run(  # noqa: S603 (a fixed command)
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False
    )
    if done.returncode != 0:
        raise DynaliteError(f"npm ci failed ({done.returncode}):\n{done.stderr.strip()}")
    STAMP.write_text(lock)


class Dynalite:
    """A dynalite server, a child process of this one, in memory."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self.endpoint = ""

    def start(self, deadline_seconds: float = 30) -> str:
        install()
        self._process = subprocess.Popen(  # noqa: S603 (a fixed command)
            [_tool("node"), "-e", SERVE],
            cwd=PREFIX,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # Ctrl-C in `make run` is ours: we stop it after what uses it
        )
        port = self._read_port(time.monotonic() + deadline_seconds)
        self.endpoint = f"http://127.0.0.1:{port}"
        return self.endpoint

    def _read_port(self, deadline: float) -> int:
        """The port dynalite prints once it listens, waiting no later than `deadline`."""
        assert self._process is not None and self._process.stdout is not None
        with selectors.DefaultSelector() as ready:
            ready.register(self._process.stdout, selectors.EVENT_READ)
            while (left := deadline - time.monotonic()) > 0:
                if ready.select(timeout=left):
                    line = self._process.stdout.readline()
                    if line.strip().isdigit():
                        return int(line)
                    if not line:  # it exited
                        self.stop()
                        raise DynaliteError(f"dynalite did not start (exit code {self._process.returncode})")
        self.stop()
        raise DynaliteError("dynalite did not listen in time")

    def stop(self, deadline_seconds: float = 10) -> None:
        if self._process is None or self._process.stdin is None:
            return
        self._process.stdin.close()  # its signal to exit
        try:
            self._process.wait(timeout=deadline_seconds)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


if __name__ == "__main__":
    try:
        install()
    except DynaliteError as error:
        sys.exit(f"miaofa: {error}")
