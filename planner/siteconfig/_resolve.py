"""Resolving a manifest against a site config: every foreign key, every problem at once.

A node names a preset, a spec and an image; its spec names a posture and SSH key ids;
the command may name a target host. Each name is looked up, and each one that does not
exist becomes a diagnostic at the place it is written (the manifest's field, or the spec
file's line), with the closest existing name and the list of what exists. All of them are
collected and raised as one `PlanError`, so a user fixes a manifest in one round.

Problems that belong to a shared file (a spec's unknown posture, a broken preset file)
are reported once, however many nodes use it. Unpinned images are warnings, one per
image, at the first node that uses it.

A manifest loaded with `keep_going` (whose own errors are in `loaded.errors`) is looked
up all the same, and its errors are raised together with the unresolved names, in
source order: `validate` reports every mistake in one pass. Such a manifest is never
resolved into a `ResolvedManifest`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec

from pveplan import dsl

from .._errors import PlanError
from ._hosts import HostConfig
from ._images import CatalogImage, pin_hint
from ._model import Posture, Preset, Spec
from ._resolved import (
    CT_USER,
    DEFAULT_BRIDGE,
    DEFAULT_SIZE,
    DEFAULT_TIMEZONE,
    DEFAULT_VM_USER,
    ResolvedManifest,
    ResolvedNode,
    ResolvedSpec,
    ResolvedUser,
)
from ._secrets import SNIPPETS, SSH_KEY_PREFIX, SSH_KEYS, SecretRef, ssh_key_id
from ._site import SiteConfig, rehearsal_host, rehearsed_host
from ._snippets import snippet_problem


def resolve_manifest(
    loaded: dsl.LoadedManifest, site: SiteConfig, host: str | None = None, *, rehearse: bool = False
) -> ResolvedManifest:
    """`loaded` with every name looked up in `site`; `PlanError` listing every unresolved one.

    If `loaded` carries errors of its own, they are raised too (a `DslError` when every
    name resolved), so no caller can plan a manifest that failed its checks.
    """
    resolver = _Resolver(loaded, site)
    resolver.rehearse = rehearse  # --simulate: every host a node names is rehearsed too
    return resolver.run(host)


class _Resolver:
    def __init__(self, loaded: dsl.LoadedManifest, site: SiteConfig) -> None:
        self.loaded = loaded
        self.manifest = loaded.manifest
        self.site = site
        self.defaults = site.site.defaults
        self.problems: list[dsl.Diagnostic] = []
        self.warnings: list[dsl.Diagnostic] = []
        self.reported: set[tuple[str, int, int, str]] = {_key(d) for d in loaded.errors}
        self.specs: dict[str, _SpecParts | None] = {}
        self.warned_images: set[str] = set()
        self._all_keys: tuple[SecretRef, ...] | None = None
        self.parent_of = {node.name: node.parent for node in self.manifest.nodes}
        self.depths: dict[str, int] = {}
        self.rehearse = False

    def run(self, host: str | None) -> ResolvedManifest:
        host_config = self._host(host) if host is not None else None
        self.target = host
        self.host_configs: dict[str, HostConfig] = {}
        nodes = [self._node(index, node) for index, node in enumerate(self.manifest.nodes)]
        if self.problems:
            raise PlanError(self._in_source_order([*self.loaded.errors, *self.problems]))
        if self.loaded.errors:
            raise dsl.DslError(self.loaded.errors)
        return ResolvedManifest(
            name=self.manifest.name,
            host=host,
            host_config=host_config,
            pattern=self.manifest.pattern,
            settings=self.manifest.settings,
            server_url=self.defaults.server_url,
            enable_content=self.site.site.storage.enable_content,
            nodes=tuple(n for n in nodes if n is not None),
            warnings=tuple(self.warnings),
            host_configs=self.host_configs,
        )

    # ---- reporting ------------------------------------------------------------------

    def error(self, location: dsl.Location | None, summary: str, detail: str = "") -> None:
        diag = dsl.Diagnostic(summary=summary, detail=detail, location=location)
        key = _key(diag)
        if key not in self.reported:  # one report per place, however many nodes lead to it
            self.reported.add(key)
            self.problems.append(diag)

    def _in_source_order(self, diagnostics: list[dsl.Diagnostic]) -> list[dsl.Diagnostic]:
        """The manifest's files in the order they were read, then other files as met."""
        rank = {file: i for i, file in enumerate(self.loaded.source_map.texts)}
        for diag in diagnostics:
            if diag.location is not None:
                rank.setdefault(diag.location.file, len(rank))

        def key(diag: dsl.Diagnostic) -> tuple[int, int, int]:
            loc = diag.location
            return (rank[loc.file], loc.line, loc.col) if loc else (-1, 0, 0)

        return sorted(diagnostics, key=key)

    def absorb(self, exc: dsl.DslError | PlanError) -> None:
        for diag in exc.diagnostics:
            if diag.severity == "error":
                self.error(diag.location, diag.summary, diag.detail)

    def at(self, index: int, field: str) -> dsl.Location | None:
        return self.loaded.source_map.locate(("nodes", index, field))

    # ---- lookups --------------------------------------------------------------------

    def _lookup(
        self, kind: str, what: str, name: str, index: int, field: str
    ) -> tuple[Any, dsl.SourceMap] | None:
        docs = self.site.documents(kind)
        if name not in docs:
            where = (
                ""
                if docs.folder is not None
                else f" (there is no {kind}/ directory in {self.site.root})"
            )
            self.error(
                self.at(index, field),
                f"unknown {what} {name!r}",
                dsl.did_you_mean(name, docs, kind) + where,
            )
            return None
        try:
            return docs.entry(name)
        except dsl.DslError as exc:
            self.absorb(exc)
            return None

    def _host(self, name: str) -> HostConfig | None:
        try:
            config, smap = self.site.host_entry(name)
        except (dsl.DslError, PlanError) as exc:
            self.absorb(exc)
            return None
        for index, ref in enumerate(config.authorized_keys):
            self._check_key(ref.key, smap.locate(("access", "authorized_keys", index)))
        return config

    def _ssh_key_ids(self) -> tuple[str, ...] | None:
        """The ids in secrets.yaml's ssh_keys; the first read also reports every value
        that is not a public key (each key goes to every node's vm_user)."""
        try:
            ids = self.site.secrets.keys(SSH_KEYS)
            problems = self.site.secrets.ssh_key_problems()
        except PlanError as exc:
            self.absorb(exc)
            return None
        for diag in problems:
            self.error(diag.location, diag.summary, diag.detail)
        return ids

    def _check_key(self, written: str, location: dsl.Location | None) -> SecretRef | None:
        """The key `written` names (`ops` or homestak's FK form `ssh_keys.ops`), or an
        error at `location` naming the closest key in the form it was written."""
        key = ssh_key_id(written)
        if not key:
            self.error(
                location, "an ssh key reference names no key", "name a key of secrets.ssh_keys"
            )
            return None
        known = self._ssh_key_ids()
        if known is None:
            return None
        if key in known:
            return self.site.secrets.ref(SSH_KEYS, key)
        secrets = self.site.secrets
        missing = "" if secrets.exists() else f"; {secrets.path} does not exist"
        prefix = SSH_KEY_PREFIX if written != key else ""
        self.error(
            location,
            f"unknown ssh key {written!r}",
            dsl.did_you_mean(written, [prefix + k for k in known], "ssh keys") + missing,
        )
        return None

    def _all_ssh_keys(self) -> tuple[SecretRef, ...]:
        if self._all_keys is None:
            known = self._ssh_key_ids() or ()
            self._all_keys = tuple(self.site.secrets.ref(SSH_KEYS, k) for k in known)
            if not known:
                self.warnings.append(
                    dsl.Diagnostic(
                        summary="no ssh keys in secrets.yaml: users get no authorized keys",
                        detail=f"add keys under ssh_keys: in {self.site.secrets.path}, "
                        "or SSH to the nodes will fail",
                        severity="warning",
                    )
                )
        return self._all_keys

    # ---- a node ---------------------------------------------------------------------

    def _node(self, index: int, node: dsl.Node) -> ResolvedNode | None:
        preset: Preset | None = None
        if node.preset is not None:
            found = self._lookup("presets", "preset", node.preset, index, "preset")
            preset = found[0] if found else None
        spec = self._spec(index, node.spec) if node.spec is not None else None
        image = self._image(index, node.image) if node.image is not None else None
        if node.type == "ct" and node.template is not None:
            image = self._image(index, node.template, field="template")
        authorized = self._all_ssh_keys()
        placed = self._node_host(index, node)
        snippets = {
            field: self._snippet(index, node, field) for field in ("user_data", "vendor_data")
        }
        if self.problems or self.loaded.errors:
            return None  # keep looking for problems; never build a half-resolved node
        d = self.defaults
        size = preset or DEFAULT_SIZE
        packages = (
            *d.packages,
            *(spec.posture.packages if spec else ()),
            *(spec.doc.platform.packages if spec else ()),
        )
        timezone = (spec.doc.config.timezone if spec else None) or d.timezone or DEFAULT_TIMEZONE
        return ResolvedNode(
            name=node.name,
            type=node.type,
            parent=node.parent,
            depth=self._depth(node),
            vmid=node.vmid,
            mode=self.manifest.mode_of(node),
            cores=node.cores if node.cores is not None else size.cores,
            memory=node.memory if node.memory is not None else size.memory,
            disk=_boot_disk(node, size.disk),
            preset=node.preset,
            image=image,
            template=node.template,
            spec_name=node.spec,
            spec=_for_node(spec.resolved, node.name) if spec else None,
            posture_name=spec.posture_name if spec else None,
            posture=spec.posture if spec else None,
            packages=tuple(dict.fromkeys(packages)),
            timezone=timezone,
            vm_user=CT_USER if node.type == "ct" else d.vm_user or DEFAULT_VM_USER,
            authorized_keys=authorized,
            clone=node.clone,
            inherits_disk=node.clone is not None and node.disk is None,
            bridge=_first_bridge(node) or d.bridge or DEFAULT_BRIDGE,
            disks=node.disks or (),
            nics=_nics(node, d.bridge or DEFAULT_BRIDGE),
            nameserver=node.nameserver or self.manifest.settings.nameserver,
            searchdomain=node.searchdomain or self.manifest.settings.searchdomain,
            host=placed,
            **snippets,
            onboot=node.onboot,
            **_snapshot(node.snapshot_before or self.manifest.settings.snapshot_before),
            **_ct_options(node),
        )

    def _snippet(self, index: int, node: dsl.Node, field: str) -> SecretRef | None:
        """The cloud-init snippet `field` (user_data, vendor_data) of `node`: its own, else
        the settings' (a container or template takes none: validate refuses its own), checked
        here so `validate` refuses a missing or unusable one at the line naming it."""
        name = getattr(node, field)
        location = self.at(index, field)
        if name is None and node.type not in ("ct", "template"):
            name = getattr(self.manifest.settings, field)
            location = self.loaded.source_map.locate(("settings", field))
        if name is None or node.type in ("ct", "template"):
            return None
        ref = SecretRef(name=f"{SNIPPETS}.{name}")
        secrets = self.site.secrets
        try:
            text = secrets.reveal(ref) if secrets.has(ref) else None
        except PlanError as exc:
            self.absorb(exc)
            return None
        if text is None:
            self.error(
                location,
                f"unknown snippet {name!r}",
                f"write it to {secrets.snippet_file(name)} (or as {ref.name} in {secrets.path})",
            )
            return None
        problem = snippet_problem(text, field)
        if problem is not None:
            self.error(location, f"{field} snippet {name!r} {problem[0]}", problem[1])
            return None
        return ref

    def _node_host(self, index: int, node: dsl.Node) -> str | None:
        """The host a root node names (None: the target host, which it may name too).
        Under `--simulate` (`rehearse`, or a rehearsed target `sim:father`) every host is
        rehearsed as the target is: a node on `mother` goes to `sim:mother`, unless
        mother's node file says `sim: true` already."""
        name = node.host
        if name is None or node.parent is not None:  # a child's host: the tree rules' error
            return None
        real = rehearsed_host(name) or name
        if real not in self.site.host_names():
            self.error(
                self.at(index, "host"),
                f"unknown host {node.host!r}",
                dsl.did_you_mean(real, self.site.host_names(), "hosts"),
            )
            return None
        rehearsing = self.rehearse or (
            self.target is not None and rehearsed_host(self.target) is not None
        )
        if rehearsing and rehearsed_host(name) is None and not self._simulated(name):
            name = rehearsal_host(name)
        if name == self.target:
            return None
        if name not in self.host_configs:
            try:
                config = self.site.host(name)
            except (dsl.DslError, PlanError) as exc:
                self.absorb(exc)
                return None
            if not config.is_pve:
                self.error(
                    self.at(index, "host"),
                    f"host {node.host!r} is a hosts/ file: PVE is not installed there",
                    "place nodes on a PVE host, a file in nodes/ (pve-setup makes one)",
                )
                return None
            self.host_configs[name] = config
        return name

    def _simulated(self, name: str) -> bool:
        """Whether host `name`'s node file says `sim: true` (a broken one: reported later)."""
        try:
            return self.site.host(name).sim
        except (dsl.DslError, PlanError):
            return False

    def _image(self, index: int, name: str, field: str = "image") -> CatalogImage | None:
        """The catalog entry a node's `image` (or a ct node's `template`: a `vztmpl`
        entry) names; an unknown one, or one of the wrong kind, is an error here, so
        `validate` refuses what `apply` could not fetch."""
        catalog = self.site.images
        what = "template" if field == "template" else "image"
        if name not in catalog:
            self.error(self.at(index, field), f"unknown {what} {name!r}", catalog.suggest(name))
            return None
        image = catalog.get(name)
        if (image.format == "vztmpl") != (field == "template"):
            wanted = (
                "a container template (format vztmpl)"
                if field == "template"
                else "a disk image (qcow2, raw or img)"
            )
            self.error(
                self.at(index, field),
                f"{what} {name!r} is not {wanted}",
                "a ct node names a vztmpl entry as its template; vm and pve nodes a disk "
                "image as their image",
            )
            return None
        if not image.pinned and name not in self.warned_images:
            self.warned_images.add(name)
            self.warnings.append(
                dsl.Diagnostic(
                    summary=f"image {name!r} is not pinned: its content will not be verified",
                    detail=pin_hint(name),
                    location=self.at(index, field),
                    severity="warning",
                )
            )
        return image

    def _depth(self, node: dsl.Node) -> int:
        """Levels below the target host; memoised (a manifest is checked acyclic before this)."""
        chain = []
        name: str | None = node.name
        while name is not None and name not in self.depths:
            chain.append(name)
            name = self.parent_of.get(name)
        depth = -1 if name is None else self.depths[name]
        for name in reversed(chain):
            depth += 1
            self.depths[name] = depth
        return self.depths[node.name]

    # ---- a spec (resolved once, whichever node names it first) -----------------------

    def _spec(self, index: int, name: str) -> _SpecParts | None:
        if name not in self.specs:
            found = self._lookup("specs", "spec", name, index, "spec")
            self.specs[name] = self._resolve_spec(*found) if found is not None else None
        elif name not in self.site.specs:
            self._lookup("specs", "spec", name, index, "spec")  # report it at this node too
        return self.specs[name]

    def _resolve_spec(self, spec: Spec, smap: dsl.SourceMap) -> _SpecParts | None:
        failed = len(self.problems)
        posture_name = spec.access.posture
        postures = self.site.documents("postures")
        posture: Posture | None = None
        if posture_name not in postures:
            where = (
                ""
                if postures.folder is not None
                else f" (there is no postures/ directory in {self.site.root})"
            )
            self.error(
                smap.locate(("access", "posture")),
                f"unknown posture {posture_name!r}",
                dsl.did_you_mean(posture_name, postures, "postures") + where,
            )
        else:
            try:
                posture = postures[posture_name]
            except dsl.DslError as exc:
                self.absorb(exc)
        users = []
        for u, user in enumerate(spec.access.users):
            if user.ssh_keys is None:
                keys = self._all_ssh_keys()
            else:
                refs = [
                    self._check_key(k, smap.locate(("access", "users", u, "ssh_keys", i)))
                    for i, k in enumerate(user.ssh_keys)
                ]
                keys = tuple(r for r in refs if r is not None)
            users.append(ResolvedUser(name=user.name, sudo=user.sudo, ssh_keys=keys))
        if len(self.problems) > failed or posture is None:
            return None
        identity = spec.identity
        resolved = ResolvedSpec(
            hostname=(identity.hostname if identity else None) or "",  # "" -> the node's name
            domain=(identity.domain if identity else None) or self.defaults.domain or None,
            users=tuple(users),
            services_enable=spec.platform.services.enable,
            services_disable=spec.platform.services.disable,
            network=spec.network,
            pve=spec.config.pve,
            config_extra=spec.config.extra,
            run=spec.run,
        )
        return _SpecParts(spec, resolved, posture_name, posture)


