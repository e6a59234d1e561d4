"""The image catalog: built-ins, pinning and overriding in site.yaml, located mistakes."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pveplan.planner import PlanError
from pveplan.planner.siteconfig import SiteFile, SiteImage, load_site_config, resolve_manifest
from pveplan.planner.siteconfig._images import FILENAME, build_catalog

from .conftest import manifest, site_with, write

SHA = "0123456789abcdef" * 4
OTHER_SHA = "fedcba9876543210" * 4
PACKER = "https://github.com/homestak-iac/packer/releases/latest/download/"


def site_yaml(images: str, defaults: str = "") -> str:
    return f"defaults:\n  timezone: UTC\n{defaults}images:\n{images}"


def test_builtins_are_homestaks_images_unpinned(fixture_site) -> None:
    catalog = fixture_site.images
    disks = [image for image in catalog if image.format != "vztmpl"]
    assert [image.name for image in disks] == ["debian-12", "debian-13", "debian-13-pve", "pve-9"]
    for image in disks:
        assert image.url == f"{PACKER}{image.name}.qcow2"
        assert image.sha256 is None and not image.pinned
        assert image.source == "builtin"
        assert image.format == "qcow2"
        assert image.filename == f"{image.name}.qcow2"
        assert FILENAME.match(image.filename)


def test_builtin_container_templates_are_proxmox_vztmpl_unpinned(fixture_site) -> None:
    templates = [image for image in fixture_site.images if image.format == "vztmpl"]
    assert [t.name for t in templates] == ["debian-12-standard", "debian-13-standard"]
    for template in templates:
        assert template.url.startswith("http://download.proxmox.com/images/system/")
        assert not template.pinned
        assert template.filename == f"{template.name}.tar.zst"


def test_a_pinned_site_template_keeps_its_compression_in_the_filename(site_dir) -> None:
    url = "https://mirror.example/alpine-3.22-default_20250617_amd64.tar.xz"
    site = site_with(
        site_dir, {"site.yaml": site_yaml(f"  alpine:\n    url: {url}\n    sha256: {SHA}\n")}
    )
    template = site.images.get("alpine")
    assert template.format == "vztmpl"
    assert template.filename == f"alpine-{SHA[:16]}.tar.xz"


def test_image_release_selects_the_release(site_dir) -> None:
    site = site_with(site_dir, {"site.yaml": "defaults:\n  image_release: v0.9\n"})
    assert site.images.get("pve-9").url.endswith("/download/v0.9/pve-9.qcow2")


def test_pinning_a_builtin_keeps_its_url(site_dir) -> None:
    site = site_with(site_dir, {"site.yaml": site_yaml(f"  debian-12:\n    sha256: {SHA}\n")})
    image = site.images.get("debian-12")
    assert image.sha256 == SHA and image.pinned
    assert image.url == f"{PACKER}debian-12.qcow2"
    assert image.source == "site.yaml"
    assert image.filename == f"debian-12-{SHA[:16]}.qcow2"
    assert FILENAME.match(image.filename)
    assert site.images.get("debian-13").source == "builtin"


def test_overriding_a_builtin_url(site_dir) -> None:
    images = f"  pve-9:\n    url: https://mirror.example.invalid/pve-9.qcow2\n    sha256: {SHA}\n"
    site = site_with(site_dir, {"site.yaml": site_yaml(images)})
    assert site.images.get("pve-9").url == "https://mirror.example.invalid/pve-9.qcow2"


def test_a_new_image_with_format_from_the_url(site_dir) -> None:
    images = (
        f"  my-raw:\n    url: file:///srv/images/my.raw\n    sha256: {SHA}\n"
        f"  my-img:\n    url: sim://images/my.img\n    sha256: {OTHER_SHA}\n"
        f"  my-q:\n    url: http://example.invalid/get?id=7\n    sha256: {SHA}\n"
        "    format: qcow2\n"
    )
    catalog = site_with(site_dir, {"site.yaml": site_yaml(images)}).images
    raw, img, q = catalog.get("my-raw"), catalog.get("my-img"), catalog.get("my-q")
    assert (raw.format, raw.filename) == ("raw", f"my-raw-{SHA[:16]}.raw")
    assert (img.format, img.filename) == ("img", f"my-img-{OTHER_SHA[:16]}.raw")
    assert (q.format, q.filename) == ("qcow2", f"my-q-{SHA[:16]}.qcow2")
    assert all(i.source == "site.yaml" for i in (raw, img, q))


def problems_of(site_dir, images: str) -> list:
    write(site_dir, {"site.yaml": site_yaml(images)})
    with pytest.raises(PlanError) as info:
        load_site_config(site_dir)
    return list(info.value.diagnostics)


def test_a_new_image_needs_a_sha256(site_dir) -> None:
    (diag,) = problems_of(site_dir, "  mine:\n    url: https://example.invalid/m.qcow2\n")
    assert diag.summary == "image 'mine' needs a sha256"
    assert (diag.location.line, diag.location.col) == (4, 3)
    assert "sha256sum" in diag.detail


def test_a_new_image_needs_a_url_and_a_typo_is_suggested(site_dir) -> None:
    (diag,) = problems_of(site_dir, f"  debain-12:\n    sha256: {SHA}\n")
    assert "is not built in, so it needs a url" in diag.summary
    assert "did you mean 'debian-12'?" in diag.detail
    assert diag.location.line == 4


def test_invalid_sha256s_are_all_reported_at_their_lines(site_dir) -> None:
    images = (
        "  debian-12:\n    sha256: abc123\n"
        f"  debian-13:\n    sha256: {SHA.upper()}\n"
        f"  pve-9:\n    sha256: {'g' * 64}\n"
    )
    diags = problems_of(site_dir, images)
    assert [d.location.line for d in diags] == [5, 7, 9]
    assert all("sha256 is not 64 lowercase hex digits" in d.summary for d in diags)
    assert "this has 6 characters" in diags[0].detail
    assert f"write it in lowercase: {SHA}" in diags[1].detail


def test_url_scheme_and_format_are_checked(site_dir) -> None:
    images = (
        f"  a:\n    url: ftp://example.invalid/a.qcow2\n    sha256: {SHA}\n"
        f"  b:\n    url: https://example.invalid/b.iso\n    sha256: {SHA}\n"
        f"  c:\n    url: example.invalid/c.qcow2\n    sha256: {SHA}\n"
    )
    diags = problems_of(site_dir, images)
    assert [d.location.line for d in diags] == [5, 8, 11]
    assert "scheme 'ftp' is not supported" in diags[0].summary
    assert "cannot tell the format" in diags[1].summary and "format: qcow2" in diags[1].detail
    assert "no supported scheme" in diags[2].summary


def test_image_names_must_make_valid_filenames(site_dir) -> None:
    (diag,) = problems_of(
        site_dir, f"  my/image:\n    url: https://x.invalid/i.qcow2\n    sha256: {SHA}\n"
    )
    assert "image name 'my/image' is not valid" in diag.summary


def test_unknown_fields_in_an_image_entry(site_dir) -> None:
    write(site_dir, {"site.yaml": site_yaml(f"  debian-12:\n    sha265: {SHA}\n")})
    with pytest.raises(Exception) as info:
        load_site_config(site_dir)
    assert "did you mean 'sha256'?" in info.value.detail


def test_get_unknown_image_suggests(fixture_site) -> None:
    with pytest.raises(PlanError) as info:
        fixture_site.images.get("debain-12")
    assert "did you mean 'debian-12'?" in info.value.detail


@given(st.text(alphabet="0123456789abcdef", min_size=64, max_size=64))
def test_any_64_lowercase_hex_digits_pin(sha: str) -> None:
    catalog = build_catalog(SiteFile(images={"debian-12": SiteImage(sha256=sha)}))
    assert catalog.get("debian-12").sha256 == sha


@given(st.text(max_size=70).filter(lambda s: re.fullmatch(r"[0-9a-f]{64}", s) is None))
def test_anything_else_is_refused(sha: str) -> None:
    with pytest.raises(PlanError) as info:
        build_catalog(SiteFile(images={"debian-12": SiteImage(sha256=sha)}))
    assert "sha256" in info.value.summary


# ---- in a manifest ------------------------------------------------------------------------

NODE_MANIFEST = """\
schema_version: 2
name: imgs
nodes:
  - {name: a, type: vm, image: debian-12}
  - {name: b, type: vm, image: debian-12}
  - {name: c, type: vm, image: debian-13}
"""


def test_unpinned_images_warn_once_each_with_how_to_pin(site_dir) -> None:
    site = site_with(site_dir, {"site.yaml": site_yaml(f"  debian-13:\n    sha256: {SHA}\n")})
    resolved = resolve_manifest(manifest(site_dir, NODE_MANIFEST), site)
    (warning,) = [w for w in resolved.warnings if "pinned" in w.summary]
    assert warning.severity == "warning"
    assert warning.summary == "image 'debian-12' is not pinned: its content will not be verified"
    assert (warning.location.line, warning.location.col) == (4, 32)
    assert "images:\n    debian-12:\n      sha256:" in warning.detail
    assert resolved.node("c").image.sha256 == SHA


def test_pinned_images_give_no_warning(site_dir) -> None:
    images = f"  debian-12:\n    sha256: {SHA}\n  debian-13:\n    sha256: {OTHER_SHA}\n"
    site = site_with(site_dir, {"site.yaml": site_yaml(images)})
    resolved = resolve_manifest(manifest(site_dir, NODE_MANIFEST), site)
    assert not [w for w in resolved.warnings if "pinned" in w.summary]
