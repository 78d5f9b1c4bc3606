"""Hub ids resolve from a hand-built offline cache to the same loaders and the same bundle reader."""

from __future__ import annotations

import shutil

import pytest

from edge.errors import BundleError as BundleErrorType
from edge.hub import HubError, HubRef, parse_hub_id, resolve_path
from edge.inspect import inspect_path
from tests.hub.conftest import COMMIT_A, COMMIT_B, cache_repo, directory_files


@pytest.mark.parametrize("text, expected", [
    ("org/repo", HubRef("org/repo")),
    ("org/repo@v1.0", HubRef("org/repo", "v1.0")),
    ("org/repo@refs/pr/3:bundles/cpu-dev", HubRef("org/repo", "refs/pr/3", "bundles/cpu-dev")),
    ("org/repo:checkpoint-1000", HubRef("org/repo", None, "checkpoint-1000")),
    ("./org/repo", None), ("/abs/org", None), ("runs/a/b", None), ("repo", None), ("~/org/repo", None),
    ("org/repo:../../etc", None), ("org/repo@../x", None), ("org/re--po", None), ("org/.hidden", None),
])
def test_hub_id_shapes(text, expected):
    assert parse_hub_id(text) == expected


def test_existing_local_path_wins_over_a_hub_id(hf_cache, tmp_path, monkeypatch):
    cache_repo(hf_cache, "org/repo", {"config.json": b"{}"})
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "repo").mkdir(parents=True)
    assert resolve_path("org/repo") == tmp_path.joinpath("org", "repo").relative_to(tmp_path)
    assert resolve_path("runs/a/b") == tmp_path.joinpath("runs/a/b").relative_to(tmp_path)  # not a Hub id: left to the loader


def test_inspect_training_output_and_base_by_hub_id(hf_cache, tiny_output, tiny_base):
    cache_repo(hf_cache, "org/run", directory_files(tiny_output))
    cache_repo(hf_cache, "org/llava-pythia-tiny", directory_files(tiny_base))
    local = inspect_path(tiny_output, base=tiny_base)
    hub = inspect_path("org/run", base="org/llava-pythia-tiny")
    assert "/snapshots/" + COMMIT_A in hub["path"] and "models--org--run" in hub["path"]
    assert "models--org--llava-pythia-tiny" in hub["source"]["base"]
    same = lambda facts: {k: v for k, v in facts.items() if k not in ("path", "source")}  # noqa: E731
    assert same(hub) == same(local)
    assert hub["source"]["fingerprint"] == local["source"]["fingerprint"]


def test_quantize_source_resolves_a_checkpoint_subdir(hf_cache, tiny_output, tiny_base):
    from quantize.pipeline import load_source

    cache_repo(hf_cache, "org/runs", directory_files(tiny_output, prefix="tiny/"))
    cache_repo(hf_cache, "org/base", directory_files(tiny_base))
    policy = load_source("org/runs:tiny/checkpoint-1000", base="org/base")
    assert policy.source["path"].endswith("tiny/checkpoint-1000")


def test_bundle_by_hub_id_is_copied_plain_and_verified(hf_cache, fp32_bundle):
    bundle, _ = fp32_bundle
    cache_repo(hf_cache, "org/bundle", {**directory_files(bundle), "README.md": b"# model card\n"})
    facts = inspect_path("org/bundle")
    assert facts["kind"] == "bundle" and facts["verified"] is True
    assert facts == inspect_path(bundle) | {"path": facts["path"]}
    copy = resolve_path("org/bundle")
    assert not any(p.is_symlink() for p in copy.rglob("*"))
    assert sorted(directory_files(copy)) == sorted(directory_files(bundle))  # the model card is not part of it


def test_tampered_cached_bundle_is_refused_by_the_bundle_reader(hf_cache, fp32_bundle):
    from edge.bundle import HEAD_WEIGHTS

    files = directory_files(fp32_bundle[0])
    files[HEAD_WEIGHTS] = files[HEAD_WEIGHTS][:-1] + bytes([files[HEAD_WEIGHTS][-1] ^ 1])
    cache_repo(hf_cache, "org/tampered", files)
    with pytest.raises(BundleErrorType, match=f"hash mismatch in {HEAD_WEIGHTS}"):
        inspect_path("org/tampered")


