"""Hostile bundles: every file reference stays inside the bundle and in the hashed set, special
files are refused without blocking, loaders use the verified bytes, engines come only from the
device's own cache. Each refusal is one line and has no side effect."""

import hashlib
import os
import shutil
import threading
import time

import pytest
import torch

from edge.bundle import HEAD_WEIGHTS, BundlePredictor, load_predictor, open_verified, verify
from edge.engines.cache import EngineCache, engine_key
from edge.errors import BundleError
from tests.security.conftest import edit_manifest, resign


def refused(directory, match: str) -> str:
    with pytest.raises(BundleError, match=match) as info:
        verify(directory)
    assert "\n" not in str(info.value)
    return str(info.value)


def set_head_file(value):
    return lambda m: m["head"].__setitem__("file", value)


@pytest.mark.parametrize(("value", "match"), [
    ("/etc/hostname", "field 'head.file'.*not a relative POSIX path"),
    ("../fp32/head.safetensors", r"field 'head.file'.*'\.\.'"),
    ("./head.safetensors", r"field 'head.file'.*'\.'"),
    ("engine_cache/head.safetensors", "field 'head.file'.*reserved"),
    ("other.safetensors", "head.file 'other.safetensors' is not in the hashed files list"),
])
def test_head_file_outside_the_hashed_set_is_refused(bundle, value, match):
    edit_manifest(bundle, set_head_file(value))
    refused(bundle, match)


def test_a_hashed_file_that_is_not_safetensors_is_a_one_line_error(bundle):
    edit_manifest(bundle, set_head_file("report.md"))
    with pytest.raises(BundleError, match="report.md: not a readable safetensors file") as info:
        load_predictor(bundle)
    assert "\n" not in str(info.value)


def test_component_file_outside_the_hashed_set_is_refused(bundle, tmp_path):
    outside = tmp_path / "evil.safetensors"
    shutil.copyfile(bundle / "backbone.safetensors", outside)
    edit_manifest(bundle, lambda m: m["components"]["vision"].__setitem__("file", str(outside)))
    refused(bundle, "field 'components.vision.file'")


@pytest.mark.parametrize("entry", ["/etc/hostname", "../../etc/hostname", "a//b", "engine_cache/x.ep"])
def test_files_entries_cannot_name_host_files(bundle, entry):
    """A hash oracle on host files: `files` itself may only name paths inside the bundle."""
    digest = hashlib.sha256(b"").hexdigest()
    edit_manifest(bundle, lambda m: m["files"].__setitem__(entry, digest))
    refused(bundle, "field 'files")


def verify_within(directory, seconds: float):
    """verify() in a thread: a hang on a special file fails the test instead of hanging it."""
    result = {}

    def run():
        try:
            verify(directory)
            result["ok"] = True
        except BundleError as e:
            result["error"] = str(e)

    thread = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "verify blocked on a special file"
    return result, time.monotonic() - started


def list_file(directory, name):
    edit_manifest(directory, lambda m: m["files"].__setitem__(name, hashlib.sha256(b"").hexdigest()))


def test_a_listed_fifo_is_refused_without_blocking(bundle):
    os.mkfifo(bundle / "stream")
    list_file(bundle, "stream")
    result, seconds = verify_within(bundle, 10)
    assert result["error"].endswith("stream is not a regular file") and seconds < 5


def test_a_listed_symlink_to_a_kernel_file_is_refused_without_reading(bundle):
    """/proc/kmsg blocks a reader forever; the link is refused before anything is opened."""
    os.symlink("/proc/kmsg", bundle / "kmsg")
    list_file(bundle, "kmsg")
    result, _ = verify_within(bundle, 10)
    assert result["error"].endswith("kmsg is a symlink (refused)")


def test_a_listed_device_node_is_refused(bundle):
    try:
        os.mknod(bundle / "zero", 0o600 | __import__("stat").S_IFCHR, os.makedev(1, 5))
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD")
    list_file(bundle, "zero")
    result, _ = verify_within(bundle, 10)
    assert result["error"].endswith("zero is not a regular file")


def test_a_symlink_escaping_the_bundle_is_refused_even_with_the_right_hash(bundle, tmp_path):
    outside = tmp_path / "outside.safetensors"
    shutil.copyfile(bundle / HEAD_WEIGHTS, outside)
    (bundle / HEAD_WEIGHTS).unlink()
    os.symlink(outside, bundle / HEAD_WEIGHTS)
    refused(bundle, "head.safetensors is a symlink")


def test_a_symlinked_directory_is_refused(bundle, tmp_path):
    real = tmp_path / "elsewhere"
    real.mkdir()
    shutil.move(bundle / HEAD_WEIGHTS, real / HEAD_WEIGHTS)
    os.symlink(real, bundle / "weights")
    edit_manifest(bundle, lambda m: (m["files"].__setitem__(f"weights/{HEAD_WEIGHTS}", m["files"].pop(HEAD_WEIGHTS)),
                                     m["head"].__setitem__("file", f"weights/{HEAD_WEIGHTS}")))
    refused(bundle, "symlinks are refused")


def test_an_unlisted_file_under_a_nested_engine_cache_is_refused(bundle):
    (bundle / "sub" / "engine_cache").mkdir(parents=True)
    (bundle / "sub" / "engine_cache" / "vision.ep").write_bytes(b"planted")
    refused(bundle, "file not in the manifest: sub/engine_cache/vision.ep")


