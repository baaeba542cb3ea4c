"""The script ``respop dashboard`` serves (``streamlit run``), shipped with the package, and the
command line that serves it hardened (:func:`streamlit_command`).

Streamlit runs its script with "magic" on: a bare string in the script is shown on the page.
The board's module ``respop.boards.app`` documents its constants with such strings, so it must be
imported, never run as the script itself; this file (and ``dashboards/app.py``) only imports it,
when Streamlit runs it (as ``__main__``). Importing this module only gives the command line.

What the options do, and what each of Streamlit's HTTP endpoints shows without a password, is in
dashboards/README.md ("Security").
"""

from __future__ import annotations

import sys
from pathlib import Path

DEFAULT_ADDRESS = "127.0.0.1"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARD = ("0.0.0.0", "::", "")


def server_options(port: int, address: str = DEFAULT_ADDRESS, host_names: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """Streamlit's options for the board, as (name, value) pairs: on ``address`` (loopback by
    default), nothing sent outside (no usage statistics, no look-up of the machine's public
    address), no static files, no file watcher, no developer menu, no exception detail in the
    browser, and the WebSocket accepted only for the host names the board is reached by."""
    public = host_names[0] if host_names else ("localhost" if address in LOOPBACK + WILDCARD else address)
    options = [
        ("server.headless", "true"),
        ("server.address", address),
        ("server.port", str(port)),
        # the address shown and used for CORS; set, Streamlit does not ask a web service for the
        # machine's public address at start (net_util.get_external_ip)
        ("browser.serverAddress", public),
        ("browser.gatherUsageStats", "false"),
        ("server.enableStaticServing", "false"),
        ("server.enableXsrfProtection", "true"),
        ("server.enableCORS", "true"),
        ("server.enableAgentApi", "false"),
        ("server.fileWatcherType", "none"),
        ("server.runOnSave", "false"),
        ("server.maxUploadSize", "1"),  # the board takes no file
        ("global.developmentMode", "false"),
        ("client.toolbarMode", "viewer"),
        ("client.showErrorDetails", "none"),
        ("client.showErrorLinks", "false"),
    ]
    if address not in WILDCARD or host_names:
        # against DNS rebinding: a page of another site resolved to this address is refused
        allowed = dict.fromkeys([*LOOPBACK, *([] if address in WILDCARD else [address]), *host_names])
        options += [("server.allowedHosts", name) for name in allowed]
    return options


def streamlit_command(config: str | Path, port: int, address: str = DEFAULT_ADDRESS, run: int | None = None,
                      host_names: tuple[str, ...] = ()) -> list[str]:
    """The command line serving the board of ``config`` (``python -m streamlit run`` this file)."""
    options = [arg for name, value in server_options(port, address, host_names) for arg in (f"--{name}", value)]
    return [
        sys.executable, "-m", "streamlit", "run", str(Path(__file__).resolve()), *options,
        "--", str(Path(config).resolve()), *(["--run", str(run)] if run is not None else []),
    ]


if __name__ == "__main__":
    from respop.boards.app import main

    main()
