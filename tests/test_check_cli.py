"""`newsletter check` end to end: a subprocess against a fully right setup (every finding
ok, exit 0), one fault (exit 1 with Error:), and the table a person reads."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from check_helpers import ca, keys, right_setup, right_zone, without  # noqa: F401 - fixtures
from dns_server import DnsServer
from send_helpers import write_article


def require_spamassassin() -> None:
    if shutil.which("spamassassin") is None:
        if os.environ.get("CI"):
            pytest.fail("spamassassin is not installed; CI must run this test (.ci/run installs it)")
        pytest.skip("spamassassin is not installed (apt-get install spamassassin); CI runs this test")


def test_check_json_on_a_fully_right_setup_is_all_ok_and_exits_0(workdir, right_setup, run_cli) -> None:
    require_spamassassin()
    article = write_article(workdir)
    result = run_cli("check", str(article), "--json", cwd=workdir, env=right_setup.env)
    assert result.returncode == 0, result.stdout + result.stderr
    findings = json.loads(result.stdout)
    not_ok = [f for f in findings if f["status"] != "ok"]
    assert not_ok == [], json.dumps(not_ok, indent=2)
    assert {f["check"] for f in findings} == {"spf", "dkim", "dmarc", "mx", "relay", "setup", "content"}
    assert all({"check", "status", "fix"} <= set(f) for f in findings)
    assert len([f for f in findings if f["check"] == "content"]) == 6
    assert right_setup.web.paths == ["/healthz"]
    assert right_setup.relay.handler.attempts == 0 and right_setup.relay.handler.messages == []
    assert "geheim" not in result.stdout + result.stderr
    assert result.stderr.splitlines()[-1] == f"{len(findings)} ok, 0 warn, 0 fail"


def test_check_without_an_article_checks_the_setup_only(workdir, right_setup, run_cli) -> None:
    result = run_cli("check", "--json", cwd=workdir, env=right_setup.env)
    assert result.returncode == 0, result.stdout + result.stderr
    findings = json.loads(result.stdout)
    assert {f["check"] for f in findings} == {"spf", "dkim", "dmarc", "mx", "relay", "setup"}
    assert {f["status"] for f in findings} == {"ok"}


def test_one_fault_exits_1_with_the_record_to_publish(workdir, right_setup, keys, run_cli) -> None:
    broken = DnsServer(without(right_zone(keys[0]), "_dmarc.example.nl", "TXT")).start()
    try:
        env = {**right_setup.env, "NEWSLETTER_CHECK_NAMESERVERS": broken.address}
        result = run_cli("check", "--json", cwd=workdir, env=env)
    finally:
        broken.stop()
    assert result.returncode == 1
    failed = [f for f in json.loads(result.stdout) if f["status"] != "ok"]
    assert failed == [{
        "check": "dmarc", "status": "fail", "subject": "_dmarc.example.nl",
        "message": "no DMARC record at _dmarc.example.nl; Gmail, Yahoo and Outlook.com reject or spam-folder bulk "
                   "mail without one",
        "fix": 'publish TXT _dmarc.example.nl "v=DMARC1; p=none"',
    }]
    assert result.stderr.splitlines()[-1] == (
        "Error: 1 check failed: fix it before the first send, then run `newsletter check` again")


def test_the_table_shows_each_finding_and_the_fix_under_what_is_not_ok(workdir, right_setup, run_cli) -> None:
    env = {**right_setup.env, "NEWSLETTER_DKIM_SELECTOR": "", "NEWSLETTER_DKIM_KEY_FILE": ""}
    result = run_cli("check", cwd=workdir, env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ok    spf    v=spf1 a:relay.example.nl")
    dkim = lines.index("warn  dkim   messages are not DKIM-signed; Gmail, Yahoo and Outlook.com want bulk mail signed")
    assert lines[dkim + 1] == ("             fix: run `newsletter dkim keygen`, publish the TXT record it prints, "
                               "then set dkim.selector and dkim.key_file in newsletter.toml")
    assert sum(line.startswith("             fix: ") for line in lines) == 1


def test_other_commands_do_not_load_the_check_s_libraries() -> None:
    code = ("import sys, newsletter.cli.main; "
            "print(sorted(m for m in ('dns', 'publicsuffixlist', 'newsletter.preflight') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr
