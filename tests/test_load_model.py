"""Model files are read once, checked as skops archives of allow-listed types, and never unpickled."""

from __future__ import annotations

import io
import os
import pickle
import sys
import zipfile

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.preprocessing import FunctionTransformer

from stages.lib.errors import UserError
from stages.lib.models import load_model, model_writer

NOT_OURS = "not a model file this project wrote"


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 3))
    return HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(features, features[:, 0] > 0), features


@pytest.fixture
def model_file(tmp_path, fitted):
    path = tmp_path / "model.skops"
    model_writer(fitted[0])(path)
    return path


class Payload:
    """Unpickling this creates a folder: the proof that a file was (or was not) unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_model_this_project_wrote_loads_and_predicts_the_same(model_file, fitted):
    model, features = fitted
    assert np.array_equal(load_model(model_file).predict_proba(features), model.predict_proba(features))


def test_a_pickle_is_refused_before_anything_unpickles_it(tmp_path):
    marker = tmp_path / "unpickled"
    path = tmp_path / "model.skops"
    path.write_bytes(pickle.dumps(Payload(str(marker))))
    with pytest.raises(UserError, match=f"^{path}: {NOT_OURS} \\(not a skops file: a pickle\\); pickles are never loaded") as raised:
        load_model(path)
    assert "\n" not in str(raised.value)
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # the payload is live: loading it the unsafe way would have left the marker
    assert marker.is_dir()


def corrupted_member(data: bytes) -> bytes:
    """The archive with one byte of a member's compressed data flipped (its CRC no longer matches)."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    info = next(info for info in archive.infolist() if info.filename != "schema.json" and info.compress_size > 8)
    name_length, extra_length = (
        int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little"),
        int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little"),
    )
    position = info.header_offset + 30 + name_length + extra_length + info.compress_size // 2
    return data[:position] + bytes([data[position] ^ 0xFF]) + data[position + 1 :]


def without_schema(data: bytes) -> bytes:
    source, target = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(target, "w") as archive:
        for name in source.namelist():
            if name != "schema.json":
                archive.writestr(name, source.read(name))
    return target.getvalue()


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],
        lambda data: data[:-30],
        lambda data: b"",
        lambda data: b"\x00" * 1000,
        corrupted_member,
        without_schema,
    ],
    ids=["truncated-half", "truncated-end", "empty", "zeros", "corrupted-member", "zip-without-schema"],
)
def test_a_damaged_file_is_refused_with_one_line(model_file, damage):
    model_file.write_bytes(damage(model_file.read_bytes()))
    with pytest.raises(UserError, match=f"^{model_file}: {NOT_OURS} "):
        load_model(model_file)


def test_untrusted_types_are_still_refused(tmp_path):
    import skops.io as sio

    path = tmp_path / "model.skops"
    path.write_bytes(sio.dumps(FunctionTransformer(func=os.system)))
    with pytest.raises(UserError, match=r"refusing to load untrusted types .*system"):
        load_model(path)


def test_the_file_is_opened_once_so_the_bytes_checked_are_the_bytes_loaded(model_file):
    opened: list[str] = []
    target = str(model_file)
    listening = [True]

    def hook(event: str, arguments: tuple) -> None:
        if listening[0] and event == "open" and str(arguments[0]) == target:
            opened.append(event)

    sys.addaudithook(hook)  # audit hooks cannot be removed: this one switches itself off below
    try:
        load_model(model_file)
    finally:
        listening[0] = False
    assert len(opened) == 1
