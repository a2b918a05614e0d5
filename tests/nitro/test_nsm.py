"""The NSM: message encoding, the emulator's registers and locks, and the device over a fake
ioctl that plays the kernel driver's part (reads and writes the buffers by address)."""

from __future__ import annotations

import ctypes
import datetime as dt
import errno
import struct
from pathlib import Path

import pytest

from zcbench.errors import EnvError
from zcbench.nitro import (
    DevCA,
    Nsm,
    NsmDevice,
    NsmEmulator,
    NsmError,
    parse_document,
    verify_attestation,
)
from zcbench.nitro._cbor import decode, encode
from zcbench.nitro.emulator import extend, pcr4_for
from zcbench.nitro.nsm import MAX_RESPONSE_BYTES, NSM_IOCTL_RAW, encode_request

NOW = dt.datetime(2026, 5, 6, 7, 8, 9, 10000, tzinfo=dt.UTC)
PCRS = {0: b"\x01" * 48, 1: b"\x02" * 48, 2: b"\x03" * 48}


@pytest.fixture
def emulator() -> NsmEmulator:
    return NsmEmulator(
        PCRS, DevCA.load_or_create(now=NOW), clock=lambda: NOW, rng=lambda n: b"\x07" * n
    )


# Reference §4.2: the request bytes real clients send.
@pytest.mark.parametrize(
    ("name", "fields", "hex_"),
    [
        (
            "Attestation",
            {"user_data": None, "nonce": None, "public_key": None},
            "a16b4174746573746174696f6ea369757365725f64617461f6656e6f6e6365f66a7075626c69635f6b6579f6",
        ),
        ("DescribePCR", {"index": 0}, "a16b4465736372696265504352a165696e64657800"),
        (
            "ExtendPCR",
            {"index": 16, "data": b"abc"},
            "a169457874656e64504352a265696e64657810646461746143616263",
        ),
        ("LockPCR", {"index": 16}, "a1674c6f636b504352a165696e64657810"),
        ("LockPCRs", {"range": 32}, "a1684c6f636b50435273a16572616e67651820"),
        ("DescribeNSM", None, "6b44657363726962654e534d"),
        ("GetRandom", None, "6947657452616e646f6d"),
    ],
)
def test_requests_match_the_reference_bytes(
    name: str, fields: dict[str, object] | None, hex_: str
) -> None:
    assert encode_request(name, fields).hex() == hex_


def test_extend_is_sha384_of_old_and_data() -> None:
    assert extend(bytes(48), b"abc").hex() == (
        "b1c16eb7634112b7c9d5ebd27e62a2d4528bbfcfd68b62d3afd9ecf98e0f413a"
        "84314acce78317fb69fd895155343e09"
    )


def test_pcr4_is_the_instance_id_extended_into_zero(nitro_vectors: Path) -> None:
    doc = parse_document((nitro_vectors / "doc_1.cbor").read_bytes())
    assert pcr4_for(doc.module_id) == doc.pcrs[4]
    assert pcr4_for(doc.module_id).hex().startswith("1f442c86d494a881")


def test_emulator_registers_and_locks(emulator: NsmEmulator) -> None:
    assert isinstance(emulator, Nsm)
    described = emulator.describe_nsm()
    assert described.max_pcrs == 32
    assert described.locked_pcrs == tuple(range(16))
    assert described.digest == "SHA384"
    assert described.module_id == emulator.module_id
    pcr0 = emulator.describe_pcr(0)
    assert pcr0.locked
    assert pcr0.data == PCRS[0]
    with pytest.raises(NsmError) as exc:
        emulator.extend_pcr(0, b"x")
    assert exc.value.code == "ReadOnlyIndex"
    with pytest.raises(NsmError) as exc:
        emulator.lock_pcr(3)
    assert exc.value.code == "ReadOnlyIndex"
    new = emulator.extend_pcr(16, b"abc")
    assert new == extend(bytes(48), b"abc")
    assert emulator.extend_pcr(16, b"d") == extend(new, b"d")
    assert not emulator.describe_pcr(16).locked
    emulator.lock_pcr(16)
    assert emulator.describe_pcr(16).locked
    with pytest.raises(NsmError) as exc:
        emulator.extend_pcr(16, b"x")
    assert exc.value.code == "ReadOnlyIndex"
    with pytest.raises(NsmError) as exc:
        emulator.describe_pcr(32)
    assert exc.value.code == "InvalidIndex"
    with pytest.raises(NsmError) as exc:
        emulator.lock_pcrs(33)
    assert exc.value.code == "InvalidIndex"
    emulator.lock_pcrs(32)
    assert emulator.describe_nsm().locked_pcrs == tuple(range(32))
    assert emulator.get_random() == b"\x07" * 256


def test_emulated_documents_carry_the_locked_pcrs_and_verify(emulator: NsmEmulator) -> None:
    emulator.extend_pcr(16, b"app")
    emulator.lock_pcr(16)
    data = emulator.attestation(nonce=b"n" * 1024, user_data=b"", public_key=b"k" * 1024)
    doc = parse_document(data)
    assert sorted(doc.pcrs) == [*range(16), 16]
    assert doc.pcrs[4] == pcr4_for(emulator.module_id)
    assert doc.pcrs[16] == extend(bytes(48), b"app")
    assert doc.nonce == b"n" * 1024
    assert doc.user_data == b""
    assert doc.timestamp == 1778051289010
    assert data[:6] == bytes.fromhex("8444a1013822")  # untagged, ES384, like the NSM
    leaf_lifetime = verify_attestation(
        data, trust="dev", at=NOW, expected_pcrs={**PCRS, 16: doc.pcrs[16]}
    ).chain[-1]
    assert leaf_lifetime.not_after - leaf_lifetime.not_before == dt.timedelta(hours=3, seconds=3)


