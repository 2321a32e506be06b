"""Run a pytest lane on a Docker engine of its own, seen at the default socket.

    python tests/support/lane_engine.py [PYTEST ARGS]    (scripts/dev-env.sh: the browser lane)

The browser tests (JupyterLab, Chromium, a kernel building and launching) run beside the other
engine tests. Two test sessions on one engine remove each other's new objects (the cleanup's
sweeps, tests/support/cleanup.py) and see each other's containers, so this lane gets a second
`dockerd` (its own data root, exec root, containerd namespaces and bridge, no iptables: the
browser tests pull from 127.0.0.1 registries and need no outside network;
`remote_engine.start_second_engine`). Its tests, their Jupyter server, kernels and `dcs`
commands must see it as THE local engine, as a user's would be (no DOCKER_HOST: the widgets
then name no engine), so pytest runs in a mount namespace of its own (`unshare --mount`) where
the second engine's socket is bind-mounted over /run/docker.sock. The main engine stays
reachable there at DCS_TEST_MAIN_DOCKER_HOST, for images built once per machine
(`examples.ensure_dcs_base` copies the realistic base from it).

The engine, its data and its bridge are removed when pytest ends; the exit status is pytest's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # `support` as the tests import it

from support import remote_engine  # noqa: E402

MAIN_VARIABLE = "DCS_TEST_MAIN_DOCKER_HOST"
DEFAULT_SOCKET = "/var/run/docker.sock"
# In the new mount namespace: the main socket onto $1 (a file made for it), then the lane's
# socket $2 over the default one; then pytest.
_MOUNTS = 'mount --bind "$3" "$1" && mount --bind "$2" "$3" && shift 3 && exec "$@"'


def main(argv: list[str]) -> int:
    if os.environ.get("DOCKER_HOST"):
        print("lane_engine: DOCKER_HOST is set; the lane's engine replaces the default socket only",
              file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="dcs-lane-engine-"))
    engine = remote_engine.start_second_engine(folder, None, namespace="dcs-test-lane")
    try:
        main_socket = folder / "main-docker.sock"
        main_socket.touch()
        env = {**os.environ, MAIN_VARIABLE: f"unix://{main_socket}"}
        return subprocess.call(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", _MOUNTS, "sh",
             str(main_socket), engine.socket.removeprefix("unix://"), os.path.realpath(DEFAULT_SOCKET),
             sys.executable, "-m", "pytest", *argv], env=env)
    finally:
        engine.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
