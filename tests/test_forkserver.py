"""The sandbox fork server, started as a fork of a build process (`prestart`): it keeps nothing of its client."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

_CLIENT = textwrap.dedent(
    """
    import json, os, sys, time
    from buildkit_py.exec import forkserver

    held = open(sys.argv[1], "w")  # a descriptor the client holds, as a build holds its store's
    forkserver.prestart()
    client = forkserver.take_prestarted()
    server = client._forked
    deadline = time.monotonic() + 30
    while len(os.listdir(f"/proc/{server}/fd")) > 4 and time.monotonic() < deadline:
        time.sleep(0.01)  # it closes what it inherited first thing, before loading the sandbox
    descriptors = sorted(int(name) for name in os.listdir(f"/proc/{server}/fd"))
    session = int(open(f"/proc/{server}/stat").read().rsplit(")", 1)[1].split()[3])
    client.close()
    print(json.dumps({
        "forked": server is not None,
        "descriptors": descriptors,
        "held": held.fileno(),
        "own_session": session == server,
        "reaped": not os.path.exists(f"/proc/{server}"),
    }))
    """
)


def test_a_forked_server_holds_only_its_socket_and_stdio_in_a_session_of_its_own(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _CLIENT, str(tmp_path / "held")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout)
    assert found["forked"]  # a client with one thread forks its server
    assert len(found["descriptors"]) == 4 and found["descriptors"][:3] == [0, 1, 2]  # stdio and its socket
    assert found["held"] not in found["descriptors"]
    assert found["own_session"]
    assert found["reaped"]  # close() waits for it: no zombie is left
