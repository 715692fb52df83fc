"""Schema-driven fuzzing of the Management API with schemathesis."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import Management


@pytest.mark.runs_last
def test_management_api_fuzzed_from_its_openapi_document_answers_no_5xx(
    mgmt: Management, interop_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Schema-driven fuzzing: schemathesis reads /api/v2/openapi.json and sends generated
    and mutated requests (coverage, fuzzing and stateful phases); no answer may be a 5xx.
    It runs last (the `runs_last` mark), because it creates, changes and deletes whatever
    it finds."""
    token = mgmt.token()
    exe = Path(sys.executable).with_name("schemathesis")
    # A new seed each run explores new inputs; it is printed so a failure can be replayed
    # with PORTCULLIS_SCHEMATHESIS_SEED=<seed>.
    seed = os.environ.get("PORTCULLIS_SCHEMATHESIS_SEED") or str(random.SystemRandom().randrange(1, 2**31))
    examples = os.environ.get("PORTCULLIS_SCHEMATHESIS_EXAMPLES", "100")
    with capsys.disabled():
        print(f"\n    schemathesis: seed {seed}, {examples} examples per operation")
    result = subprocess.run(
        [
            str(exe), "run", f"{mgmt.base}/api/v2/openapi.json",
            "--checks", "not_a_server_error",
            "--header", f"Authorization: Bearer {token}",
            "--max-examples", examples,
            "--seed", seed,
            "--tls-verify", str(mgmt.cert),
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        # Its cache (.schemathesis/) goes to the run's scratch directory, not the repository.
        cwd=interop_tmp,
    )
    summary = [line for line in result.stdout.splitlines() if "generated" in line or "passed" in line or "failed" in line]
    with capsys.disabled():
        print("    schemathesis:", "; ".join(summary[-2:]))
    assert result.returncode == 0, (
        f"schemathesis found a server error (replay with PORTCULLIS_SCHEMATHESIS_SEED={seed}):\n"
        + result.stdout[-4000:]
        + result.stderr[-2000:]
    )
