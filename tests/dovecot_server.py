"""A private Dovecot IMAP server for the tests: its own config in a temp dir, listening on
127.0.0.1 only (IMAP on one free port, IMAPS with a trustme certificate on another), one
user whose mail is a Maildir. Needs Debian's dovecot-imapd (the system service is never
configured or started) and root, as CI has."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

import trustme

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = dovenull
default_internal_user = dovecot
mail_location = maildir:~/Maildir
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""


def available() -> str:
    """'' when a private Dovecot can run here, else why not."""
    if not shutil.which("dovecot") or not Path("/usr/lib/dovecot/imap").exists():
        return "Debian's dovecot-imapd package is not installed (.ci/run installs it)"
    if os.geteuid() != 0:
        return "a private Dovecot needs root (it runs its login processes as dovenull)"
    return ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Dovecot:
    """start(), then stop(); one user `user` with password `password`."""

    def __init__(self, root: Path, *, user: str = "bounces", password: str = "geheim-wachtwoord") -> None:
        self.root, self.user, self.password = root, user, password
        self.port, self.tls_port = _free_port(), _free_port()
        self.ca = trustme.CA()
        self.ca_file = root / "ca.pem"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Dovecot:
        root = self.root
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)
        nobody = pwd.getpwnam("nobody")
        (root / "home" / self.user).mkdir(parents=True, exist_ok=True)
        shutil.chown(root / "home", "nobody")
        shutil.chown(root / "home" / self.user, "nobody")
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        cert.cert_chain_pems[0].write_to_path(str(root / "cert.pem"))
        cert.private_key_pem.write_to_path(str(root / "key.pem"))
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        (root / "passwd").write_text(f"{self.user}:{{PLAIN}}{self.password}\n")
        (root / "dovecot.conf").write_text(CONFIG.format(
            root=root, uid=nobody.pw_uid, gid=nobody.pw_gid, port=self.port, tls_port=self.tls_port,
        ))
        self.process = subprocess.Popen(
            ["dovecot", "-F", "-c", str(root / "dovecot.conf")],
            stdout=subprocess.DEVNULL, stderr=open(root / "stderr.log", "wb"),  # noqa: SIM115
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"Dovecot did not start:\n{self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        text = ""
        for name in ("stderr.log", "dovecot.log"):
            path = self.root / name
            if path.exists():
                text += path.read_text(errors="replace")
        return text
