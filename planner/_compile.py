"""Manifest + resolved site config + target host -> Plan. Pure: no I/O beyond the secrets it is given.

For each node, the steps homestak's iac-driver performs, as separate input-addressed
steps (so a re-run skips what is done, and a change re-runs exactly what it affects):

    storage.<s>.content           a storage the steps use, with the content types they need
    image.<image>.ensure          the node's image on its host (shared per host and image)
    node.<n>.create               VM (or CT) with cloud-init user, keys, agent, serial, tags
    node.<n>.start
    node.<n>.wait_ip              guest-agent address (first non-loopback IPv4)
    node.<n>.wait_ssh             SSH answering, with the host key pinned at create
    node.<n>.config               the spec: pushed over SSH, or awaited from a pull node
    node.<n>.<lifecycle...>       for a pve node with children: homestak's PVE lifecycle
    node.<n>.delegate             subplan.delegate: the children's plan, run on <n>

A pve node's children are compiled recursively into a subplan for host <n>, with the
children promoted to roots; the delegate step's args hold the subplan's hash, so a change
deep in the tree changes every delegate above it and nothing else.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import msgspec

from pveplan import dsl

from ._clonesteps import clone_args, template_args
from ._errors import PlanError
from ._hashing import plan_hash
from ._plan import Plan, PlanSettings, SecretUse
from ._pullspec import AUTH_SECRETS, auth_method, await_args, pulled_spec, push_args
from ._secretuse import Reveal, SecretDigests
from ._stepargs import (
    ApiTokenArgs,
    BridgeArgs,
    CloudInit,
    CtCreateArgs,
    DelegateArgs,
    ImageEnsureArgs,
    NoArgs,
    PullBoot,
    SiteConfigArgs,
    SshWaitArgs,
    StepArgs,
    StorageContentArgs,
    VmCreateArgs,
    WaitIpArgs,
)
from ._steps import StepList
from ._vmdevices import device_args, device_sources, dns_args, guest_secrets
from .siteconfig import ResolvedManifest, ResolvedNode, SecretRef

# Bump a kind's version whenever the meaning of its args changes, so old results are
# not reused for a step that now means something else.
KIND_VERSIONS = {
    "pve.storage.content": 1,
    "pve.image.ensure": 1,
    "pve.vm.create": 1,
    "pve.template.create": 1,
    "pve.clone.create": 1,
    "pve.vm.start": 1,
    "pve.vm.wait_ip": 1,
    "pve.ct.create": 1,
    "pve.ct.start": 1,
    "pve.ct.wait_ip": 1,
    "ssh.wait": 1,
    "config.push": 1,
    "config.await_report": 1,
    "pveplan.bootstrap": 1,
    "pveplan.site_config": 1,
    "ssh.authorize_driver_key": 1,
    "ssh.install_next_hop_key": 1,
    "pve.install": 1,
    "pve.bridge": 1,
    "pveplan.node_file": 2,  # 2: pins the host's certificate (api_fingerprint)
    "pve.api_token": 2,  # 2: pveplan@pve's least-privilege token, put in secrets.yaml
    "ssh.authorize_own_key": 1,
    "subplan.delegate": 1,
}

# The PVE lifecycle of a pve node with children, in homestak's order (homestak.md).
PVE_LIFECYCLE: tuple[tuple[str, str, StepArgs], ...] = (
    ("bootstrap", "pveplan.bootstrap", NoArgs()),
    ("site_config", "pveplan.site_config", SiteConfigArgs(exclude=("api_tokens",), mode="0600")),
    ("driver_key", "ssh.authorize_driver_key", NoArgs()),
    ("next_hop_key", "ssh.install_next_hop_key", NoArgs()),
    ("pve_install", "pve.install", NoArgs()),
    ("bridge", "pve.bridge", BridgeArgs(bridge="vmbr0", interface="eth0")),
    ("node_file", "pveplan.node_file", NoArgs()),
    # A privilege-separated token with exactly pveplan's role (not root's): the nested
    # executor reaches PVE on its host with it, over HTTPS.
    ("api_token", "pve.api_token", ApiTokenArgs(user="pveplan@pve", token="pveplan", privsep=1)),
    ("own_key", "ssh.authorize_own_key", NoArgs()),
)

WAIT_IP_TIMEOUT = 300
WAIT_SSH_TIMEOUT = 120
DEFAULT_STORAGE = "local-lvm"
# PVE installed on Debian (how a nested host gets it) has one storage: `local`, a
# directory, which holds imported images and VM disks alike.
NESTED_STORAGE = "local"
# Images (content `import`) and cloud-init snippets go to `local`, the directory storage
# every PVE host has: a datastore such as `local-lvm` or `local-zfs` holds no files.
# (The executor writes snippets there too: `executor._hosts.SNIPPET_STORAGE`.)
IMAGE_STORAGE = "local"
SNIPPET_STORAGE = "local"
DEFAULT_PARALLELISM = 10


class CompileResult:
    """A plan, and where each step arg came from in the manifest (for the header and diffs)."""

    __slots__ = ("plan", "sources")

    def __init__(self, plan: Plan, sources: dict[str, dict[str, str]]) -> None:
        self.plan = plan
        self.sources = sources


PresetSource = Callable[[str, str], "tuple[str, int, int] | None"]
"""(preset name, field) -> the position in the preset's file that sets it, if any."""


