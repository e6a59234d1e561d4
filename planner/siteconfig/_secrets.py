"""secrets.yaml: secrets by name, read only when one is needed, never shown.

Everything else in pveplan holds a `SecretRef` (just the dotted name, like
"ssh_keys.alice"); the only way to a value is `Secrets.reveal`, which the executor calls
at the moment it sends the value where it belongs. Plans carry names and keyed digests,
never values (DESIGN.md, "Plan").

The file is not opened until a name or value is asked for, so commands that need no
secret work while secrets.yaml is still encrypted or absent. A missing file means "no
secrets"; but when only homestak's encrypted `secrets.yaml.enc` is there, the secrets exist
and are unreadable, so asking for one is an error that says how to decrypt them
(`still_encrypted`, `decrypt_hint`: preflight asks the same question).

No value ever reaches a repr, str, exception or diagnostic. That includes the ways
YAML errors usually leak text: the offending source line (which the CLI would print under
a caret) is dropped and the parser's message is replaced, leaving only file:line:col.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pveplan import dsl

from .._errors import PlanError
from ._model import Frozen
from ._sshkeys import key_problem

FILE = "secrets.yaml"
ENCRYPTED = "secrets.yaml.enc"
"""homestak's site-config commits secrets.yaml encrypted (SOPS with age) as this file."""
SSH_KEYS = "ssh_keys"
SSH_KEY_PREFIX = f"{SSH_KEYS}."
SNIPPETS = "snippets"
"""cloud-init snippets (`user_data`, `vendor_data`) are revealed as secrets `snippets.NAME`:
secrets.yaml's own `snippets.NAME` (a snippet holding a password belongs there, encrypted
with the rest; a nested host's copy of the driver's secrets has them there too), else the
site config's file `snippets/NAME.yaml`. Plans carry their keyed digests, never their text."""


def is_snippet(name: str) -> bool:
    """Whether secret `name` is a cloud-init snippet (`snippets.NAME`), not a key or token."""
    return name.startswith(f"{SNIPPETS}.")


def ssh_key_id(written: str) -> str:
    """The id an ssh key reference names: `ops` for both `ops` and `ssh_keys.ops`.

    homestak's seeds and lifecycle docs write the FK form `ssh_keys: [ssh_keys.ops]`; the
    bare id is pveplan's older spelling. Both name `secrets.yaml`'s `ssh_keys.ops`.
    """
    return written[len(SSH_KEY_PREFIX) :] if written.startswith(SSH_KEY_PREFIX) else written


