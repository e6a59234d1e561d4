"""Cold apply of N VMs made by linked clone vs by image import, on the simulator.

Two manifests of N spec-less VMs (default 100) on one simulated host: one imports the
debian-13 image into each VM (`qm create --scsi0 ...,import-from=`), the other makes one
template from that image and N linked clones of it (`qm clone`). The simulator charges
`--copy-rate` seconds per GiB an import or a full clone copies (its
`copy_seconds_per_gib`; the image is 2 GiB there); a linked clone copies nothing, as on
PVE, where it is a thin child of the template's base disk. Each cold apply is timed, and
the run's step durations of the create steps summed.

    python benchmarks/clone_vs_import.py [--nodes N] [--copy-rate SECONDS] [--parallelism P]

Prints figures; asserts nothing. Uses a temporary store and simulator.
"""

from __future__ import annotations

import argparse

from _lab import Lab, lab


def imports(nodes: int, parallelism: int) -> str:
    return (
        'manifest "bench-import" {\n'
        f"  settings = {{ parallelism = {parallelism} }}\n"
        f"  for i in range(1, {nodes + 1}) {{\n"
        '    node "imp-${i}" { type = "vm" preset = "vm-xsmall" image = "debian-13" '
        "vmid = 300000 + i }\n"
        "  }\n"
        "}\n"
    )


def clones(nodes: int, parallelism: int) -> str:
    return (
        'manifest "bench-clone" {\n'
        f"  settings = {{ parallelism = {parallelism} }}\n"
        '  node "tmpl" { type = "template" image = "debian-13" vmid = 310000 disk = 8 }\n'
        f"  for i in range(1, {nodes + 1}) {{\n"
        '    node "cln-${i}" { type = "vm" preset = "vm-xsmall" vmid = 310000 + i '
        'clone = { from = "tmpl", linked = true } }\n'
        "  }\n"
        "}\n"
    )


def create_seconds(bench: Lab, workspace: str) -> float:
    """The summed durations of the run's create steps (template, clones or imports)."""
    total = 0.0
    for event in bench.finished_events(workspace):
        if event.address.endswith(".create") and event.kind == "finished":
            total += event.duration or 0.0
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--copy-rate", type=float, default=0.25, help="seconds per GiB copied")
    parser.add_argument("--parallelism", type=int, default=10)
    args = parser.parse_args()
    with lab() as bench:
        from pveplan.sim import SimRoot, read_config, write_config

        root = SimRoot(bench.store / "sim")
        root.path.mkdir(parents=True, exist_ok=True)
        write_config(root, {**read_config(root), "copy_seconds_per_gib": args.copy_rate})
        manifests = bench.site / "manifests"
        (manifests / "bench-import.pvp").write_text(imports(args.nodes, args.parallelism))
        (manifests / "bench-clone.pvp").write_text(clones(args.nodes, args.parallelism))
        site = ("--site-config", str(bench.site))
        print(
            f"{args.nodes} VMs, copy rate {args.copy_rate} s/GiB (image 2 GiB), "
            f"parallelism {args.parallelism}"
        )
        figures = {}
        for name in ("bench-import", "bench-clone"):
            wall = bench.pveplan("apply", "-M", name, "-H", "sim", *site, "--yes")
            steps = create_seconds(bench, f"{name}@sim")
            figures[name] = wall
            print(f"  {name}: cold apply {wall:.1f} s, create steps {steps:.1f} s summed")
        ratio = figures["bench-import"] / figures["bench-clone"]
        print(f"  linked clones: {ratio:.2f}x the speed of image imports (wall time)")
        for name in ("bench-clone", "bench-import"):
            bench.pveplan("destroy", "-M", name, "-H", "sim", *site, "--yes", check=False)


if __name__ == "__main__":
    main()