def compile_plan(
    resolved: ResolvedManifest,
    loaded: dsl.LoadedManifest,
    host: str,
    reveal: Reveal,
    *,
    locate: Callable[[tuple[str, int, int]], str] = lambda pos: f"{pos[0]}:{pos[1]}:{pos[2]}",
    preset_source: PresetSource = lambda preset, field: None,
) -> CompileResult:
    """The plan for `resolved` on target `host`.

    `reveal` gives a secret's value; it is used only to compute keyed digests (values are
    never stored). `locate` turns a manifest location into the text kept in the header's
    source map (the CLI makes paths relative so plan files match across checkouts).
    `preset_source(preset, field)` is where a preset's file sets a field, so a size that
    comes from a preset points into the site config, not at nothing.
    """
    builder = _Builder(resolved, loaded, reveal, locate)
    builder.preset_source = preset_source
    plan = builder.plan(host, parent=None, datastore=_datastore(resolved))
    return CompileResult(plan, builder.sources)


def _host_datastore(resolved: ResolvedManifest, host: str) -> str:
    """The datastore of another host nodes are placed on (its node file's, else the default)."""
    config = resolved.host_configs.get(host)
    return (config.datastore if config is not None else None) or DEFAULT_STORAGE


def _datastore(resolved: ResolvedManifest) -> str:
    config = resolved.host_config
    return (
        config.datastore if config is not None and config.datastore else None
    ) or DEFAULT_STORAGE


def storage_step(storage: str, on: str | None = None) -> str:
    """A storage's step address; `on`: a host other than the plan's (`storage.local@mother.content`)."""
    return f"storage.{storage}.content" if on is None else f"storage.{storage}@{on}.content"


def image_step(image: str, on: str | None = None) -> str:
    """An image's step address on the plan's host, or `on` another (`image.debian-12@mother.ensure`)."""
    return f"image.{image}.ensure" if on is None else f"image.{image}@{on}.ensure"


def guest_storage(node: ResolvedNode, datastore: str) -> tuple[tuple[str, str], ...]:
    """(storage, content type) a guest's create needs: its disks on the datastore
    (`images`; `rootdir` for a container) and, for a VM, its cloud-init snippet on
    `local`."""
    if node.type == "ct":
        return ((datastore, "rootdir"),)
    if node.type == "template":  # never booted: no cloud-init snippet of its own
        return ((datastore, "images"),)
    return ((datastore, "images"), (SNIPPET_STORAGE, "snippets"))


PRESET_FIELDS = frozenset({"cores", "memory", "disk"})
"""The node fields a preset supplies when the manifest does not."""

CREATE_SOURCES: dict[str, str | tuple[str, ...]] = {
    "name": "name",
    "vmid": "vmid",
    "cores": "cores",
    "memory": "memory",
    "disk": "disk",
    "image": "image",
    "template": "template",
    "type": "type",
    "source": ("clone", "from"),
    "linked": ("clone", "linked"),
    "swap": "swap",
    "nesting": "nesting",
    "unprivileged": "unprivileged",
}
"""A create step's args, each with the manifest field (path under the node) it comes from."""
CONFIG_SOURCES: dict[str, str | tuple[str, ...]] = {"spec": "spec"}


