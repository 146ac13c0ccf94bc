"""The operations guide's health probe, run as written with bash against the real app and the
fake ComfyUI: only the host names changed, and `set -o pipefail` added (without it, a failing
curl piped into jq can still print OK). It prints OK against a working studio, and fails when
the studio or its ComfyUI is stopped (issue 13).

If jq is missing, a tiny stand-in (`jq -e PATH`, enough for the probe's two paths) is put on
PATH for the test; curl must be there.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.conftest import API_KEY, free_port

# The guide's "Health checks" script, verbatim (its hosts are replaced below).
GUIDE_PROBE = """\
#!/usr/bin/env bash
set -e
# 1. ComfyUI
curl -sS --max-time 5 http://localhost:8188/queue >/dev/null
# 2. Gateway sees ComfyUI through the provider
curl -sS --max-time 60 -X POST http://gateway:4000/v1/images/generations \\
-H "Authorization: Bearer $LITELLM_API_KEY" \\
-d '{"model":"protolabs/qwen-image","prompt":"healthcheck"}' \\
| jq -e '.data[0].b64_json' >/dev/null
# 3. Chat path also works
curl -sS --max-time 60 -X POST http://gateway:4000/v1/chat/completions \\
-H "Authorization: Bearer $LITELLM_API_KEY" \\
-d '{"model":"protolabs/qwen-image-chat","messages":[{"role":"user","content":"healthcheck"}]}' \\
| jq -e '.choices[0].message.content' >/dev/null
echo OK
"""

JQ_STANDIN = """\
#!{python}
import json, re, sys
args = [a for a in sys.argv[1:] if a != "-e"]
value = json.load(sys.stdin)
for key, index in re.findall(r"\\.(\\w+)|\\[(\\d+)\\]", args[0]):
    try:
        value = value[key] if key else value[int(index)]
    except (KeyError, IndexError, TypeError):
        value = None
        break
print(json.dumps(value))
sys.exit(0 if value not in (None, False) else 1)
"""

pytestmark = pytest.mark.skipif(shutil.which("curl") is None or shutil.which("bash") is None,
                                reason="the guide's probe needs bash and curl")


def probe_script(comfy_url: str, studio_url: str) -> str:
    script = GUIDE_PROBE.replace("http://localhost:8188", comfy_url)
    script = script.replace("http://gateway:4000", studio_url)
    return script.replace("set -e\n", "set -e\nset -o pipefail\n", 1)


def run_probe(tmp_path: Path, comfy_url: str, studio_url: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "probe.sh"
    path.write_text(probe_script(comfy_url, studio_url))
    env = {**os.environ, "LITELLM_API_KEY": API_KEY}
    if shutil.which("jq") is None:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        jq = bin_dir / "jq"
        jq.write_text(JQ_STANDIN.format(python=os.path.realpath(sys.executable)))
        jq.chmod(jq.stat().st_mode | stat.S_IEXEC)
        env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    return subprocess.run(["bash", str(path)], capture_output=True, text=True, env=env,
                          timeout=180)


def test_the_guides_probe_prints_ok(studio, tmp_path: Path) -> None:
    result = run_probe(tmp_path, studio.fake.url, studio.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OK"


def test_the_guides_probe_fails_when_the_studio_is_stopped(studio, tmp_path: Path) -> None:
    stopped = f"http://127.0.0.1:{free_port()}"     # nothing listens there
    result = run_probe(tmp_path, studio.fake.url, stopped)
    assert result.returncode != 0 and "OK" not in result.stdout


def test_the_guides_probe_fails_when_comfyui_is_stopped(studio, tmp_path: Path) -> None:
    studio.fake.stop()
    result = run_probe(tmp_path, studio.fake.url, studio.url)
    assert result.returncode != 0 and "OK" not in result.stdout


def test_the_jq_stand_in_reads_the_probes_paths(tmp_path: Path) -> None:
    """Used only where jq is missing; checked here so it is right when it is needed."""
    jq = tmp_path / "jq"
    jq.write_text(JQ_STANDIN.format(python=os.path.realpath(sys.executable)))
    jq.chmod(jq.stat().st_mode | stat.S_IEXEC)

    def exit_code(document: str, path: str) -> int:
        return subprocess.run([str(jq), "-e", path], input=document, text=True,
                              capture_output=True, timeout=30).returncode

    assert exit_code('{"data": [{"b64_json": "iVBOR"}]}', ".data[0].b64_json") == 0
    assert exit_code('{"error": {"message": "no"}}', ".data[0].b64_json") == 1
    assert exit_code('{"choices": [{"message": {"content": "ok"}}]}',
                     ".choices[0].message.content") == 0
