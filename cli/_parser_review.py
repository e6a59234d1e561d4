"""The parsers of the commands that read and never touch a host: writing manifests
(`validate`, `fmt`, `schema`) and reviewing plans (`plan`, `show`, `graph`, `keygen`,
`sign`).

Every example here runs from a clone of the repository against examples/site-config
and its simulated host `sim` (a test parses each one, and runs those of `validate`,
`fmt`, `plan` and `graph`), so what `--help` teaches keeps working.
"""

from __future__ import annotations

import argparse

from ._parser import (
    add_command,
    add_format_options,
    add_manifest_options,
    add_refresh_option,
    add_target_option,
)

SITE = "--site-config examples/site-config"


def add_review_parsers(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """validate, fmt, plan, show, graph, keygen, sign, schema."""
    validate = add_command(
        commands,
        "validate",
        help="check manifests: schema, tree rules, and every site-config reference",
        description="Check manifests (.pvp or YAML v2): the schema, the tree rules (unique "
        "names and vmids, parents that exist, no cycles), and that every foreign key "
        "(spec, preset, posture, ssh key, image, host) resolves in the site config. "
        "Exit 0 when valid, 1 otherwise, with each problem at its file:line:col.",
        examples=(
            f"pveplan validate -M n2-tiered -H sim {SITE}",
            "pveplan validate examples/site-config/manifests/n3-deep.pvp --json",
            "pveplan validate --no-site-config examples/site-config/manifests/lab.pvp",
        ),
    )
    validate.add_argument("files", nargs="*", metavar="FILE", help="manifest files (.pvp, .yaml)")
    add_manifest_options(validate)
    validate.add_argument(
        "--no-site-config",
        action="store_true",
        help="check the manifest alone, without resolving references in a site config",
    )
    validate.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    validate.add_argument(  # iac-driver's: the manifest itself (its recursive calls pass it)
        "--manifest-json", metavar="JSON", help="the manifest itself, as a JSON string"
    )

    fmt = add_command(
        commands,
        "fmt",
        help="rewrite .pvp files in the canonical layout",
        description="Rewrite .pvp files (or every .pvp file under a directory) in the "
        "canonical layout, keeping comments. With --check, change nothing and exit 1 if "
        "any file would change. '-' formats standard input to standard output.",
        examples=(
            "pveplan fmt --check examples/site-config/manifests",
            "pveplan fmt --check --diff examples/site-config/manifests/n2-tiered.pvp",
            "pveplan fmt - < examples/site-config/manifests/lab.pvp",
        ),
    )
    fmt.add_argument("files", nargs="+", metavar="FILE", help=".pvp files or directories, or -")
    fmt.add_argument("--check", action="store_true", help="only report files that would change")
    fmt.add_argument("--diff", action="store_true", help="show what would change as a unified diff")

    _add_plan(commands)

    show = add_command(
        commands,
        "show",
        help="render a saved plan file",
        description="Render a plan file: its steps (text, --json), or, with --format "
        "markdown, its diff against what the store records as applied (or --against "
        "another plan file) for a pull-request comment.",
        examples=(
            "pveplan show n2.json",
            "pveplan show n2.json --format markdown --parts-dir comments/",
            "pveplan show n2.json --json",
        ),
    )
    show.add_argument("file", metavar="FILE")
    show.add_argument(
        "--against", metavar="PLANFILE", help="markdown: diff against this plan, not the store"
    )
    add_format_options(show)

    graph = add_command(
        commands,
        "graph",
        help="the plan DAG as Graphviz DOT",
        description="Print a plan's steps and their dependencies as Graphviz DOT (subplans "
        "as clusters), from a plan file or from a manifest.",
        examples=(
            f"pveplan graph -M n3-deep -H sim {SITE} > n3.dot",
            "pveplan graph --plan n2.json | dot -Tsvg > n2.svg",
        ),
    )
    graph.add_argument("files", nargs="*", metavar="FILE", help="the manifest")
    graph.add_argument(
        "--plan", dest="file", metavar="PLANFILE", help="a saved plan file instead of a manifest"
    )
    add_manifest_options(graph)

    keygen = add_command(
        commands,
        "keygen",
        help="make an ed25519 key pair for signing plans",
        description="Write a new ed25519 private key to FILE (0600, OpenSSH format) and its "
        "public key to FILE.pub. Reviewers sign approved plan files with the private key; "
        "`apply --require-signature FILE.pub` (or site.yaml's trusted_plan_keys) accepts "
        "only plans it signed. Never overwrites.",
        examples=(
            "pveplan keygen approver",
            'pveplan keygen ~/.config/pveplan/approver -C "alice@example.org"',
        ),
    )
    keygen.add_argument("file", metavar="FILE", help="where to write the private key")
    keygen.add_argument(
        "-C", "--comment", default="pveplan-plan-signing", help="comment on the public key"
    )

    sign = add_command(
        commands,
        "sign",
        help="sign a saved plan file (after review)",
        description="Add your ed25519 signature over the plan's hash and body to the plan "
        "file's header. The plan and its hash do not change; an older signature by the "
        "same key is replaced.",
        examples=(
            "pveplan sign n2.json --key approver",
            f"pveplan apply n2.json {SITE} --require-signature approver.pub -y",
        ),
    )
    sign.add_argument("file", metavar="PLANFILE")
    sign.add_argument("--key", required=True, metavar="KEYFILE", help="your private key")

    schema = add_command(
        commands,
        "schema",
        help="print the JSON Schema of YAML manifests (for editors)",
        description="Print the JSON Schema (draft 2020-12) of YAML v2 manifests, generated "
        "from pveplan's own model, for YAML language servers: completion, hover "
        "descriptions and inline errors. See docs/manifest.md.",
        examples=(
            "pveplan schema manifest > manifest.schema.json",
            "pveplan schema manifest | jq '.properties | keys'",
        ),
    )
    schema.add_argument("document", choices=("manifest",), help="which schema")


def _add_plan(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    plan = add_command(
        commands,
        "plan",
        help="compile a manifest to a plan and show what would change",
        description="Compile a manifest for a target host into a content-addressed plan, and "
        "show how it differs from what the store records as applied to that workspace "
        "(manifest x host): + create, ~ update, -/+ replace, - destroy, and why.",
        examples=(
            f"pveplan plan -M n2-tiered -H sim {SITE}",
            f"pveplan plan -M n2-tiered -H sim {SITE} --refresh=false -o n2.json",
            f"pveplan plan --check n2.json {SITE}",
            f"pveplan plan -M n1-push -H sim {SITE} --destroy --detailed-exitcode",
        ),
    )
    plan.add_argument("files", nargs="*", metavar="FILE", help="the manifest (.pvp, .yaml)")
    add_manifest_options(plan)
    add_target_option(plan)
    plan.add_argument(
        "-o", "--out", metavar="FILE", help="save the plan file (canonical JSON, for review)"
    )
    plan.add_argument(
        "--sign", metavar="KEYFILE", help="sign the saved plan with this ed25519 key (with -o)"
    )
    plan.add_argument(
        "--check",
        nargs="+",
        metavar="PLANFILE",
        help="exit 1 if a saved plan is not what its manifest compiles to now "
        "(manifest and host from the file unless -M / -H name them)",
    )
    plan.add_argument(
        "--against",
        metavar="PLANFILE",
        help="diff against this plan (the one last applied, e.g. as committed) instead of the store",
    )
    add_format_options(plan)
    plan.add_argument(
        "--destroy",
        action="store_true",
        help="plan the destruction of what the store says is applied",
    )
    plan.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 2 when there are changes or drift (0 none, 1 error)",
    )
    add_refresh_option(
        plan,
        "probe the host's live VMs (one listing per host; the default) and show drift; "
        "--refresh=full also reads each applied VM's config (bridge, onboot, cloud-init "
        "user and keys: one call per VM); --refresh=false plans offline, from the store alone",
    )
    plan.add_argument(
        "-v", "--verbose", action="store_true", help="list every dependent step of a change"
    )
