"""Chardev endpoint specs, spelled as QEMU spells ``-chardev socket,...``.

Accepted (``qemu-options.hx``, chardev/char-socket.c ``qemu_chr_parse_socket``)::

    socket,path=/run/x.sock[,server=on|off][,wait=on|off][,reconnect=SECONDS]
    socket,host=127.0.0.1,port=9001[,server=on|off][,wait=on|off][,reconnect=SECONDS][,nodelay=on|off]

plus QEMU's legacy bare flags ``server``, ``nowait`` and ``nodelay`` (``server,nowait`` is what
docs/colo-proxy.txt used before 6.0), and ``id=...`` which is accepted and ignored.  As in QEMU:

* ``server`` defaults to off (connect), ``wait`` to on; ``wait`` only means something for a
  server (the start waits for the first client, as QEMU blocks start-up);
* ``reconnect`` is for clients only (QEMU: "'reconnect' option is incompatible with 'server'");
  a client without it that cannot connect is a start-up error, one that loses its peer stays
  disconnected;
* a listening unix socket replaces a stale socket file at ``path`` (QEMU unlinks it too).

Listening on an address that is not loopback needs ``allow_remote=True`` (``--allow-remote``):
colo-compare's streams carry guest traffic in clear.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

_BOOL = {"on": True, "yes": True, "true": True, "off": False, "no": False, "false": False}
_KNOWN = {"path", "host", "port", "server", "wait", "reconnect", "nodelay", "id"}


class EndpointError(ValueError):
    """A chardev spec QEMU would refuse, or one we refuse for safety."""


@dataclass(frozen=True)
class Endpoint:
    """One socket chardev.  ``kind`` is ``"unix"`` or ``"tcp"``."""

    kind: str
    path: str | None = None
    host: str | None = None
    port: int | None = None
    server: bool = False
    wait: bool = True
    reconnect: float = 0.0
    nodelay: bool = False
    spec: str = ""

    def describe(self) -> str:
        where = self.path if self.kind == "unix" else f"{self.host}:{self.port}"
        mode = "listen" if self.server else "connect"
        extra = f", reconnect every {self.reconnect:g} s" if self.reconnect else ""
        return f"{mode} {self.kind}:{where}{extra}"

    @property
    def address(self):
        return self.path if self.kind == "unix" else (self.host, self.port)


def _bool(key: str, value: str, spec: str) -> bool:
    try:
        return _BOOL[value.lower()]
    except KeyError:
        raise EndpointError(f"{spec!r}: {key}={value!r} is not on/off") from None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_endpoint(spec: str, allow_remote: bool = False) -> Endpoint:
    """Parse one chardev spec; raise ``EndpointError`` with a one-line reason."""
    text = spec.strip()
    parts = [p for p in text.split(",")]
    if not parts or parts[0] != "socket":
        raise EndpointError(f"{spec!r}: only socket chardevs are supported (socket,path=... or "
                            "socket,host=...,port=...)")
    opts: dict[str, str] = {}
    for p in parts[1:]:
        if p == "":
            raise EndpointError(f"{spec!r}: empty option")
        if "=" in p:
            k, v = p.split("=", 1)
        elif p in ("server", "nodelay"):
            k, v = p, "on"                 # legacy bare flags
        elif p == "nowait":
            k, v = "wait", "off"           # legacy 'nowait'
        elif p in ("noserver", "nonodelay"):
            k, v = p[2:], "off"
        else:
            raise EndpointError(f"{spec!r}: unknown option {p!r}")
        if k not in _KNOWN:
            raise EndpointError(f"{spec!r}: unknown option {k!r}")
        if k in opts:
            raise EndpointError(f"{spec!r}: option {k!r} given twice")
        opts[k] = v
    server = _bool("server", opts["server"], spec) if "server" in opts else False
    wait = _bool("wait", opts["wait"], spec) if "wait" in opts else True
    nodelay = _bool("nodelay", opts["nodelay"], spec) if "nodelay" in opts else False
    reconnect = 0.0
    if "reconnect" in opts:
        try:
            reconnect = float(opts["reconnect"])
        except ValueError:
            raise EndpointError(f"{spec!r}: reconnect={opts['reconnect']!r} is not a number of seconds") from None
        if reconnect < 0:
            raise EndpointError(f"{spec!r}: reconnect must not be negative")
        if server and reconnect:
            raise EndpointError(f"{spec!r}: 'reconnect' option is incompatible with 'server' option")
    if "path" in opts:
        if "host" in opts or "port" in opts:
            raise EndpointError(f"{spec!r}: give either path= or host=/port=, not both")
        if not opts["path"]:
            raise EndpointError(f"{spec!r}: empty path")
        if nodelay:
            raise EndpointError(f"{spec!r}: nodelay applies to TCP sockets only")
        return Endpoint("unix", path=opts["path"], server=server, wait=wait, reconnect=reconnect, spec=text)
    if "port" not in opts:
        raise EndpointError(f"{spec!r}: needs path= (unix) or port= (tcp)")
    try:
        port = int(opts["port"])
    except ValueError:
        raise EndpointError(f"{spec!r}: port={opts['port']!r} is not a number") from None
    if not 0 < port < 65536:
        raise EndpointError(f"{spec!r}: port {port} out of range")
    host = opts.get("host") or ("127.0.0.1" if not server else "")
    if server:
        # QEMU listens on all addresses for an empty host; we require it to be explicit.
        if not host or not is_loopback(host):
            if not allow_remote:
                raise EndpointError(f"{spec!r}: listening on {host or 'all addresses'} (not loopback) "
                                    "needs --allow-remote")
            host = host or "0.0.0.0"
    return Endpoint("tcp", host=host, port=port, server=server, wait=wait, reconnect=reconnect,
                    nodelay=nodelay, spec=text)
