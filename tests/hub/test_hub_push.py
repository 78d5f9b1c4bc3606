"""`push`: a verified bundle and its model card go up in one commit; an unverifiable one never leaves."""

from __future__ import annotations

import shutil

import pytest

from edge.bundle import HEAD_WEIGHTS, MANIFEST, MANIFEST_HASH, verify
from edge.errors import BundleError
from edge.hub_push import push_bundle
from tests.hub.conftest import COMMIT_B, cache_repo


class FakeHfApi:
    """Stands in for `huggingface_hub.HfApi` for the upload calls only (there is no network here):
    records each call and the bytes each commit operation would send."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []
        self.uploaded: dict[str, bytes] = {}

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))

    def create_branch(self, repo_id, **kwargs):
        self.calls.append(("create_branch", {"repo_id": repo_id, **kwargs}))

    def create_commit(self, repo_id, operations, **kwargs):
        self.calls.append(("create_commit", {"repo_id": repo_id, **kwargs}))
        for op in operations:
            with op.as_file() as f:
                self.uploaded[op.path_in_repo] = f.read()
        return type("CommitInfo", (), {"oid": COMMIT_B, "commit_url": f"https://huggingface.co/{repo_id}/commit/{COMMIT_B}"})()


def test_push_uploads_the_verified_files_and_the_report_as_model_card(hf_cache, fp32_bundle):
    bundle, _ = fp32_bundle
    api = FakeHfApi()
    result = push_bundle(bundle, "org/bundles@cpu:fp32", private=True, api=api)
    manifest = verify(bundle)
    expected = {f"fp32/{rel}" for rel in [MANIFEST, MANIFEST_HASH, *manifest.files, "README.md"]}
    assert set(api.uploaded) == expected == set(result["files"])
    for rel in [MANIFEST, *manifest.files]:
        assert api.uploaded[f"fp32/{rel}"] == (bundle / rel).read_bytes()
    card = api.uploaded["fp32/README.md"].decode()
    assert card.startswith("---\nlibrary_name: tinyvla-edge\n")
    assert (bundle / "report.md").read_text().rstrip() in card
    assert [name for name, _ in api.calls] == ["create_repo", "create_branch", "create_commit"]
    assert api.calls[0][1]["private"] is True and api.calls[1][1]["branch"] == "cpu"
    assert api.calls[2][1]["revision"] == "cpu" and result["commit"] == COMMIT_B


def test_a_pushed_bundle_pulls_back_through_the_same_reader(hf_cache, fp32_bundle):
    from edge.inspect import inspect_path

    api = FakeHfApi()
    push_bundle(fp32_bundle[0], "org/roundtrip", api=api)
    cache_repo(hf_cache, "org/roundtrip", api.uploaded)  # what the Hub would serve for that commit
    facts = inspect_path("org/roundtrip")
    assert facts["verified"] is True and facts["files"] == len(verify(fp32_bundle[0]).files)


def test_an_unverifiable_bundle_is_refused_before_any_upload(hf_cache, fp32_bundle, tmp_path):
    bundle = tmp_path / "tampered"
    shutil.copytree(fp32_bundle[0], bundle)
    data = bytearray((bundle / HEAD_WEIGHTS).read_bytes())
    data[-1] ^= 1
    (bundle / HEAD_WEIGHTS).write_bytes(bytes(data))
    api = FakeHfApi()
    with pytest.raises(BundleError, match=f"hash mismatch in {HEAD_WEIGHTS}"):
        push_bundle(bundle, "org/repo", api=api)
    assert api.calls == [] and api.uploaded == {}


def test_push_offline_or_to_a_non_hub_id_is_one_line(hf_cache, fp32_bundle, capsys):
    from edge.cli import main

    assert main(["push", str(fp32_bundle[0]), "org/repo"]) == 1
    assert capsys.readouterr().err == "error: push needs the network, and HF_HUB_OFFLINE=1 is set\n"
    assert main(["push", str(fp32_bundle[0]), "not-a-repo"]) == 1
    assert "is not a Hub repo id" in capsys.readouterr().err
