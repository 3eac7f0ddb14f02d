"""Cross-check with an independent Digest client: sipp answers gbsip's challenge.

A loopback UDP platform in this test challenges sipp's REGISTER with a nonce
from a gbsip NonceFactory (bound to sipp's source address); sipp computes the
credentials with its own MD5 code ([authentication]); gbsip's verify() must
accept them, and the platform answers 200 so sipp exits 0.  Issue 3 tests,
RFC 7616 §3.4, GB/T 28181 §9.1.2.1.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

import gbsip
from gbsip.digest import NonceFactory, Reason, Verdict, verify

SCENARIO = Path(__file__).parent / "data" / "sipp" / "uac_register_digest.xml"
DEVICE = "34020000001320000001"
PASSWORD = "12345678"
REALM = "3402000000"

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp (Debian sip-tester) not on PATH"),
]


class Platform(threading.Thread):
    """The smallest registrar: 401 without credentials, then verify()."""

    def __init__(self, qop: tuple[str, ...]) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.nonces = NonceFactory(key=b"sipp-cross-check-key-0123456789!", lifetime=30)
        self.qop = qop
        self.verdicts: list[Verdict] = []
        self.authorizations: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        for _ in range(200):  # bounded: at most 200 datagrams or 40 s
            if self.stop.is_set():
                break
            try:
                data, addr = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            msg = gbsip.parse(data)
            if not isinstance(msg, gbsip.Request) or msg.method != "REGISTER":
                continue
            binding = f"{addr[0]}:{addr[1]}"
            auth = msg.headers.get("Authorization")
            if auth is None or auth.startswith("Capability"):
                ch = self.nonces.challenge(REALM, binding=binding, qop=self.qop)
                reply = msg.reply(401, headers=[("WWW-Authenticate", str(ch))])
            else:
                self.authorizations.append(auth)
                v = verify(auth, msg.method, password=PASSWORD, nonces=self.nonces,
                           realm=REALM, request_uri=msg.uri, binding=binding)
                self.verdicts.append(v)
                reply = msg.reply(200 if v.ok else 403, headers=[("Expires", "3600")])
            self.sock.sendto(bytes(reply), addr)
        self.sock.close()


@pytest.mark.parametrize("qop", [(), ("auth",)], ids=["no-qop", "qop-auth"])
def test_sipp_credentials_verify_in_gbsip(tmp_path: Path, qop: tuple[str, ...]) -> None:
    """sipp's [authentication] answer to a gbsip challenge passes gbsip's verify()."""
    platform = Platform(qop)
    platform.start()
    cmd = ["sipp", "-sf", str(SCENARIO), "-m", "1", "-i", "127.0.0.1", "-s", DEVICE,
           "-ap", PASSWORD, "-nostdin", "-timeout", "15", "-timeout_error",
           f"127.0.0.1:{platform.port}"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()  # the process this test started, by its handle
            proc.wait()
        platform.stop.set()
        platform.join(timeout=5)
    assert platform.verdicts, f"sipp sent no credentials; output:\n{out.decode(errors='replace')}"
    verdict = platform.verdicts[0]
    assert verdict.reason is Reason.OK, (verdict, platform.authorizations[0])
    assert verdict.username == DEVICE and verdict.algorithm == "MD5"
    assert verdict.qop == (qop[0] if qop else None)
    assert proc.returncode == 0, out.decode(errors="replace")
