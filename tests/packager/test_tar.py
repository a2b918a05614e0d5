"""Deterministic tar: the same members give the same bytes; the strict reader refuses the rest."""

from __future__ import annotations

import contextlib
import io
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zcbench.errors import DataError, UsageError
from zcbench.packager import deterministic_tar, read_tar_members

names = st.text(alphabet="abcdefghij_/.", min_size=1, max_size=20).filter(
    lambda n: not n.startswith("/") and ".." not in n.split("/") and "" not in n.split("/")
)


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(names, st.binary(max_size=300), max_size=8))
def test_round_trip_and_order_independence(members: dict[str, bytes]) -> None:
    a = deterministic_tar(members, source_date_epoch=42)
    b = deterministic_tar(dict(reversed(list(members.items()))), source_date_epoch=42)
    assert a == b
    assert read_tar_members(a) == members


def test_refuses_escaping_names_and_bad_epochs() -> None:
    for name in ("/etc/passwd", "../x", "a/../../b", ""):
        with pytest.raises(UsageError):
            deterministic_tar({name: b""}, source_date_epoch=0)
    with pytest.raises(UsageError):
        deterministic_tar({"a": b""}, source_date_epoch=-1)


def test_reader_refuses_links_and_dirs() -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        link = tarfile.TarInfo("link")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(DataError, match="not a plain relative file"):
        read_tar_members(out.getvalue())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048))
def test_reader_on_junk_raises_only_data_error(junk: bytes) -> None:
    good = deterministic_tar({"a": b"x" * 600, "b": b"y"}, source_date_epoch=0)
    for data in (junk, good[: len(junk)], good[:512] + junk):
        with contextlib.suppress(DataError):
            read_tar_members(data)
