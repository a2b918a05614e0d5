"""The development CA: AWS's shape, private files, reissued intermediates; and commitments."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from zcbench.errors import DataError, EnvError, UsageError
from zcbench.nitro import DevCA, NsmEmulator, load_commitment_pcrs, verify_attestation

NOW = dt.datetime(2026, 7, 1, 0, 0, 0, tzinfo=dt.UTC)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_dev_ca_lives_in_the_home_with_private_keys(zcbench_home: Path) -> None:
    old = os.umask(0o022)
    try:
        ca = DevCA.load_or_create(now=NOW)
    finally:
        os.umask(old)
    assert ca.folder == zcbench_home / "devca"
    assert _mode(ca.folder) == 0o700
    for name in ("root", "regional", "zonal", "instance"):
        assert _mode(ca.folder / f"{name}.key") == 0o600
        assert (ca.folder / f"{name}.pem").is_file()


def test_chain_has_aws_shape() -> None:
    ca = DevCA.load_or_create(now=NOW)
    leaf = ca.issue_leaf("i-0123456789abcdef0-enc0123456789abcdef", NOW)
    bundle = [x509.load_der_x509_certificate(d) for d in leaf.cabundle]
    cert = x509.load_der_x509_certificate(leaf.certificate)
    assert bundle[0].subject == bundle[0].issuer  # root first
    path_lens = [
        c.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length
        for c in bundle
    ]
    assert path_lens == [None, 2, 1, 0]
    for c in [*bundle, cert]:
        key = c.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        assert isinstance(key.curve, ec.SECP384R1)
        assert "SIMULATED" in c.subject.rfc4514_string()
    instance_usage = bundle[3].extensions.get_extension_for_class(x509.KeyUsage)
    assert instance_usage.critical
    assert instance_usage.value.key_cert_sign
    assert not instance_usage.value.digital_signature
    leaf_usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert not leaf_usage.critical
    assert leaf_usage.value.digital_signature
    assert leaf_usage.value.content_commitment
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    assert cert.not_valid_before_utc == NOW - dt.timedelta(seconds=3)
    assert cert.not_valid_after_utc == NOW + dt.timedelta(hours=3)


def test_reload_keeps_the_root_and_reissues_expiring_intermediates() -> None:
    first = DevCA.load_or_create(now=NOW)
    again = DevCA.load_or_create(now=NOW + dt.timedelta(hours=1))
    assert again.cabundle() == first.cabundle()  # nothing expiring: nothing reissued
    later = NOW + dt.timedelta(days=2)  # the 1-day instance certificate no longer covers
    reloaded = DevCA.load_or_create(now=later)
    assert reloaded.cabundle()[:3] == first.cabundle()[:3]
    assert reloaded.cabundle()[3] != first.cabundle()[3]
    much_later = NOW + dt.timedelta(days=30)  # past the 20-day regional: all below reissued
    rotated = DevCA.load_or_create(now=much_later)
    assert rotated.cabundle()[0] == first.cabundle()[0]
    assert not set(rotated.cabundle()[1:]) & set(first.cabundle()[1:])
    # an emulator holding an old CA object reissues on demand as its clock moves on
    emulator = NsmEmulator({0: b"\x01" * 48, 1: b"\x02" * 48, 2: b"\x03" * 48}, first,
                           clock=lambda: much_later)  # fmt: skip
    verify_attestation(
        emulator.attestation(), trust="dev", at=much_later, expected_pcrs={0: b"\x01" * 48}
    )


def test_keys_readable_by_others_are_refused() -> None:
    ca = DevCA.load_or_create(now=NOW)
    os.chmod(ca.folder / "root.key", 0o644)
    with pytest.raises(EnvError, match="chmod 0600"):
        DevCA.load_or_create(now=NOW)


def test_damaged_ca_files_are_an_environment_error() -> None:
    ca = DevCA.load_or_create(now=NOW)
    (ca.folder / "zonal.key").write_bytes(b"not a key")
    with pytest.raises(EnvError, match="delete the folder"):
        DevCA.load_or_create(now=NOW)


def test_a_key_that_does_not_match_its_certificate_is_refused() -> None:
    ca = DevCA.load_or_create(now=NOW)
    (ca.folder / "zonal.key").write_bytes((ca.folder / "regional.key").read_bytes())
    with pytest.raises(EnvError, match="not the private key"):
        DevCA.load_or_create(now=NOW)


# -- commitment.json ---------------------------------------------------------------------------


def _commitment(tmp_path: Path, body: object) -> Path:
    path = tmp_path / "commitment.json"
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    return path


def test_commitment_pcrs_are_read(tmp_path: Path) -> None:
    body = {
        "schema": "zcbench.commitment/1",
        "strategy": "s",
        "pcrs": {"0": "aa" * 48, "1": "BB" * 48, "2": "cc" * 48},
        "strategy_sha256": "00" * 32,
        "lock_sha256": "11" * 32,
        "zcbench_version": "0.1.0",
        "source_date_epoch": 0,
    }
    pcrs = load_commitment_pcrs(_commitment(tmp_path, body))
    assert pcrs == {0: b"\xaa" * 48, 1: b"\xbb" * 48, 2: b"\xcc" * 48}


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("{", "not valid JSON"),
        ("[]", "JSON object"),
        ({"schema": "other", "pcrs": {"0": "aa" * 48}}, "schema"),
        ({"schema": "zcbench.commitment/1"}, "pcrs"),
        ({"schema": "zcbench.commitment/1", "pcrs": {}}, "pcrs"),
        ({"schema": "zcbench.commitment/1", "pcrs": {"00": "aa" * 48}}, "index"),
        ({"schema": "zcbench.commitment/1", "pcrs": {"32": "aa" * 48}}, "index"),
        ({"schema": "zcbench.commitment/1", "pcrs": {"0": "aa" * 47}}, "hex digits"),
        ({"schema": "zcbench.commitment/1", "pcrs": {"0": "zz" * 48}}, "hex digits"),
        ({"schema": "zcbench.commitment/1", "pcrs": {"0": 5}}, "hex digits"),
        ('{"schema": "zcbench.commitment/1", "pcrs": {"0": "aa"}, "pcrs": {}}', "twice"),
    ],
)
def test_malformed_commitments_are_data_errors(tmp_path: Path, body: object, why: str) -> None:
    with pytest.raises(DataError, match=why):
        load_commitment_pcrs(_commitment(tmp_path, body))


def test_missing_commitment_is_a_usage_error(tmp_path: Path) -> None:
    # a path the caller named that is not there: the caller's mistake, not bad data (exit 2)
    with pytest.raises(UsageError, match="does not exist"):
        load_commitment_pcrs(tmp_path / "nope.json")


# -- export_dev_root: a device or a pipe is written into, a regular file replaced atomically ----


def test_export_dev_root_writes_into_a_pipe_instead_of_renaming_over_it(tmp_path: Path) -> None:
    from zcbench.nitro import export_dev_root

    ca = DevCA.load_or_create(now=NOW)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader, so the writer can open
    try:
        root = export_dev_root(fifo)
        received = os.read(reader, 1 << 16)
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)  # still the pipe, not a file renamed over it
    assert received == ca.root_pem.read_bytes()
    assert root.kind == "dev"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]  # no temporary left


def test_export_dev_root_replaces_a_regular_file_whole(tmp_path: Path) -> None:
    from zcbench.nitro import export_dev_root

    ca = DevCA.load_or_create(now=NOW)
    out = tmp_path / "dev-root.pem"
    out.write_bytes(b"an older, longer file " * 200)
    before = out.stat().st_ino
    export_dev_root(out)
    assert out.read_bytes() == ca.root_pem.read_bytes()
    assert out.stat().st_ino != before  # written aside and renamed into place
    assert _mode(out) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev-root.pem"]


@pytest.mark.slow
def test_export_root_to_dev_stdout_writes_the_pem_on_standard_output(
    tmp_path: Path, zcbench_home: Path
) -> None:
    import subprocess
    import sys

    ca = DevCA.load_or_create(now=NOW)
    argv = [sys.executable, "-m", "zcbench", "nitro", "export-root", "--out", "/dev/stdout"]
    piped = subprocess.run(argv, capture_output=True, check=False)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.startswith(ca.root_pem.read_bytes())
    # Standard output redirected to a file: the PEM lands in that file, and what the command
    # prints after it follows it (the file is appended to, never replaced under the shell).
    target = tmp_path / "out.txt"
    with target.open("wb") as handle:
        redirected = subprocess.run(argv, stdout=handle, stderr=subprocess.PIPE, check=False)
    assert redirected.returncode == 0, redirected.stderr
    text = target.read_bytes()
    assert text.startswith(ca.root_pem.read_bytes())
    assert b"wrote /dev/stdout" in text


def test_export_dev_root_to_a_full_device_is_an_environment_error() -> None:
    from zcbench.nitro import export_dev_root

    DevCA.load_or_create(now=NOW)
    with pytest.raises(EnvError, match="/dev/full: cannot write: no space left on device"):
        export_dev_root(Path("/dev/full"))