class _Builder:
    def __init__(
        self,
        resolved: ResolvedManifest,
        loaded: dsl.LoadedManifest,
        reveal: Reveal,
        locate: Callable[[tuple[str, int, int]], str],
    ) -> None:
        self.resolved = resolved
        self.loaded = loaded
        self.reveal = reveal
        self.locate = locate
        self.index = {node.name: i for i, node in enumerate(loaded.manifest.nodes)}
        # Siblings in name order: the manifest's order of siblings carries no meaning
        # (they are created in parallel), so it must not change the plan.
        self.children: dict[str | None, list[ResolvedNode]] = {}
        for node in sorted(resolved.nodes, key=lambda n: n.name):
            self.children.setdefault(node.parent, []).append(node)
        settings = resolved.settings
        self.settings = PlanSettings(
            on_error=settings.on_error,
            parallelism=settings.parallelism or DEFAULT_PARALLELISM,
            cleanup_on_failure=settings.cleanup_on_failure,
            timeout_buffer=settings.timeout_buffer,
        )
        self.sources: dict[str, dict[str, str]] = {}
        self.digests = SecretDigests(reveal)
        self.preset_source: PresetSource = lambda preset, field: None
        self._preset_located: dict[tuple[str, str], str | None] = {}

    # --- secrets -------------------------------------------------------------------------

    def secret_uses(self, refs: Iterable[SecretRef]) -> tuple[SecretUse, ...]:
        names = sorted({ref.name for ref in refs})
        return tuple(self.secret_use(name) for name in names)

    def secret_use(self, name: str) -> SecretUse:
        return self.digests.use(name)

    def credential(self, node: ResolvedNode) -> tuple[SecretUse, ...]:
        """The secret a pull node's credential comes from (none for `network`)."""
        name = AUTH_SECRETS.get(auth_method(node))
        if name is None:
            return ()
        try:
            return (self.secret_use(name),)
        except PlanError:
            raise PlanError.at(
                None,
                f"pull node {node.name!r} has posture {node.posture_name!r}, whose auth method "
                f"{auth_method(node)} needs secret {name!r}, which secrets.yaml does not define",
                f"add it to secrets.yaml ({name.replace('.', ': ')}: <random text>), or use a "
                "posture whose auth.method is network",
            ) from None

    # --- plans ---------------------------------------------------------------------------

    def plan(self, host: str, parent: str | None, datastore: str) -> Plan:
        steps = StepList(host, KIND_VERSIONS.__getitem__)
        # Roots by the host they name (`host:`; None: this plan's own host, first, so a
        # manifest on one host builds exactly the steps, in the order, it always did).
        placed: dict[str | None, list[ResolvedNode]] = {}
        for node in self.children.get(parent, []):
            placed.setdefault(node.host, []).append(node)
        subplans: dict[str, Plan] = {}
        for on in sorted(placed, key=lambda h: (h is not None, h or "")):
            where = datastore if on is None else _host_datastore(self.resolved, on)
            self.host_steps(steps, placed[on], where, subplans, on)
        plan_steps = steps.done()
        return Plan(
            manifest=self.resolved.name,
            host=host,
            settings=self.settings,
            steps=plan_steps,
            subplans=subplans,
            hash=plan_hash(
                self.resolved.name,
                host,
                "apply",
                self.settings,
                [(s.address, s.hash) for s in plan_steps],
            ),
        )

    def host_steps(
        self,
        steps: StepList,
        roots: list[ResolvedNode],
        datastore: str,
        subplans: dict[str, Plan],
        on: str | None,
    ) -> None:
        """The steps of the roots placed on one host (`on`; None: the plan's own): its
        storages and images, then each node's."""
        images = sorted(
            {n.image.name: n.image for n in roots if n.image is not None}.values(),
            key=lambda i: i.name,
        )
        self.storage_steps(steps, roots, datastore, bool(images), on)
        for image in images:
            pinned = image.sha256 is not None
            args = ImageEnsureArgs(
                name=image.name,
                filename=image.filename,
                format=image.format,
                storage=IMAGE_STORAGE,
                sha256=image.sha256,
                # unpinned: the URL is all that identifies it; pinned: the hash is the
                # identity, and the URL only a hint
                url=msgspec.UNSET if pinned else image.url,
            )
            hints = {"url": image.url} if pinned else {}
            steps.add(
                image_step(image.name, on),
                "pve.image.ensure",
                args,
                hints=hints,
                deps=(storage_step(IMAGE_STORAGE, on),),
                host=on,
            )
        # A clone after the node it is cloned from (its step refers to that one's).
        for node in sorted(roots, key=lambda n: n.clone is not None):
            self.node_steps(steps, node, datastore, subplans, on)

    def storage_steps(
        self,
        steps: StepList,
        roots: list[ResolvedNode],
        datastore: str,
        images: bool,
        on: str | None = None,
    ) -> None:
        """One `pve.storage.content` step per storage this plan's steps use, with the
        content types they need there: before anything is put on it."""
        needs: dict[str, set[str]] = {}
        for node in roots:  # a disk image is `import` content, a ct's template `vztmpl`
            if node.image is not None:
                content = "vztmpl" if node.image.format == "vztmpl" else "import"
                needs.setdefault(IMAGE_STORAGE, set()).add(content)
        for node in roots:
            for storage, content in guest_storage(node, datastore):
                needs.setdefault(storage, set()).add(content)
        for storage in sorted(needs):
            args = StorageContentArgs(
                storage=storage,
                content=tuple(sorted(needs[storage])),
                enable=self.resolved.enable_content,
            )
            steps.add(storage_step(storage, on), "pve.storage.content", args, host=on)

    def node_steps(
        self,
        steps: StepList,
        node: ResolvedNode,
        datastore: str,
        subplans: dict[str, Plan],
        on: str | None = None,
    ) -> None:
        add = functools.partial(steps.add, host=on)  # every step of a node runs on its host
        prefix = f"node.{node.name}"
        family = "ct" if node.type == "ct" else "vm"
        create = f"{prefix}.create"
        guest = {
            "name": node.name,
            "type": node.type,
            "vmid": node.vmid,
            "cores": node.cores,
            "memory": node.memory,
            "disk": node.disk,
            "bridge": node.bridge,
            "storage": datastore,
            "tags": ("pveplan", f"pveplan-{self.resolved.name}"),
        }
        if node.type == "template":
            add(
                create,
                "pve.template.create",
                template_args(node, guest),
                refs={"volume": f"{image_step(node.image.name, on)}#volid"} if node.image else {},
                deps=tuple(
                    sorted({storage_step(s, on) for s, _ in guest_storage(node, datastore)})
                ),
            )
            fields = ("name", "vmid", "cores", "memory", "disk", "image")
            self.record_sources(create, node, {f: f for f in fields})
            return
        pull = node.mode == "pull" and node.spec is not None
        if pull and family == "ct":
            raise PlanError.at(
                None,
                f"node {node.name!r} is a container in pull mode",
                "pull mode boots a VM with cloud-init, which containers do not have: "
                "use execution.mode push for ct nodes",
            )
        refs: dict[str, str] = {}
        args: StepArgs
        if family == "vm":
            # validated: vm and pve nodes have images, but a clone (its template's)
            assert node.image is not None or node.clone is not None
            # What first boot needs to fetch the spec (the server's address and certificate
            # are the running server's, filled in at apply: they differ between machines).
            boot = PullBoot(
                identity=node.name,
                spec=node.spec_name,
                auth=auth_method(node),
                server=self.resolved.server_url or None,
            )
            cloud_init = CloudInit(
                user=node.vm_user,
                sudo=True,
                packages=node.packages,
                timezone=node.timezone,
                agent=True,
                serial=True,
                mode=node.mode,
                pull=boot if pull else msgspec.UNSET,
            )
            if node.clone is not None:
                at = ("nodes", self.index[node.name])
                smap = self.loaded.source_map
                where = smap.locate((*at, "disk"))
                args = clone_args(self.resolved, node, guest, cloud_init, where)
                refs["template"] = f"node.{node.clone.source}.create#vm_id"
            else:
                args = VmCreateArgs(
                    **guest,
                    image=node.image.name,
                    cloud_init=cloud_init,
                    **device_args(node, datastore),
                    onboot=msgspec.UNSET if node.onboot is None else node.onboot,
                )
                refs["volume"] = f"{image_step(node.image.name, on)}#volid"
        else:
            assert node.image is not None  # resolved: a ct's template is a vztmpl image
            args = CtCreateArgs(
                **guest,
                template=node.template,
                swap=node.swap,
                nesting=node.nesting,
                unprivileged=node.unprivileged,
                **dns_args(node),
            )
            refs["volume"] = f"{image_step(node.image.name, on)}#volid"
        credential = self.credential(node) if pull else ()
        add(
            create,
            "pve.clone.create" if node.clone is not None else f"pve.{family}.create",
            args,
            refs=refs,
            secrets=(*self.secret_uses(guest_secrets(node)), *credential),
            deps=tuple(sorted({storage_step(s, on) for s, _ in guest_storage(node, datastore)})),
        )
        self.record_sources(create, node, CREATE_SOURCES)
        if family == "vm":
            self.record_device_sources(create, node)
        vm_id = {"vmid": f"{create}#vm_id"}
        add(f"{prefix}.start", f"pve.{family}.start", NoArgs(), refs=vm_id)
        add(
            f"{prefix}.wait_ip",
            f"pve.{family}.wait_ip",
            WaitIpArgs(timeout=WAIT_IP_TIMEOUT),
            refs=vm_id,
            deps=(f"{prefix}.start",),
        )
        ip = {"ip": f"{prefix}.wait_ip#ip"}
        # What reaching the VM over SSH needs: its address, and the key pinned at create.
        # A container's host key is read through its host once it runs (`pct exec`).
        keyed = f"{prefix}.wait_ip" if family == "ct" else create
        ssh = {**ip, "host_key": f"{keyed}#host_key"}
        last = f"{prefix}.wait_ip"
        if node.mode == "push":
            add(
                f"{prefix}.wait_ssh",
                "ssh.wait",
                SshWaitArgs(user=node.vm_user, timeout=WAIT_SSH_TIMEOUT),
                refs=ssh,
            )
            last = f"{prefix}.wait_ssh"
        if node.spec is not None:
            if node.mode == "push":
                users = node.spec.users
                keys = [key for user in users for key in user.ssh_keys]
                add(
                    f"{prefix}.config",
                    "config.push",
                    push_args(node),
                    refs=ssh,
                    secrets=self.secret_uses(keys),
                    deps=(last,),
                )
            else:
                pulled = pulled_spec(node, self.secret_use)
                add(
                    f"{prefix}.config",
                    "config.await_report",
                    await_args(pulled, self.resolved.server_url or None),
                    refs={"instance": f"{create}#pull_instance"},
                    secrets=(*pulled.secrets, *self.credential(node)),
                    deps=(last,),
                )
            self.record_sources(f"{prefix}.config", node, CONFIG_SOURCES)
            last = f"{prefix}.config"
        children = self.children.get(node.name, [])
        if node.type != "pve" or not children:
            return
        subplan = self.plan(node.name, parent=node.name, datastore=NESTED_STORAGE)
        # What the lifecycle steps read besides the address and pinned key.
        extra_refs = {
            "bridge": {"pve_node": f"{prefix}.pve_install#pve_node"},
            "node_file": {"pve_node": f"{prefix}.pve_install#pve_node"},
            "own_key": {"public_key": f"{prefix}.next_hop_key#public_key"},
        }
        for name, kind, extra in PVE_LIFECYCLE:
            address = f"{prefix}.{name}"
            secrets: tuple[SecretUse, ...] = ()
            if isinstance(extra, SiteConfigArgs):  # the subtree's secrets, never API tokens
                excluded = tuple(f"{p}." for p in extra.exclude)
                names = {
                    use.name
                    for _, step in subplan.walk()
                    for use in step.secrets
                    if not use.name.startswith(excluded)
                }
                secrets = tuple(self.secret_use(n) for n in sorted(names))
            add(
                address,
                kind,
                extra,
                refs={**ssh, **extra_refs.get(name, {})},
                secrets=secrets,
                deps=(last,),
            )
            last = address
        delegate = f"{prefix}.delegate"
        add(
            delegate,
            "subplan.delegate",
            DelegateArgs(
                host=node.name, subplan=subplan.hash, children=tuple(c.name for c in children)
            ),
            refs=ssh,
            deps=(last,),
        )
        subplans[delegate] = subplan

    def record_device_sources(self, address: str, node: ResolvedNode) -> None:
        """Where each disk's and NIC's fields were written (`disks[1].size`)."""
        index = self.index[node.name]
        found = device_sources(self.loaded.source_map.values, index, node, self.locate)
        if found:
            self.sources.setdefault(address, {}).update(found)

    def record_sources(
        self, address: str, node: ResolvedNode, fields: dict[str, str | tuple[str, ...]]
    ) -> None:
        """Where each arg's value was written: the manifest's own field, else (for a size
        a preset gives) the preset file's line, else the manifest's `preset =` line; a
        built-in default has no position."""
        index = self.index[node.name]
        positions = self.loaded.source_map.values
        found = {}
        for arg, field in fields.items():
            pos = positions.get(
                ("nodes", index, *field) if isinstance(field, tuple) else ("nodes", index, field)
            )
            if pos is None and field in PRESET_FIELDS and node.preset is not None:
                located = self.preset_located(node.preset, field)  # type: ignore[arg-type]
                if located is not None:
                    found[arg] = located
                    continue
                pos = positions.get(("nodes", index, "preset"))
            if pos is not None:
                found[arg] = self.locate(pos)
        if found:
            self.sources[address] = found

    def preset_located(self, preset: str, field: str) -> str | None:
        """`locate` of where `preset`'s file sets `field` (once per preset and field: every
        node of a 10,000-node manifest may share one preset)."""
        key = (preset, field)
        if key not in self._preset_located:
            pos = self.preset_source(preset, field)
            self._preset_located[key] = None if pos is None else self.locate(pos)
        return self._preset_located[key]
