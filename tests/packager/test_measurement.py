"""The measured image does not depend on the sealing key: PCR0 is the same under any zcbench home
and after a data-key rotation; the sealed payload is delivered at boot and the enclave runs it
only if it opens to the measured hashes."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from tests.packager.helpers import make_notebook
from zcbench.channel import Message
from zcbench.enclave.boot import BootError, load_build_image, unseal_image
from zcbench.host._boot import release_key
from zcbench.host.launcher import launch_local
from zcbench.keys import LocalKeyBroker, read_sealed_header
from zcbench.nitro import DevCA, NsmEmulator
from zcbench.packager import BUILD_VARIANTS, check_reproducible, package_notebook, read_app_image


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def notebook(tmp_path: Path) -> Path:
    return make_notebook(tmp_path / "nb" / "research.ipynb")


def test_pcr0_is_the_same_under_another_zcbench_home(
    notebook: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It differed: the sealed payload (ciphertext under the home's data key) was measured."""
    a = package_notebook(notebook, tmp_path / "a")
    monkeypatch.setenv("ZCBENCH_HOME", str(tmp_path / "another-home"))
    b = package_notebook(notebook, tmp_path / "b")
    assert a.pcrs == b.pcrs
    one, two = _tree(a.build_dir), _tree(b.build_dir)
    assert one.pop("payload.sealed") != two.pop("payload.sealed")  # two data keys
    assert one == two  # commitment, manifest, bundle, image, templates: byte for byte
    key_a = read_sealed_header(a.paths.payload.read_bytes()).key_id
    assert key_a != read_sealed_header(b.paths.payload.read_bytes()).key_id
    assert key_a.encode() not in a.paths.commitment.read_bytes()


def test_rotating_the_data_key_changes_no_pcr(
    notebook: Path, tmp_path: Path, zcbench_home: Path
) -> None:
    before = package_notebook(notebook, tmp_path / "before")
    shutil.rmtree(zcbench_home / "keybroker")  # a new master key and data key
    after = package_notebook(notebook, tmp_path / "after")
    assert after.pcrs == before.pcrs
    assert after.paths.payload.read_bytes() != before.paths.payload.read_bytes()


def test_the_measured_image_holds_the_hashes_not_the_payload(
    notebook: Path, tmp_path: Path
) -> None:
    build = package_notebook(notebook, tmp_path / "out")
    sealed = build.paths.payload.read_bytes()
    for name, data in _tree(build.build_dir).items():
        if name != "payload.sealed":
            assert sealed[-64:] not in data, name  # no ciphertext in anything measured
    manifest = read_app_image(build.paths.ramdisks[1].read_bytes())
    assert manifest == build.manifest
    assert manifest.strategy_sha256 == build.commitment.strategy_sha256
    assert manifest.sealed_content_sha256 == build.commitment.sealed_content_sha256
    variant = package_notebook(notebook, tmp_path / "variant", overrides={"fast": 4})
    assert variant.manifest.strategy_sha256 == manifest.strategy_sha256
    assert variant.manifest.sealed_content_sha256 != manifest.sealed_content_sha256
    assert variant.pcrs[0] != build.pcrs[0]


def _relay(broker: LocalKeyBroker):  # type: ignore[no-untyped-def]
    def relay(document: bytes, blob: bytes, key_id: str) -> bytes:
        fields = {"document": document, "ciphertext_blob": blob, "key_id": key_id}
        request = Message("key_request", fields)
        return release_key(request, broker)["ciphertext"]  # type: ignore[no-any-return]

    return relay


def test_the_enclave_refuses_a_payload_of_another_build(notebook: Path, tmp_path: Path) -> None:
    """Same strategy, same data key, another parameter: the key is released (the image's PCR0
    has a policy), but what it opens is not what the image measures."""
    a = package_notebook(notebook, tmp_path / "a")
    b = package_notebook(notebook, tmp_path / "b", overrides={"fast": 4})
    image = load_build_image(a.build_dir)
    assert image.pcrs == a.pcrs
    nsm = NsmEmulator(pcrs=dict(a.pcrs), ca=DevCA.load_or_create(now=dt.datetime.now(dt.UTC)))
    broker = LocalKeyBroker()
    strategy = unseal_image(image, a.paths.payload.read_bytes(), nsm, _relay(broker))
    assert strategy.name == a.strategy
    with pytest.raises(BootError, match="not the strategy and parameters the image measures"):
        unseal_image(image, b.paths.payload.read_bytes(), nsm, _relay(broker))
    with pytest.raises(BootError, match="malformed"):
        unseal_image(image, b"\xa0", nsm, _relay(broker))
    # both builds keep their policies: packaging b did not lock a out
    assert {p.pcr0 for p in broker.policies(a.strategy)} == {a.pcrs[0], b.pcrs[0]}


def test_the_enclave_process_takes_the_payload_with_the_boot_message(
    notebook: Path, tmp_path: Path
) -> None:
    """How a Nitro enclave gets it (its image holds no payload): the boot message's config."""
    build = package_notebook(notebook, tmp_path / "out")
    sealed = build.paths.payload.read_bytes()
    build.paths.payload.unlink()  # nothing to read from the folder
    for config, want in (({}, "error"), ({"sealed_payload": sealed}, "booted")):
        image = ["--build", str(build.build_dir)]
        enclave = launch_local(image, isolate_network=False, payload="boot")
        try:
            conn = enclave.connect(timeout=60)
            conn.send(Message("boot", {"run_id": "run-test", "config": config}))
            reply = conn.recv(timeout=60)
            if reply.type == "key_request":
                conn.send(release_key(reply, None))
                reply = conn.recv(timeout=60)
            assert reply.type == want, reply.fields
            if want == "error":
                assert reply["code"] == "boot_failed"
                assert "no sealed payload" in reply["reason"]
            else:
                conn.send(Message("shutdown", {"reason": "test"}))
            conn.close()
        finally:
            enclave.kill()
            enclave.stop()


@pytest.mark.slow
def test_reproducible_across_homes_and_machines(notebook: Path, tmp_path: Path) -> None:
    """Another process, folder depth, umask, TZ, locale, hash seed and a new, empty zcbench home:
    the same bytes but the sealed payload, the same PCRs."""
    reference = package_notebook(notebook, tmp_path / "ref")
    variant = BUILD_VARIANTS[1]
    assert variant.own_home
    assert (variant.umask, variant.tz, variant.locale) != (0o022, "UTC", "C")
    report = check_reproducible(notebook, reference_dir=reference.build_dir, variants=[variant])
    assert report.identical, report.differences
    assert report.pcrs[0] == report.pcrs[1]
    assert report.pcrs[0]["0"] == reference.pcrs[0].hex()
