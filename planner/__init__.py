"""planner: Manifest + site config -> Plan.

Owns the site config (discovery, loading, resolving a manifest's foreign keys), steps and
their typed args, hashing, plan files, diffs, a pull node's node-local plan, and the CLI
(the composition root, `planner.cli`). Pure apart from reading the site-config files it
is pointed at. Other packages import only the names below, never a private module.
"""

from ._errors import PlanError
from ._hashing import canonical, digest, verify_plan
from ._nodeplan import build_node_plan, node_workspace
from ._nodespec import SpecDocument, SpecError
from ._nodespec import decode_document as decode_spec_document
from ._plan import Plan, PlanSettings, SecretUse, Step
from ._planfile import workspace_name
from ._pullspec import AUTH_SECRETS
from ._stepargs import (
    STEP_ARGS,
    ApiTokenArgs,
    AwaitReportArgs,
    BridgeArgs,
    CloudInit,
    ConfigPushArgs,
    ConvergeTimerArgs,
    CtCreateArgs,
    DelegateArgs,
    GuestCreateArgs,
    GuestDestroyArgs,
    ImageEnsureArgs,
    NoArgs,
    PackagesArgs,
    PullBoot,
    PullTimeouts,
    ServicesArgs,
    SiteConfigArgs,
    SpecArgs,
    SpecUserArgs,
    SshdArgs,
    SshKeysArgs,
    SshWaitArgs,
    StepArgs,
    StepArgsError,
    SudoArgs,
    TimezoneArgs,
    UserArgs,
    VmCreateArgs,
    WaitIpArgs,
    args_as,
    args_of,
)
from ._version import __version__

__all__ = [
    "AUTH_SECRETS",
    "STEP_ARGS",
    "ApiTokenArgs",
    "AwaitReportArgs",
    "BridgeArgs",
    "CloudInit",
    "ConfigPushArgs",
    "ConvergeTimerArgs",
    "CtCreateArgs",
    "DelegateArgs",
    "GuestCreateArgs",
    "GuestDestroyArgs",
    "ImageEnsureArgs",
    "NoArgs",
    "PackagesArgs",
    "Plan",
    "PlanError",
    "PlanSettings",
    "PullBoot",
    "PullTimeouts",
    "SecretUse",
    "ServicesArgs",
    "SiteConfigArgs",
    "SpecArgs",
    "SpecDocument",
    "SpecError",
    "SpecUserArgs",
    "SshKeysArgs",
    "SshWaitArgs",
    "SshdArgs",
    "Step",
    "StepArgs",
    "StepArgsError",
    "SudoArgs",
    "TimezoneArgs",
    "UserArgs",
    "VmCreateArgs",
    "WaitIpArgs",
    "__version__",
    "args_as",
    "args_of",
    "build_node_plan",
    "canonical",
    "decode_spec_document",
    "digest",
    "node_workspace",
    "verify_plan",
    "workspace_name",
]