def _key(diag: dsl.Diagnostic) -> tuple[str, int, int, str]:
    loc = diag.location
    return (loc.file, loc.line, loc.col, diag.summary) if loc else ("", 0, 0, diag.summary)


class _SpecParts(NamedTuple):
    """A spec resolved once, shared by every node that names it."""

    doc: Spec
    resolved: ResolvedSpec
    posture_name: str
    posture: Posture


def _for_node(spec: ResolvedSpec, node_name: str) -> ResolvedSpec:
    """The spec's own hostname if it sets one, else the node's name (the VM hostname)."""
    return spec if spec.hostname else msgspec.structs.replace(spec, hostname=node_name)


def _boot_disk(node: dsl.Node, preset_size: int) -> int:
    """The first disk's size: `disks[0]`, else `disk`, else the preset's."""
    if node.disks:
        return node.disks[0].size
    return node.disk if node.disk is not None else preset_size


def _first_bridge(node: dsl.Node) -> str | None:
    """The bridge the manifest gives the first NIC (None: the site's default)."""
    if node.nics:
        return node.nics[0].bridge
    return node.bridge


def _nics(node: dsl.Node, bridge: str) -> tuple[dsl.Nic, ...]:
    """The manifest's NICs, each on the site's default bridge unless it names one."""
    return tuple(
        nic if nic.bridge is not None else msgspec.structs.replace(nic, bridge=bridge)
        for nic in node.nics or ()
    )


def _snapshot(policy: tuple[str, ...] | dsl.SnapshotBefore | None) -> dict[str, Any]:
    """`snapshot_before`'s short form (`[resize]`) and long form as one pair of fields."""
    if policy is None:
        return {}
    if isinstance(policy, tuple):
        return {"snapshot_before": policy}
    return {"snapshot_before": policy.changes, "snapshot_keep": policy.keep}


def _ct_options(node: dsl.Node) -> dict[str, Any]:
    """A ct node's container options as the manifest sets them (the rest: defaults)."""
    fields = ("swap", "nesting", "unprivileged")
    return {f: getattr(node, f) for f in fields if getattr(node, f) is not None}
