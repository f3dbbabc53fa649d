"""A private Postfix instance for the end-to-end bounce test: its own config_directory and
queue_directory in a temp dir, listening on 127.0.0.1 on a free port only.

It accepts mail for DOMAIN without checking the recipient (as most relays do), delivers
the known users to Maildirs with the virtual(8) agent and bounces the unknown ones itself,
by email; the bounce domain goes to a pipe(8) transport that runs `newsletter bounces
receive`, exactly as the README tells a publisher to set it up. Needs Debian's postfix
package (the system instance is never configured or started) and root, as CI has.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

DOMAIN = "example.net"
BOUNCE_DOMAIN = "bounces.example.nl"

SERVICES = """\
{port}     inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
newsletter unix -       n       n       -       2       pipe
  flags=Rq user={user} argv={command} bounces receive --recipient ${{recipient}}
"""

MAIN = """\
compatibility_level = 3.6
config_directory = {root}/etc
queue_directory = {root}/queue
data_directory = {root}/data
meta_directory = /etc/postfix
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file_prefixes = {root}
maillog_file = {root}/maillog
myhostname = mx.example.nl
mydomain = example.nl
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
# Accept every recipient and bounce the unknown ones later, by email: what the relays
# of most providers do, and what the return mailbox is for.
smtpd_reject_unlisted_recipient = no
virtual_mailbox_domains = {domain}
virtual_mailbox_base = {root}/mail
virtual_mailbox_maps = texthash:{root}/etc/vmailbox
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
relay_domains = {bounce_domain}
recipient_delimiter = +
transport_maps = texthash:{root}/etc/transport
newsletter_destination_recipient_limit = 1
alias_maps =
alias_database =
smtp_dns_support_level = disabled
disable_vrfy_command = yes
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
bounce_queue_lifetime = 1d
delay_warning_time = 0
"""


def reachable_by_others(path: Path) -> bool:
    """Whether a user other than root can reach and run `path` (every folder on the way o+x)."""
    path = path.resolve()
    return all(p.stat().st_mode & 0o001 for p in [path, *path.parents])


def pipe_command(root: Path, config_file: Path) -> list[str]:
    """How the pipe (running as nobody) starts this very install of newsletter.

    This interpreter, when nobody can run it; otherwise (a Python under /root, as pyenv
    installs it) the system's Python of the same version, with this install's
    site-packages added, through a small wrapper script.
    """
    if reachable_by_others(Path(sys.executable)):
        return [sys.executable, "-m", "newsletter", "--config", str(config_file)]
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if not system.exists() or not reachable_by_others(system):
        raise RuntimeError(f"{sys.executable} cannot be run by nobody and there is no {system}")
    packages = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    wrapper = root / "newsletter-receive"
    wrapper.write_text(
        f"#!{system} -I\n"
        "import site\n"
        "import sys\n"
        f"site.addsitedir({packages!r})\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})\n"
        "import runpy\n"
        "sys.argv[0] = 'newsletter'\n"
        "runpy.run_module('newsletter', run_name='__main__', alter_sys=True)\n"
    )
    wrapper.chmod(0o755)
    return [str(wrapper), "--config", str(config_file)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def available() -> str:
    """'' when a private Postfix can run here, else why not."""
    if not shutil.which("postfix") or not Path("/usr/lib/postfix/sbin/master").exists():
        return "Debian's postfix package is not installed (.ci/run installs it)"
    if os.geteuid() != 0:
        return "a private Postfix instance needs root (its master runs its daemons as postfix)"
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return "there is no postfix user (install Debian's postfix package)"
    return ""


class Postfix:
    """One private instance: start(), then stop(); `maildir(user)` is a known user's Maildir."""

    def __init__(self, root: Path, *, users: list[str], command: list[str], user: str = "nobody") -> None:
        self.root = root
        self.users = users
        self.port = free_port()
        self.command = command
        self.user = user
        self.env = {**os.environ, "MAIL_CONFIG": str(root / "etc")}

    @property
    def url(self) -> str:
        return f"smtp+plain://127.0.0.1:{self.port}"

    def maildir(self, user: str) -> Path:
        return self.root / "mail" / DOMAIN / user

    def start(self) -> Postfix:
        etc = self.root / "etc"
        for sub in ("etc", "queue", "data", "mail"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        owner = pwd.getpwnam("postfix")
        os.chown(self.root / "data", owner.pw_uid, owner.pw_gid)
        mail_user = pwd.getpwnam(self.user)
        os.chown(self.root / "mail", mail_user.pw_uid, mail_user.pw_gid)
        (etc / "main.cf").write_text(MAIN.format(
            root=self.root, domain=DOMAIN, bounce_domain=BOUNCE_DOMAIN,
            uid=mail_user.pw_uid, gid=mail_user.pw_gid,
        ))
        (etc / "master.cf").write_text(SERVICES.format(
            port=f"127.0.0.1:{self.port}", user=self.user, command=" ".join(self.command),
        ))
        (etc / "vmailbox").write_text("".join(f"{u}@{DOMAIN} {DOMAIN}/{u}/\n" for u in self.users))
        (etc / "transport").write_text(
            f"bounces@{BOUNCE_DOMAIN} newsletter:\nunsubscribe@{BOUNCE_DOMAIN} newsletter:\n"
        )
        self._postfix("check")
        self._postfix("start")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(100).startswith(b"220"):
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"Postfix did not start on port {self.port}:\n{self.log()}")

    def stop(self) -> None:
        subprocess.run(["postfix", "-c", str(self.root / "etc"), "stop"], env=self.env,
                       capture_output=True, timeout=60)

    def queue_is_empty(self) -> bool:
        result = subprocess.run(["postqueue", "-c", str(self.root / "etc"), "-j"], env=self.env,
                                capture_output=True, text=True, timeout=30)
        return result.returncode == 0 and not result.stdout.strip()

    def log(self) -> str:
        path = self.root / "maillog"
        return path.read_text(errors="replace") if path.exists() else "(no maillog)"

    def _postfix(self, action: str) -> None:
        result = subprocess.run(["postfix", "-c", str(self.root / "etc"), action], env=self.env,
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"postfix {action} failed ({result.returncode}): {result.stderr}{result.stdout}")