class SecretRef(Frozen):
    """The name of one secret, `section.key` ("ssh_keys.alice"): safe to store and print."""

    name: str

    def __post_init__(self) -> None:
        section, _, key = self.name.partition(".")
        if not section or not key:
            raise ValueError(f"a secret name is section.key, got {self.name!r}")

    @property
    def section(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def key(self) -> str:
        return self.name.split(".", 1)[1]

    def __str__(self) -> str:
        return self.name


class Secrets:
    """The secrets of one site config, loaded on first use; repr and str show names only."""

    __slots__ = ("_key_problems", "_keys", "_path", "_value_pos", "_values")

    def __init__(self, path: Path) -> None:
        self._path = path
        self._values: dict[str, dict[str, str]] | None = None
        self._keys: dict[tuple[str, str], tuple[str, int, int]] = {}
        self._value_pos: dict[tuple[str, str], tuple[str, int, int]] = {}
        self._key_problems: tuple[dsl.Diagnostic, ...] | None = None

    @property
    def path(self) -> Path:
        return self._path

    @property
    def loaded(self) -> bool:
        """Whether secrets.yaml has been read (for tests and `--verbose`; not a cache hint)."""
        return self._values is not None

    def exists(self) -> bool:
        """Whether the file is there (a `stat`, not a read)."""
        return self._path.is_file()

    def still_encrypted(self) -> bool:
        """Whether the secrets are there only encrypted: secrets.yaml.enc without
        secrets.yaml (a fresh clone of a homestak site-config before `make decrypt`)."""
        return not self._path.exists() and (self._path.parent / ENCRYPTED).is_file()

    def decrypt_hint(self) -> str:
        """How to turn secrets.yaml.enc into secrets.yaml, as homestak's site-config does it."""
        folder = self._path.parent
        if (folder / "Makefile").is_file():
            how = f"cd {folder} && make decrypt"
        else:
            how = (
                f"cd {folder} && sops --input-type yaml --output-type yaml -d {ENCRYPTED} "
                f"> {FILE} && chmod 600 {FILE}"
            )
        return (
            f"decrypt it: {how} (SOPS, with the age key in ~/.config/sops/age/keys.txt, "
            "as homestak's site-config does)"
        )

    def sections(self) -> tuple[str, ...]:
        return tuple(sorted(self._load()))

    def keys(self, section: str) -> tuple[str, ...]:
        """The key names of `section` ("ssh_keys" -> ids), sorted; () if there is none."""
        return tuple(sorted(self._load().get(section, {})))

    def ref(self, section: str, key: str) -> SecretRef:
        """A reference to `section.key`; it need not exist (see `has`)."""
        if not section or "." in section or not key:
            raise ValueError(f"not a secret name: section {section!r}, key {key!r}")
        return SecretRef(name=f"{section}.{key}")

    def has(self, ref: SecretRef) -> bool:
        if ref.section == SNIPPETS:
            return self._snippet(ref.key) is not None
        return ref.key in self._load().get(ref.section, {})

    def snippet_file(self, key: str) -> Path:
        """Where snippet `key` is read from when secrets.yaml does not hold it."""
        return self._path.parent / SNIPPETS / f"{key}.yaml"

    def _snippet(self, key: str) -> str | None:
        inline = self._load().get(SNIPPETS, {}).get(key)
        if inline is not None:
            return inline
        if not key or "/" in key or key.startswith("."):  # a name, never a path
            return None
        path = self.snippet_file(key)
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
            raise PlanError.at(None, f"cannot read {path}: {why}") from None

    def reveal(self, ref: SecretRef) -> str:
        """The value: the one way to get it. `PlanError` (naming what exists) if absent."""
        if ref.section == SNIPPETS:
            text = self._snippet(ref.key)
            if text is None:
                raise PlanError.at(
                    None,
                    f"snippet {ref.key!r} is neither {self.snippet_file(ref.key)} "
                    f"nor {ref.name} in {self._path}",
                    f"write the cloud-init snippet to {self.snippet_file(ref.key)}",
                )
            return text
        section = self._load().get(ref.section, {})
        if ref.key not in section:
            where = f"in {self._path}" if self.exists() else f"because {self._path} does not exist"
            raise PlanError.at(
                None,
                f"secret {ref.name!r} is not defined {where}",
                dsl.did_you_mean(ref.key, section, f"{ref.section} keys"),
            )
        return section[ref.key]

    def locate(self, ref: SecretRef) -> dsl.Location | None:
        """Where `ref`'s key is written (no source line: the line holds the value)."""
        self._load()
        pos = self._keys.get((ref.section, ref.key))
        return None if pos is None else _bare(pos)

    def ssh_key_problems(self) -> tuple[dsl.Diagnostic, ...]:
        """An error for each `ssh_keys` value that is not one SSH public key line, at the
        value's line:col in secrets.yaml, saying what is wrong and quoting none of it.

        Every key is checked, not only those a manifest names: every key goes to the
        `vm_user` of every node (homestak's default), and homestak's own validate checks
        them all. Memoised: the file is parsed once.
        """
        if self._key_problems is None:
            problems = []
            for key, value in sorted(self._load().get(SSH_KEYS, {}).items()):
                found = key_problem(value)
                if found is None:
                    continue
                what, hint = found
                pos = self._value_pos.get((SSH_KEYS, key)) or self._keys.get((SSH_KEYS, key))
                problems.append(
                    dsl.Diagnostic(
                        summary=f"ssh key {key!r} in {FILE} {what}",
                        detail=hint,
                        location=_bare(pos) if pos else None,
                    )
                )
            self._key_problems = tuple(problems)
        return self._key_problems

    def __repr__(self) -> str:
        state = "loaded" if self.loaded else "not loaded"
        return f"Secrets({str(self._path)!r}, {state})"

    __str__ = __repr__

    def _load(self) -> dict[str, dict[str, str]]:
        if self._values is None:
            if self.still_encrypted():
                raise PlanError.at(
                    None,
                    f"{self._path} is still encrypted (only {ENCRYPTED} is there)",
                    self.decrypt_hint(),
                )
            self._values = self._read()
        return self._values

    def _read(self) -> dict[str, dict[str, str]]:
        file = str(self._path)
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise PlanError.at(
                None, f"cannot read {file}: {exc.strerror or type(exc).__name__}"
            ) from None
        try:
            data, smap = dsl.load_yaml(dsl.decode_source(raw, file), file)
        except dsl.DslError as exc:
            raise PlanError(_scrub(exc.diagnostics)) from None
        return self._check(data, smap, file)

    def _check(self, data: Any, smap: dsl.SourceMap, file: str) -> dict[str, dict[str, str]]:
        """Sections of string values, or a `PlanError` that names keys and types only."""
        if data is None:
            return {}
        problems: list[dsl.Diagnostic] = []

        def problem(path: tuple[str, ...], summary: str, detail: str) -> None:
            pos = smap.pos(path, key=True)
            problems.append(
                dsl.Diagnostic(summary=summary, detail=detail, location=_bare(pos) if pos else None)
            )

        if not isinstance(data, dict):
            problem((), f"{file} must be a mapping of sections (ssh_keys, api_tokens, ...)", "")
            raise PlanError(problems)
        out: dict[str, dict[str, str]] = {}
        for section, entries in data.items():
            if entries is None:
                entries = {}
            if not isinstance(entries, dict):
                problem(
                    (section,),
                    f"secrets section {section!r} must be a mapping of names to values",
                    "",
                )
                continue
            values: dict[str, str] = {}
            for path, value in _leaves(entries, ()):
                key = ".".join(path)
                where = (section, *path)
                self._keys[(section, key)] = smap.pos(where, key=True) or (file, 1, 1)
                self._value_pos[(section, key)] = smap.pos(where) or self._keys[(section, key)]
                if not section or "." in section or not all(path):
                    problem(where, f"secret name {section}.{key} is not valid", "")
                    continue
                if value is None or value == "":
                    continue  # `key:` or `key: ""` (homestak's template for "not yet set")
                if not isinstance(value, str):
                    problem(
                        where,
                        f"secret {section}.{key} must be a string, not {_kind(value)}",
                        "quote the value in secrets.yaml",
                    )
                    continue
                values[key] = value
            out[section] = values
        if problems:
            raise PlanError(problems)
        return out


def _leaves(entries: dict[Any, Any], path: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    """(key path, value) of every value under `entries`, nested mappings walked: homestak
    nests some secrets (`auth: {node_tokens: {edge: ...}}`), which are then named
    `auth.node_tokens.edge`; an empty mapping (`node_tokens: {}`) holds nothing."""
    out: list[tuple[tuple[str, ...], Any]] = []
    for key, value in entries.items():
        here = (*path, "" if key is None else str(key))
        if isinstance(value, dict):
            out.extend(_leaves(value, here))
        else:
            out.append((here, value))
    return out


def _bare(pos: tuple[str, int, int]) -> dsl.Location:
    file, line, col = pos
    return dsl.Location(file=file, line=line, col=col)


def _scrub(diagnostics: tuple[dsl.Diagnostic, ...]) -> list[dsl.Diagnostic]:
    """Parser diagnostics without anything quoted from the file."""
    out = []
    for diag in diagnostics:
        loc = diag.location
        out.append(
            dsl.Diagnostic(
                summary=f"{FILE} is not valid YAML (UTF-8 text)",
                detail="fix the file at this position "
                "(its text is not shown because it may hold a secret)",
                location=dsl.Location(file=loc.file, line=loc.line, col=loc.col) if loc else None,
            )
        )
    return out


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"