def test_emulator_refuses_what_the_nsm_refuses(emulator: NsmEmulator) -> None:
    with pytest.raises(NsmError) as exc:
        emulator.attestation(nonce=b"n" * 1025)
    assert exc.value.code in {"InputTooLarge", "InvalidArgument"}
    answers = {
        "a0": "InvalidOperation",  # {}
        "6362616e": "InvalidOperation",  # "ban"
        "a16b4465736372696265504352a0": "InvalidArgument",  # DescribePCR without index
        "ff": "InvalidArgument",  # not CBOR
    }
    for request, code in answers.items():
        assert decode(emulator.handle(bytes.fromhex(request))) == {"Error": code}
    assert decode(emulator.handle(b"\x00" * 5000)) == {"Error": "InputTooLarge"}


# -- the device over a fake driver ----------------------------------------------------------


class FakeDriver:
    """Plays drivers/misc/nsm.c: reads the request and writes the response by address."""

    def __init__(self, module: NsmEmulator, *, fail_with: int | None = None) -> None:
        self.module = module
        self.fail_with = fail_with
        self.calls = 0

    def __call__(self, fd: int, request: int, arg: bytearray, mutate: bool) -> int:
        assert request == NSM_IOCTL_RAW
        assert mutate
        assert isinstance(arg, bytearray)
        assert len(arg) == 32
        self.calls += 1
        if self.fail_with is not None:
            raise OSError(self.fail_with, "fake driver failure")
        req_addr, req_len, resp_addr, resp_len = struct.unpack("<QQQQ", arg)
        assert resp_len == MAX_RESPONSE_BYTES
        response = self.module.handle(ctypes.string_at(req_addr, req_len))
        assert len(response) <= resp_len
        ctypes.memmove(resp_addr, response, len(response))
        arg[24:32] = struct.pack("<Q", len(response))
        return 0


@pytest.fixture
def device(tmp_path: Path, emulator: NsmEmulator) -> NsmDevice:
    node = tmp_path / "nsm"
    node.write_bytes(b"")
    return NsmDevice(node, ioctl=FakeDriver(emulator))


def test_device_speaks_the_same_protocol(device: NsmDevice, emulator: NsmEmulator) -> None:
    assert isinstance(device, Nsm)
    with device:
        assert device.describe_nsm() == emulator.describe_nsm()
        assert device.describe_pcr(1).data == PCRS[1]
        assert device.extend_pcr(20, b"abc") == extend(bytes(48), b"abc")
        device.lock_pcr(20)
        assert emulator.describe_pcr(20).locked
        data = device.attestation(nonce=b"lp nonce", user_data=b"checkpoint")
        result = verify_attestation(
            data, trust="dev", at=NOW, expected_pcrs=PCRS, nonce=b"lp nonce"
        )
        assert result.document.user_data == b"checkpoint"
        assert len(device.get_random()) == 256
        with pytest.raises(NsmError) as exc:
            device.extend_pcr(2, b"x")
        assert exc.value.code == "ReadOnlyIndex"


def test_device_maps_driver_errors(tmp_path: Path, emulator: NsmEmulator) -> None:
    node = tmp_path / "nsm"
    node.write_bytes(b"")
    with NsmDevice(node, ioctl=FakeDriver(emulator, fail_with=errno.EMSGSIZE)) as dev:
        with pytest.raises(NsmError) as exc:
            dev.get_random()
        assert exc.value.code == "InputTooLarge"
    with (
        NsmDevice(node, ioctl=FakeDriver(emulator, fail_with=errno.EIO)) as dev,
        pytest.raises(EnvError, match="ioctl"),
    ):
        dev.get_random()


def test_oversize_request_never_reaches_the_driver(tmp_path: Path, emulator: NsmEmulator) -> None:
    node = tmp_path / "nsm"
    node.write_bytes(b"")
    driver = FakeDriver(emulator)
    with NsmDevice(node, ioctl=driver) as dev:
        with pytest.raises(NsmError) as exc:
            dev.extend_pcr(20, b"x" * 5000)
        assert exc.value.code == "InputTooLarge"
    assert driver.calls == 0


def test_garbled_responses_are_named(tmp_path: Path, emulator: NsmEmulator) -> None:
    node = tmp_path / "nsm"
    node.write_bytes(b"")

    def garble(response: bytes) -> FakeDriver:
        class Garbled(FakeDriver):
            def __call__(self, fd: int, request: int, arg: bytearray, mutate: bool) -> int:
                _req, _len, resp_addr, _cap = struct.unpack("<QQQQ", arg)
                ctypes.memmove(resp_addr, response, len(response))
                arg[24:32] = struct.pack("<Q", len(response))
                return 0

        return Garbled(emulator)

    cases = {
        b"\xff": "InternalError",  # not CBOR
        encode({"GetRandom": {"random": "text"}}): "InvalidResponse",
        encode({"DescribePCR": {"lock": True, "data": b""}}): "InvalidResponse",
        encode({"Error": "InternalError"}): "InternalError",
    }
    for response, code in cases.items():
        with NsmDevice(node, ioctl=garble(response)) as dev:
            with pytest.raises(NsmError) as exc:
                dev.get_random()
            assert exc.value.code == code


def test_missing_device_is_an_environment_error(tmp_path: Path) -> None:
    with pytest.raises(EnvError, match="NsmEmulator"):
        NsmDevice(tmp_path / "no-such-device")


def test_the_document_signature_binds_the_exact_payload(emulator: NsmEmulator) -> None:
    data = emulator.attestation()
    doc = parse_document(data)
    assert doc.signed_bytes().endswith(doc.payload)
