"""Real proxy servers for the contract tests, started as subprocesses on 127.0.0.1.

- :class:`Tinyproxy`: an HTTP CONNECT proxy (RFC 9110 §9.3.6), optionally with Basic auth (RFC 7617).
- :class:`Microsocks`: a SOCKS5 proxy (RFC 1928), optionally with username/password (RFC 1929).
- :class:`Dante`: ``danted``, a SOCKS4, SOCKS4a and SOCKS5 proxy, without authentication.
- :class:`Nginx`: TLS termination for a ``wss://`` server in front of a plain WebSocket server
  (:meth:`Nginx.tls_front`), and an HTTPS proxy, TLS in front of an HTTP CONNECT proxy with the ``stream``
  module (:meth:`Nginx.tls_stream`).
- :class:`UnixWebsocketsServer`: a ``websockets`` server on a Unix socket (``unix_serve``).

Each proxy gets a free port, a configuration file in its own temporary directory, and a log file there
(stdout and stderr); :meth:`ProxyProcess.start` waits until the port accepts connections, and
:meth:`ProxyProcess.stop` ends the process. Each proxy can make its outgoing connections from its own
loopback address (``bind=``, e.g. ``127.0.0.2``), so a server sees from the peer address which proxy (if
any) a connection came through.

A missing binary skips the test that needs it, with the package to install, except under ``CI`` (any
value but empty, ``0`` or ``false``), where it fails: CI installs every package (``.ci/run``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from servers import HOST, IO_TIMEOUT, START_TIMEOUT, Handler, _LoopThread, echo

SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")
RUNNING: list[ProxyProcess] = []  # every proxy started and not yet stopped (for logs on failure)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(what: str, package: str) -> None:
    """Skip (locally) or fail (under CI) a test that needs *what*, naming the Debian *package*."""
    message = f"{what} is not installed: `apt-get install {package}` (.ci/run installs it)"
    if in_ci():
        pytest.fail(f"{message}; CI must run every proxy test", pytrace=False)
    pytest.skip(message)


def find_binary(name: str, package: str) -> str:
    """The path of executable *name* (searching the sbin directories too), or skip/fail (see above)."""
    path = shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN_DIRS))
    if path is None:
        missing(name, package)
        raise AssertionError("unreachable")  # pytest.skip and pytest.fail raise
    return path


def free_port(host: str = HOST) -> int:
    """A port nothing listens on now (the OS picks it; a process told to use it binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_accepting(port: int, process: subprocess.Popen[bytes], describe: str) -> None:
    """Wait until 127.0.0.1:*port* accepts a TCP connection; fail with the log if *process* exits."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{describe} exited with status {process.returncode} before accepting")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.5)
            if probe.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"{describe} did not accept connections on port {port} within {START_TIMEOUT} s")


class ProxyProcess:
    """A server process with a generated configuration, started on a free port on 127.0.0.1.

    Subclasses set ``binary`` and ``package`` and write ``config()``/``command()``. Attributes: ``port``
    (once started), ``directory`` (configuration and log), ``log_path``.
    """

    binary: ClassVar[str]
    package: ClassVar[str]
    scheme: ClassVar[str] = "http"
    START_ATTEMPTS = 3  # another process may take the free port between free_port() and the bind

    def __init__(self, *, auth: tuple[str, str] | None = None, bind: str | None = None) -> None:
        self.auth = auth
        self.bind = bind  # the source address of the proxy's outgoing connections
        self.port = 0
        self.directory = Path(tempfile.mkdtemp(prefix=f"wsfast-{type(self).__name__.lower()}-"))
        self.log_path = self.directory / "output.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None

    # Subclasses

    def config(self) -> str | None:
        """The configuration file's text (``None``: the command line says everything)."""
        return None

    def command(self, executable: str, config_path: Path) -> list[str]:
        raise NotImplementedError

    def ports(self) -> Sequence[int]:
        """Every port this process listens on (waited for at start)."""
        return [self.port]

    def choose_ports(self) -> None:
        self.port = free_port()

    def after_start(self) -> None:
        """Runs once the process accepts connections (a second process, say); raises RuntimeError."""

    # Life cycle

    def url(self, scheme: str | None = None, auth: tuple[str, str] | bool | None = True) -> str:
        """``scheme://[user:password@]127.0.0.1:port``; *auth*: ``True`` (this proxy's credentials),
        ``False`` (none) or explicit ``(user, password)``."""
        credentials = self.auth if auth is True else (auth or None)
        userinfo = f"{credentials[0]}:{credentials[1]}@" if credentials else ""
        return f"{scheme or self.scheme}://{userinfo}{HOST}:{self.port}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def start(self) -> ProxyProcess:
        executable = find_binary(self.binary, self.package)
        for attempt in range(1, self.START_ATTEMPTS + 1):
            self.choose_ports()
            config_path = self.directory / "proxy.conf"
            text = self.config()
            if text is not None:
                config_path.write_text(text)
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop())
            self._process = subprocess.Popen(
                self.command(executable, config_path),
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
            )
            try:
                for port in self.ports():
                    wait_until_accepting(port, self._process, f"{self.binary} ({self.directory})")
                self.after_start()
            except RuntimeError as exc:
                self.stop()
                if attempt == self.START_ATTEMPTS:
                    raise RuntimeError(f"{exc}; its log:\n{self.log()}") from None
                continue
            RUNNING.append(self)
            return self
        raise AssertionError("unreachable")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(IO_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(IO_TIMEOUT)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self in RUNNING:
            RUNNING.remove(self)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> ProxyProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url(auth=False)}{' auth' if self.auth else ''}>"


class Tinyproxy(ProxyProcess):
    """tinyproxy 1.11: HTTP CONNECT to any port (no ``ConnectPort`` line allows every port), Basic auth
    with ``BasicAuth user password`` (a missing or wrong ``Proxy-Authorization`` gets 407). *connect_ports*
    restricts CONNECT to those ports: any other gets 403."""

    binary = "tinyproxy"
    package = "tinyproxy"

    def __init__(self, *, connect_ports: Sequence[int] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.connect_ports = list(connect_ports)

    def config(self) -> str:
        lines = [
            f"Port {self.port}",
            f"Listen {HOST}",
            "Timeout 60",
            "MaxClients 100",
            "LogLevel Info",
            f'PidFile "{self.directory / "tinyproxy.pid"}"',
            "DisableViaHeader Yes",
        ]
        if os.geteuid() == 0:  # tinyproxy drops root privileges to this user
            lines += ["User nobody", "Group nogroup"]
        if self.bind:
            lines.append(f"Bind {self.bind}")
        if self.auth:
            lines.append(f"BasicAuth {self.auth[0]} {self.auth[1]}")
        lines += [f"ConnectPort {port}" for port in self.connect_ports]
        return "\n".join(lines) + "\n"

    def command(self, executable: str, config_path: Path) -> list[str]:
        return [executable, "-d", "-c", str(config_path)]  # -d: in the foreground, logging to stderr


class Microsocks(ProxyProcess):
    """microsocks: SOCKS5 only (RFC 1928: IPv4, IPv6 and domain-name addresses), with ``-u``/``-P`` for
    RFC 1929 username/password authentication; ``-b`` binds its outgoing connections."""

    binary = "microsocks"
    package = "microsocks"
    scheme = "socks5"

    def command(self, executable: str, config_path: Path) -> list[str]:
        command = [executable, "-i", HOST, "-p", str(self.port)]
        if self.bind:
            command += ["-b", self.bind]
        if self.auth:
            command += ["-u", self.auth[0], "-P", self.auth[1]]
        return command


class Dante(ProxyProcess):
    """dante-server (``danted`` 1.4): SOCKS4, SOCKS4a (the client sends the host name) and SOCKS5, no
    authentication (``socksmethod: none``; a SOCKS4 user id is accepted as sent). As root it runs with
    ``user.privileged: root`` and ``user.unprivileged: nobody``."""

    binary = "danted"
    package = "dante-server"
    scheme = "socks5"

    def config(self) -> str:
        lines = [
            "logoutput: stderr",
            "debug: 0",
            f"internal: {HOST} port = {self.port}",
            f"external: {self.bind or HOST}",
            "clientmethod: none",
            "socksmethod: none",
        ]
        if os.geteuid() == 0:
            lines += ["user.privileged: root", "user.unprivileged: nobody"]
        lines += [
            "client pass {",
            "    from: 0.0.0.0/0 to: 0.0.0.0/0",
            "    log: error",
            "}",
            "socks pass {",
            "    from: 0.0.0.0/0 to: 0.0.0.0/0",
            "    command: connect",
            "    protocol: tcp",
            "    log: connect error",
            "}",
        ]
        return "\n".join(lines) + "\n"

    def command(self, executable: str, config_path: Path) -> list[str]:
        # -N 1: one process; -p: our own pid file (the default is under /var/run).
        return [executable, "-f", str(config_path), "-N", "1", "-p", str(self.directory / "danted.pid")]


class OpensshSocks(ProxyProcess):
    """OpenSSH dynamic forwarding (``ssh -D``) through a private ``sshd``: a SOCKS4, SOCKS4a and SOCKS5
    proxy (no authentication) on ``port``. dante-server 1.4 has no SOCKS4a (it connects to 0.0.0.x), so
    this is the SOCKS4a proxy. The ssh client runs with ``-vv``: its log names each request's protocol
    and host (``decode socks4a: host localhost``), which :meth:`requests` returns.

    It needs ``sshd`` (openssh-server) and ``ssh``/``ssh-keygen`` (openssh-client); keys are made for
    the run, and the ssh user is the one running the tests (root in CI, with key login only).
    """

    binary = "sshd"
    package = "openssh-server openssh-client"
    scheme = "socks4a"

    def __init__(self) -> None:
        super().__init__()
        self.ssh_port = 0
        self._sshd: subprocess.Popen[bytes] | None = None

    def choose_ports(self) -> None:
        self.ssh_port = free_port()
        self.port = free_port()

    def start(self) -> ProxyProcess:
        ssh = find_binary("ssh", "openssh-client")
        keygen = find_binary("ssh-keygen", "openssh-client")
        find_binary(self.binary, self.package)
        d = self.directory
        for name in ("host_key", "user_key"):
            if not (d / name).exists():
                subprocess.run(
                    [keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)],
                    check=True,
                    capture_output=True,
                    timeout=IO_TIMEOUT,
                )
        (d / "authorized_keys").write_bytes((d / "user_key.pub").read_bytes())
        os.chmod(d / "authorized_keys", 0o600)
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        self._ssh = ssh
        return super().start()

    def config(self) -> str:
        d = self.directory
        return (
            "\n".join(
                [
                    f"Port {self.ssh_port}",
                    f"ListenAddress {HOST}",
                    f"HostKey {d / 'host_key'}",
                    f"AuthorizedKeysFile {d / 'authorized_keys'}",
                    f"PidFile {d / 'sshd.pid'}",
                    "PermitRootLogin prohibit-password",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "AllowTcpForwarding yes",
                    "LogLevel INFO",
                ]
            )
            + "\n"
        )

    def command(self, executable: str, config_path: Path) -> list[str]:
        return [executable, "-D", "-e", "-f", str(config_path)]  # -D: no daemon; -e: log to stderr

    def ports(self) -> Sequence[int]:
        return [self.ssh_port]

    def after_start(self) -> None:
        import getpass

        self._client_log = open(self.directory / "ssh.log", "ab")  # noqa: SIM115 (closed in stop())
        self._sshd, self._process = (
            self._process,
            subprocess.Popen(
                [
                    self._ssh,
                    "-N",
                    "-vv",
                    "-F",
                    "/dev/null",
                    "-D",
                    f"{HOST}:{self.port}",
                    "-p",
                    str(self.ssh_port),
                    "-i",
                    str(self.directory / "user_key"),
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    "StrictHostKeyChecking=no",
                    "-o",
                    f"UserKnownHostsFile={self.directory / 'known_hosts'}",
                    "-o",
                    "ExitOnForwardFailure=yes",
                    f"{getpass.getuser()}@{HOST}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=self._client_log,
                stderr=subprocess.STDOUT,
            ),
        )
        wait_until_accepting(self.port, self._process, f"ssh -D ({self.directory})")

    def log(self) -> str:
        try:
            client = (self.directory / "ssh.log").read_text(errors="replace")
        except OSError:
            client = ""
        return f"{super().log()}\n--- ssh -D ---\n{client}"

    def requests(self) -> list[str]:
        """The SOCKS requests the ssh client decoded, e.g. ``"socks4a: host localhost"``."""
        return [
            line.split("decode ", 1)[1].split("/", 1)[0]
            for line in self.log().splitlines()
            if "decode socks" in line and ": host " in line
        ]

    def stop(self) -> None:
        sshd, self._sshd = self._sshd, None
        super().stop()  # the ssh client (or sshd, if the client never started)
        if sshd is not None:
            self._process = sshd
            super().stop()
        log = getattr(self, "_client_log", None)
        if log is not None:
            log.close()
            self._client_log = None


NGINX_MODULE_DIRS = ("/usr/lib/nginx/modules", "/usr/share/nginx/modules")


def nginx_stream_module(executable: str) -> str | None:
    """``""`` when nginx has the stream module built in, the path of ``ngx_stream_module.so`` when it is
    a dynamic module that is installed, ``None`` when it is missing (Debian: ``libnginx-mod-stream``)."""
    configure = subprocess.run([executable, "-V"], capture_output=True, text=True, timeout=IO_TIMEOUT).stderr
    if "--with-stream " in configure + " " and "--with-stream=dynamic" not in configure:
        return ""
    directories = [
        part.split("=", 1)[1] for part in configure.split() if part.startswith("--modules-path=")
    ] + list(NGINX_MODULE_DIRS)
    for directory in directories:
        candidate = Path(directory) / "ngx_stream_module.so"
        if candidate.exists():
            return str(candidate)
    return None


class Nginx(ProxyProcess):
    """nginx with two kinds of TLS servers, each on its own port, sharing one certificate:

    - ``tls_front(backend_port)``: ``wss://`` -> nginx (TLS) -> ``ws://127.0.0.1:backend_port`` (HTTP/1.1
      with the Upgrade and Connection headers passed on): TLS termination for a WebSocket server.
    - ``tls_stream(upstream_port)``: TLS -> plain TCP to ``upstream_port``: with an HTTP CONNECT proxy
      behind it, an HTTPS proxy (TLS to the proxy, then CONNECT in it). Needs the stream module.

    Call them before :meth:`start`; ``front_ports`` / ``stream_ports`` hold the ports in the same order.
    *cert_path* and *key_path* are PEM files.
    """

    binary = "nginx"
    package = "nginx"
    scheme = "https"

    def __init__(self, cert_path: Path, key_path: Path) -> None:
        super().__init__()
        self.cert_path = cert_path
        self.key_path = key_path
        self._fronts: list[int] = []
        self._streams: list[int] = []
        self.front_ports: list[int] = []
        self.stream_ports: list[int] = []
        self._stream_module: str | None = ""

    def tls_front(self, backend_port: int) -> Nginx:
        self._fronts.append(backend_port)
        return self

    def tls_stream(self, upstream_port: int) -> Nginx:
        self._streams.append(upstream_port)
        return self

    def choose_ports(self) -> None:
        self.front_ports = [free_port() for _ in self._fronts]
        self.stream_ports = [free_port() for _ in self._streams]
        self.port = (self.front_ports or self.stream_ports)[0]

    def ports(self) -> Sequence[int]:
        return self.front_ports + self.stream_ports

    def start(self) -> ProxyProcess:
        executable = find_binary(self.binary, self.package)
        if self._streams:
            module = nginx_stream_module(executable)
            if module is None:
                missing("nginx's stream module (for the HTTPS proxy)", "libnginx-mod-stream")
            self._stream_module = module
        return super().start()

    def config(self) -> str:
        d = self.directory
        tls = (
            f"ssl_certificate {self.cert_path}; ssl_certificate_key {self.key_path}; "
            "ssl_protocols TLSv1.2 TLSv1.3;"
        )
        lines = []
        if self._stream_module:
            lines.append(f"load_module {self._stream_module};")
        lines += [
            "daemon off;",
            "master_process off;",
            "worker_processes 1;",
            f"pid {d / 'nginx.pid'};",
            "error_log stderr info;",
        ]
        if os.geteuid() == 0:
            lines.append("user root;")  # the files are in a private temporary directory
        lines += ["events { worker_connections 512; }", "http {", "    access_log off;"]
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            lines.append(f"    {name}_temp_path {d / name};")
        for listen, backend in zip(self.front_ports, self._fronts, strict=True):
            lines += [
                "    server {",
                f"        listen {HOST}:{listen} ssl;",
                f"        {tls}",
                "        location / {",
                f"            proxy_pass http://{HOST}:{backend};",
                "            proxy_http_version 1.1;",
                "            proxy_set_header Upgrade $http_upgrade;",
                '            proxy_set_header Connection "Upgrade";',
                "            proxy_set_header Host $http_host;",
                "            proxy_buffering off;",
                "            proxy_read_timeout 300s;",
                "        }",
                "    }",
            ]
        lines.append("}")
        if self._streams:
            lines.append("stream {")
            for listen, upstream in zip(self.stream_ports, self._streams, strict=True):
                lines += [
                    "    server {",
                    f"        listen {HOST}:{listen} ssl;",
                    f"        {tls}",
                    f"        proxy_pass {HOST}:{upstream};",
                    "    }",
                ]
            lines.append("}")
        return "\n".join(lines) + "\n"

    def command(self, executable: str, config_path: Path) -> list[str]:
        return [executable, "-p", str(self.directory), "-c", str(config_path), "-e", "stderr"]


# --------------------------------------------------------------------------------------------------
# A WebSocket server on a Unix socket
# --------------------------------------------------------------------------------------------------


class UnixWebsocketsServer:
    """A ``websockets`` server on a Unix socket (``unix_serve``), optionally with TLS; ``path`` is the
    socket's path. ``peers`` lists the socket path each connection was accepted on (``remote_address`` is
    empty for Unix sockets), ``hosts`` the ``Host`` header each request had."""

    def __init__(self, handler: Handler = echo, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self._directory = tempfile.mkdtemp(prefix="wsfast-unix-")
        self.path = os.path.join(self._directory, "ws.sock")
        self.hosts: list[str | None] = []
        self._loop: _LoopThread | None = None
        self._server: Any = None

    async def _wrapped(self, ws: Any) -> None:
        self.hosts.append(ws.request.headers.get("Host"))
        await self.handler(ws)

    async def _start(self) -> None:
        from websockets.asyncio.server import unix_serve

        self._server = await unix_serve(
            self._wrapped, self.path, ssl=self.ssl_context, compression=None, ping_interval=None
        )

    async def _stop(self) -> None:
        self._server.close()
        await asyncio.wait_for(self._server.wait_closed(), IO_TIMEOUT)

    def __enter__(self) -> UnixWebsocketsServer:
        self._loop = _LoopThread("unix-ws-server")
        self._loop.run(self._start())
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.run(self._stop())
            self._loop.stop()
        shutil.rmtree(self._directory, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# IPv6 loopback twin of an IPv4 port
# --------------------------------------------------------------------------------------------------


def localhost_resolves_to_ipv6() -> bool:
    try:
        infos = socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return any(info[0] == socket.AF_INET6 for info in infos)


class Relay:
    """Accepts TCP connections on ``[::1]:port`` and pipes each to ``127.0.0.1:port``.

    A proxy that resolves ``localhost`` itself (SOCKS4a, ``socks5h://``) may pick ``::1`` where
    ``/etc/hosts`` lists it; the test servers listen on 127.0.0.1 only, so this makes ``localhost:port``
    reach them whichever address the proxy tries first.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self._listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("::1", port))
        self._listener.listen(16)
        self._listener.settimeout(0.05)
        self._stopping = threading.Event()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="relay", daemon=True)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection((HOST, self.port), timeout=IO_TIMEOUT)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.settimeout(None)
                self._sockets.append(sock)
            threading.Thread(target=_pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()

    def __enter__(self) -> Relay:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._thread.join(IO_TIMEOUT)
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def _pipe(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


def write_certificate(ca: Any, directory: Path, *hostnames: str) -> tuple[Path, Path]:
    """Issue a certificate for *hostnames* (default: localhost and 127.0.0.1) from the ``trustme`` *ca*;
    write its chain and its key as PEM files in *directory*; return ``(cert_path, key_path)``."""
    cert = ca.issue_cert(*(hostnames or ("localhost", HOST)))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key_path))
    return cert_path, key_path
