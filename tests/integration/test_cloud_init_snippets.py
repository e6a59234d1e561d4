"""cloud-init snippets of the site config on the simulator: a VM with the site's
user-data merged into pveplan's and a vendor-data snippet boots with both applied, over
`pvesh` and over the HTTPS API; a changed snippet is rewritten in place (same VM)."""

from __future__ import annotations

from tests.cli_runner import run_cli

from .conftest import Lab
from .test_api_transport import ApiLab, api_lab, env  # noqa: F401 (fixtures)
from .test_apply import counts

SNIPPETS = """
manifest "{name}" {{
  settings = {{ vendor_data = "ci-vendor" }}
  node "{node}" {{
    type = "vm"
    preset = "vm-xsmall"
    image = "debian-13"
    vmid = {vmid}
    {user_data}
  }}
}}
"""
USER = """#cloud-config
write_files:
  - path: /etc/ci-user
    content: "{marker}\\n"
runcmd:
  - [touch, /var/lib/ci-user-ran]
"""
VENDOR = """#cloud-config
write_files:
  - path: /etc/ci-vendor
    content: "vendor\\n"
"""


def _snippets(site) -> None:  # type: ignore[no-untyped-def]
    folder = site / "snippets"
    folder.mkdir(exist_ok=True)
    (folder / "ci-user.yaml").write_text(USER.format(marker="first"))
    (folder / "ci-vendor.yaml").write_text(VENDOR)


def test_user_and_vendor_data_reach_the_guest_and_change_in_place(lab: Lab) -> None:
    _snippets(lab.site)
    name = lab.manifest(
        "cisnip",
        SNIPPETS.format(name="cisnip", node="ci1", vmid=99171, user_data='user_data = "ci-user"'),
    )
    apply = lab.args("apply", "-M", name, "-H", "sim", "--yes")
    code, out, err = run_cli(apply)
    assert code == 0, out + err
    (vm,) = lab.vms(name)
    host_snippets = lab.sim.host_dir("sim") / "var" / "lib" / "vz" / "snippets"
    assert vm["config"]["cicustom"] == (
        "user=local:snippets/pveplan-99171-user.yaml,vendor=local:snippets/pveplan-99171-vendor.yaml"
    )
    assert (host_snippets / "pveplan-99171-vendor.yaml").read_text() == VENDOR
    user = (host_snippets / "pveplan-99171-user.yaml").read_text()
    assert "/etc/ci-user" in user and "homestak" in user  # merged into pveplan's own
    tree = lab.sim.vm_dir("sim", 99171)
    assert (tree / "etc" / "ci-user").read_text() == "first\n"
    # the user-data's write_files overrides the vendor-data's (cloud-init's rule): the
    # vendor's reaches a guest whose user-data has none (the API test's)
    assert not (tree / "etc" / "ci-vendor").exists()
    assert (tree / "home" / "homestak").is_dir()  # pveplan's user, keys and host key too
    assert counts(run_cli(apply)[1])["ran"] == 0

    # a changed snippet: the plan says so without its text, apply rewrites it in place
    (lab.site / "snippets" / "ci-user.yaml").write_text(USER.format(marker="second"))
    code, out, err = run_cli(lab.args("plan", "-M", name, "-H", "sim"))
    assert code == 0, out + err
    assert "secret snippets.ci-user changed (sensitive)" in out and "second" not in out
    assert "0 to replace" in out
    code, out, err = run_cli(apply)
    assert code == 0, out + err
    (after,) = lab.vms(name)
    assert after["config"]["vmgenid"] == vm["config"]["vmgenid"]  # the same VM
    assert "second" in (host_snippets / "pveplan-99171-user.yaml").read_text()
    assert counts(run_cli(apply)[1])["ran"] == 0

    code, out, err = run_cli(lab.args("destroy", "-M", name, "-H", "sim", "--yes"))
    assert code == 0, out + err
    assert lab.vms(name) == []


def test_vendor_data_over_the_https_api(env: ApiLab) -> None:  # noqa: F811 (a fixture)
    """The settings' vendor-data (no user-data of the node's own), set through PVE's API."""
    from pveplan.sim import read_state

    _snippets(env.site)
    manifest = SNIPPETS.format(name="cisnapi", node="ci2", vmid=99172, user_data="")
    (env.site / "manifests" / "cisnapi.pvp").write_text(manifest)
    code, out, err = env.cli("apply", "-M", "cisnapi", "-H", "sim", "--yes")
    assert code == 0, out + err
    vm = next(v for v in read_state(env.sim)["vms"].values() if v["vmid"] == 99172)
    assert "vendor=local:snippets/pveplan-99172-vendor.yaml" in vm["config"]["cicustom"]
    tree = env.sim.vm_dir("sim", 99172)
    assert (tree / "home" / "homestak").is_dir()  # pveplan's user-data under the vendor's
    assert (tree / "etc" / "ci-vendor").read_text() == "vendor\n"
    assert env.cli("destroy", "-M", "cisnapi", "-H", "sim", "--yes")[0] == 0