@pytest.mark.parametrize(("text", "match"), [
    ("[1, 2, 3]", "must be a JSON object, got list"),
    ('"bundle"', "must be a JSON object, got str"),
    ("{", "not valid JSON"),
    ('{"schema_version": 1}', "field 'toolkit_version': Field required"),
    ('{"schema_version": 1, "x": NaN}', "NaN is not a number JSON allows"),
    ("[" * 100000 + "]" * 100000, "not valid JSON"),
])
def test_malformed_manifests_are_one_line_errors(bundle, text, match):
    resign(bundle, text)
    refused(bundle, match)


def test_missing_keys_are_named(bundle):
    edit_manifest(bundle, lambda m: m.pop("head"))
    refused(bundle, "field 'head': Field required")
    edit_manifest(bundle, lambda m: m["prompt"].pop("prefix_ids"))
    # The first missing field is reported, whichever it is.
    refused(bundle, "Field required")


def head_weights(predictor) -> torch.Tensor:
    return next(iter(predictor.head.state_dict().values())).clone()


def test_a_file_swapped_after_verification_is_not_what_is_loaded(bundle, tmp_path):
    """The rename-over race: the loaders read the descriptor verification hashed."""
    original = head_weights(load_predictor(bundle))
    from safetensors.torch import load_file, save_file

    swapped = {k: torch.full_like(v, 7.0) for k, v in load_file(str(bundle / HEAD_WEIGHTS)).items()}
    with open_verified(bundle) as verified:
        save_file(swapped, str(tmp_path / "swap.safetensors"))
        os.replace(tmp_path / "swap.safetensors", bundle / HEAD_WEIGHTS)
        loaded = head_weights(BundlePredictor(verified))
    assert torch.equal(loaded, original) and not torch.all(loaded == 7.0)


def test_a_file_rewritten_in_place_after_verification_is_refused(bundle):
    with open_verified(bundle) as verified:
        with open(bundle / HEAD_WEIGHTS, "r+b") as f:
            f.seek(-1, os.SEEK_END)
            last = f.read(1)
            f.seek(-1, os.SEEK_END)
            f.write(bytes([last[0] ^ 1]))
        with pytest.raises(BundleError, match="head.safetensors changed after verification"):
            BundlePredictor(verified)


def test_a_bundle_engine_cache_is_never_read(bundle, monkeypatch, tmp_path):
    """Older toolkits cached engines inside the bundle; nothing there is read or needed now."""
    monkeypatch.setenv("TINYVLA_EDGE_ENGINE_CACHE", str(tmp_path / "device-cache"))
    (bundle / "engine_cache").mkdir()
    (bundle / "engine_cache" / "vision-0123.ep").write_bytes(b"planted engine")
    verify(bundle)
    assert load_predictor(bundle).manifest.head.file == HEAD_WEIGHTS


WEIGHTS_A, WEIGHTS_B = "a" * 64, "b" * 64
FACTS = {"trt": "10.3", "cc": "8.7", "precision": "fp16", "shapes": [[2, 3, 28, 28]]}


def stored_engine(cache: EngineCache, key: str, data: bytes) -> None:
    staging = cache.staging_path(key)
    staging.write_bytes(data)
    cache.store(key, staging)


def test_engine_cache_returns_only_what_it_stored(tmp_path):
    cache = EngineCache(tmp_path / "engines")
    key = engine_key(WEIGHTS_A, "vision", FACTS)
    stored_engine(cache, key, b"engine bytes")
    assert cache.load(key) == b"engine bytes"
    assert oct((tmp_path / "engines").stat().st_mode & 0o777) == "0o700"


def test_a_planted_engine_is_not_loaded_and_is_removed(tmp_path):
    cache = EngineCache(tmp_path / "engines")
    key = engine_key(WEIGHTS_A, "vision", FACTS)
    (tmp_path / "engines").mkdir()
    (tmp_path / "engines" / f"{key}.engine").write_bytes(b"planted, no recorded hash")
    assert cache.load(key) is None and not (tmp_path / "engines" / f"{key}.engine").exists()
    stored_engine(cache, key, b"genuine")
    (tmp_path / "engines" / f"{key}.engine").write_bytes(b"replaced after it was recorded")
    assert cache.load(key) is None


def test_a_stale_engine_for_other_weights_is_never_found(tmp_path):
    """A bundle copied over an old one: same component, shapes, precision; new weights' sha256."""
    cache = EngineCache(tmp_path / "engines")
    stored_engine(cache, engine_key(WEIGHTS_A, "vision", FACTS), b"old model's engine")
    assert engine_key(WEIGHTS_B, "vision", FACTS) != engine_key(WEIGHTS_A, "vision", FACTS)
    assert cache.load(engine_key(WEIGHTS_B, "vision", FACTS)) is None
    assert cache.load(engine_key(WEIGHTS_A, "language", FACTS)) is None
    assert cache.directory(engine_key(WEIGHTS_A, "vision", {"ep": "tensorrt"})) != \
        cache.directory(engine_key(WEIGHTS_B, "vision", {"ep": "tensorrt"}))