def test_missing_cached_file_is_one_line_naming_it_and_the_fetch_command(hf_cache, fp32_bundle, capsys):
    from edge.bundle import HEAD_WEIGHTS
    from edge.cli import main

    files = directory_files(fp32_bundle[0])
    del files[HEAD_WEIGHTS]
    cache_repo(hf_cache, "org/partial", files, commit=COMMIT_B, refs=("main", "v2"))
    assert main(["inspect", "org/partial@v2"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err == (f"error: org/partial@v2: 1 file(s) missing from the Hugging Face cache (HF_HUB_OFFLINE=1): "
                   f"{HEAD_WEIGHTS}; fetch with: HF_HUB_OFFLINE=0 hf download org/partial --revision v2\n")


def test_repo_not_in_the_cache(hf_cache):
    with pytest.raises(HubError, match=r"^org/absent: no local path 'org/absent', and the Hub repo is not in the "
                                       r"Hugging Face cache \(HF_HUB_OFFLINE=1\); fetch with: HF_HUB_OFFLINE=0 hf download org/absent$"):
        resolve_path("org/absent")


def test_revision_and_subdir_pick_the_commit_and_folder(hf_cache, fp32_bundle):
    files = directory_files(fp32_bundle[0], prefix="bundles/fp32/")
    cache_repo(hf_cache, "org/multi", {"README.md": b"old\n"}, commit=COMMIT_A, refs=("main",))
    cache_repo(hf_cache, "org/multi", files, commit=COMMIT_B, refs=("v2",))
    by_tag, by_commit = resolve_path("org/multi@v2:bundles/fp32"), resolve_path(f"org/multi@{COMMIT_B}:bundles/fp32")
    assert by_tag == by_commit and by_tag.parts[-2:] == (COMMIT_B, "bundles--fp32")
    assert inspect_path("org/multi@v2:bundles/fp32")["kind"] == "bundle"
    with pytest.raises(HubError, match=r"^org/multi:bundles/fp32: 1 file\(s\) missing .*: bundles/fp32/; "
                                       r"fetch with: HF_HUB_OFFLINE=0 hf download org/multi --include 'bundles/fp32/\*'$"):
        resolve_path("org/multi:bundles/fp32")  # main is commit A, which has no such folder


def test_cached_tree_listing_names_a_checkpoints_missing_files(hf_cache, tiny_output):
    pytest.importorskip("huggingface_hub", minversion="2")  # the listing arrived in huggingface_hub 2
    files = directory_files(tiny_output)
    tree = sorted(files)
    gone = [rel for rel in tree if rel.endswith("non_lora_trainables.bin")]
    for rel in gone:
        del files[rel]
    cache_repo(hf_cache, "org/half", files, tree=tree)
    with pytest.raises(HubError, match=rf"^org/half: {len(gone)} file\(s\) missing .*: {', '.join(gone)};"):
        inspect_path("org/half")


def test_a_plain_copy_left_by_an_earlier_pull_is_reverified(hf_cache, fp32_bundle):
    cache_repo(hf_cache, "org/bundle", directory_files(fp32_bundle[0]))
    copy = resolve_path("org/bundle")
    shutil.copyfile(copy / "report.md", copy / "report.tmp")
    with pytest.raises(BundleErrorType, match="file not in the manifest: report.tmp"):
        inspect_path("org/bundle")


def test_episode_provenance_hashes_the_pulled_bundle(hf_cache, fp32_bundle):
    from edge.runtime.provenance import manifest_sha256

    cache_repo(hf_cache, "org/bundle", directory_files(fp32_bundle[0]))
    assert manifest_sha256("org/bundle") == manifest_sha256(fp32_bundle[0]) is not None


@pytest.fixture()
def online_without_a_hub(hf_cache, monkeypatch):
    """HF_HUB_OFFLINE unset, but every connection is refused (as on a robot without network)."""
    import socket

    from huggingface_hub import constants

    def refused(*args, **kwargs):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(socket.socket, "connect", refused)
    monkeypatch.setattr(socket, "create_connection", refused)


def test_online_a_complete_cache_is_used_without_the_network(online_without_a_hub, hf_cache, fp32_bundle):
    cache_repo(hf_cache, "org/bundle", directory_files(fp32_bundle[0]), refs=("main", "v1"))
    assert inspect_path("org/bundle@v1")["verified"] is True


def test_online_an_unreachable_hub_is_one_line_with_the_fetch_command(online_without_a_hub):
    with pytest.raises(HubError, match=r"^org/absent@v1: not in the Hugging Face cache, and the Hub cannot be reached "
                                       r"\(.+\); fetch with: hf download org/absent --revision v1$"):
        resolve_path("org/absent@v1")
