"""The .pvp language's meaning: what programs evaluate to, and how bad ones fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from pveplan.dsl import Manifest

from .conftest import errors_of, load_text


def manifest(tmp_path: Path, body: str, prelude: str = "") -> Manifest:
    return load_text(tmp_path, "m.pvp", f'{prelude}\nmanifest "m" {{\n{body}\n}}\n').manifest


def errors(tmp_path: Path, body: str, prelude: str = "") -> list[str]:
    return errors_of(tmp_path, "m.pvp", f'{prelude}\nmanifest "m" {{\n{body}\n}}\n')


VM = 'type = "vm"  image = "debian-12"'


def test_nested_blocks_are_parent_and_child_in_preorder(tmp_path: Path) -> None:
    m = manifest(
        tmp_path,
        f'pattern = "tiered"\n node "r" {{ type = "pve" image = "pve-9"\n'
        f'  node "a" {{ {VM} }}\n  node "b" {{ type = "pve" image = "pve-9"\n node "c" {{ {VM} }} }} }}\n'
        f'node "d" {{ {VM} }}',
    )
    assert [(n.name, n.parent) for n in m.nodes] == [
        ("r", None),
        ("a", "r"),
        ("b", "r"),
        ("c", "b"),
        ("d", None),
    ]


def test_explicit_parent(tmp_path: Path) -> None:
    m = manifest(
        tmp_path,
        f'pattern = "tiered"\nnode "r" {{ type = "pve" image = "pve-9" }}\nnode "a" {{ {VM} parent = "r" }}',
    )
    assert m.node("a").parent == "r"


def test_nested_block_with_a_different_parent_is_an_error(tmp_path: Path) -> None:
    body = f'node "r" {{ type = "pve" image = "pve-9"\n node "a" {{ {VM} parent = "x" }} }}'
    assert "is nested in 'r' but sets parent = 'x'" in errors(tmp_path, body)[0]


def test_spread_and_override(tmp_path: Path) -> None:
    m = manifest(
        tmp_path,
        'node "a" { ...base, vmid = 200 }\nnode "b" { ...{ ...base, disk = 99 } }',
        prelude='let base = { type = "vm", image = "debian-12", vmid = 100, disk = 5 }',
    )
    assert (m.node("a").vmid, m.node("a").disk) == (200, 5)
    assert (m.node("b").vmid, m.node("b").disk) == (100, 99)


def test_field_set_twice_is_an_error(tmp_path: Path) -> None:
    assert (
        "field 'vmid' is set twice"
        in errors(tmp_path, f'node "a" {{ {VM} vmid = 100 vmid = 101 }}')[0]
    )


def test_for_over_range_with_interpolation(tmp_path: Path) -> None:
    m = manifest(tmp_path, f'for i in range(1, 4) {{ node "w-${{i}}" {{ {VM} vmid = 100 + i }} }}')
    assert [(n.name, n.vmid) for n in m.nodes] == [("w-1", 101), ("w-2", 102), ("w-3", 103)]


def test_if_else_chain_and_if_expression(tmp_path: Path) -> None:
    body = (
        "let size = 2\n"
        'if size == 1 { description = "one" } else if size == 2 { description = "two" } else { description = "many" }\n'
        f'node "a" {{ {VM} disk = if size > 1 then 20 else 10 }}'
    )
    m = manifest(tmp_path, body)
    assert m.description == "two" and m.node("a").disk == 20


def test_functions_closures_and_recursion(tmp_path: Path) -> None:
    prelude = (
        "let fact = fn(n) => if n <= 1 then 1 else n * fact(n - 1)\n"
        "let adder = fn(k) => fn(x) => x + k\n"
        'let vm = fn(id) => { type = "vm", image = "debian-12", vmid = id }'
    )
    m = manifest(tmp_path, 'node "a" { ...vm(adder(100)(fact(5))) }', prelude)
    assert m.node("a").vmid == 220


def test_comprehension_builtins_and_operators(tmp_path: Path) -> None:
    prelude = (
        "let xs = [x * 2 for x in range(10) if x % 3 == 0]\n"
        'let r = { a = 1, b = "two" }\n'
        'let s = join([str(x) for x in xs], ",") + "|" + str(len(xs)) + str(has(r, "a")) + join(keys(r), "")'
    )
    m = manifest(
        tmp_path,
        f'description = s\nnode "a" {{ {VM} vmid = max(xs) + min(100, 200) + xs[1] }}',
        prelude,
    )
    assert m.description == "0,6,12,18|4trueab"
    assert m.node("a").vmid == 18 + 100 + 6


def test_imports_are_relative_and_export_lets(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "sizes.pvp").write_text(
        'import "more.pvp" as more\nlet small = { ...more.base, disk = 10 }\n'
    )
    (tmp_path / "lib" / "more.pvp").write_text('let base = { type = "vm", image = "debian-12" }\n')
    m = manifest(tmp_path, 'node "a" { ...sizes.small }', prelude='import "lib/sizes.pvp" as sizes')
    assert m.node("a").disk == 10 and m.node("a").image == "debian-12"


def test_import_cycle_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.pvp").write_text('import "b.pvp" as b\nlet x = 1\n')
    (tmp_path / "b.pvp").write_text('import "a.pvp" as a\nlet y = 2\n')
    found = errors(tmp_path, f'node "n" {{ {VM} }}', prelude='import "a.pvp" as a')
    assert "import cycle:" in found[0] and "a.pvp -> " in found[0]
    assert found[0].startswith("1:1: import cycle")


def test_missing_import(tmp_path: Path) -> None:
    found = errors(tmp_path, f'node "n" {{ {VM} }}', prelude='import "nope.pvp" as n')
    assert found[0].startswith(
        "1:1: cannot import 'nope.pvp': No such file or directory | looked for "
    )


def test_imported_file_may_not_hold_a_manifest(tmp_path: Path) -> None:
    (tmp_path / "other.pvp").write_text(f'manifest "o" {{ node "x" {{ {VM} }} }}\n')
    assert (
        "declares a manifest"
        in errors(tmp_path, f'node "n" {{ {VM} }}', prelude='import "other.pvp" as o')[0]
    )


def test_errors_in_imported_functions_point_into_the_imported_file(tmp_path: Path) -> None:
    (tmp_path / "lib.pvp").write_text("let bad = fn(x) => x + true\n")
    path = tmp_path / "m.pvp"
    path.write_text(
        f'import "lib.pvp" as lib\nmanifest "m" {{ node "n" {{ {VM} vmid = lib.bad(1) }} }}\n'
    )
    from pveplan.dsl import DslError, load_manifest

    with pytest.raises(DslError) as info:
        load_manifest(str(path))
    assert info.value.location is not None and info.value.location.file.endswith("lib.pvp")
    assert info.value.summary == "cannot add int and bool"


def test_self_recursion_without_end_is_an_error_not_a_hang(tmp_path: Path) -> None:
    found = errors(
        tmp_path, f'node "a" {{ {VM} vmid = f(1) }}', prelude="let f = fn(n) => f(n + 1)"
    )
    assert "calls nested more than 100 deep in f()" in found[0]


def test_runaway_loop_exhausts_the_step_budget(tmp_path: Path) -> None:
    body = "for i in range(100000) { for j in range(100000) { let k = i } }"
    found = errors(tmp_path, body)
    assert "exceeded its budget" in found[0]


def test_exponential_list_growth_is_bounded(tmp_path: Path) -> None:
    prelude = "let grow = fn(xs, n) => if n == 0 then xs else grow(xs + xs, n - 1)"
    found = errors(tmp_path, "description = str(len(grow([1], 60)))", prelude)
    assert "exceeded its budget" in found[0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("x = 9223372036854775807 + 1", "integer out of range"),
        ("x = 99999999999999999999999999999", "integer out of range"),
        ("x = 1 / 0", "division by zero"),
        ('x = 1 + "a"', "cannot add int and string"),
        ("x = -true", "cannot negate a bool"),
        ("x = not 1", "not needs a boolean, got int"),
        ("x = if 1 then 2 else 3", "if needs a boolean, got int"),
        ("x = [1, 2][5]", "index 5 is out of range for a list of 2"),
        ("x = { a = 1 }.b", "record has no field 'b'"),
        ("x = lenn([])", "unknown name 'lenn'"),
        ("x = len(1, 2)", "len() takes 1 argument(s), got 2"),
        ("x = range(0, 10, 0)", "range() step must not be zero"),
        ("x = range(10000000)", "larger than 1,000,000"),
        ('x = "${[1]}"', "cannot interpolate a list into a string"),
        ("x = 1 < true", "cannot compare int < bool"),
        ("x = fn(a) => a", "is a function, not a value"),
        ("x = y\nlet y = 1", "'y' is used before its let-binding"),
        ("let y = 1\nlet y = 2", "'y' is already bound in this block"),
        ('name = "x"', "the manifest's name is given after `manifest`"),
    ],
)
def test_evaluation_errors(tmp_path: Path, body: str, message: str) -> None:
    found = errors(tmp_path, body)
    assert message in found[0], found


def test_unknown_name_suggests_a_close_one(tmp_path: Path) -> None:
    found = errors(tmp_path, "x = smal", prelude="let small = 1")
    assert "unknown name 'smal' | did you mean 'small'?" in found[0]


def test_errors_carry_line_and_column(tmp_path: Path) -> None:
    found = errors(tmp_path, "  x = 1\n  y = 2 + true")
    assert found[0].startswith("4:7: cannot add int and bool")


def test_no_manifest_block(tmp_path: Path) -> None:
    assert errors_of(tmp_path, "m.pvp", "let x = 1\n")[0].startswith(
        "1:1: no manifest block in this file"
    )


def test_two_manifest_blocks(tmp_path: Path) -> None:
    found = errors_of(
        tmp_path, "m.pvp", f'manifest "a" {{ node "n" {{ {VM} }} }}\nmanifest "b" {{}}\n'
    )
    assert found[0].startswith("2:1: a file holds one manifest block")


def test_evaluation_is_deterministic(tmp_path: Path) -> None:
    body = f'for i in range(5) {{ node "w-${{i}}" {{ {VM} vmid = 100 + i * 7 }} }}'
    assert manifest(tmp_path, body) == manifest(tmp_path, body)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("[1] == [true]", "false"),
        ("{ a = 1 } == { a = true }", "false"),
        ("[[1, 2], { a = [3] }] == [[1, 2], { a = [3] }]", "true"),
        ("{ a = 1, b = 2 } == { b = 2, a = 1 }", "true"),
        ("null == false", "false"),
    ],
)
def test_equality_is_structural_and_typed(tmp_path: Path, expr: str, expected: str) -> None:
    assert (
        manifest(tmp_path, f'description = str({expr})\nnode "a" {{ {VM} }}').description
        == expected
    )


def test_integer_division_cannot_overflow(tmp_path: Path) -> None:
    assert "integer out of range" in errors(tmp_path, "x = (-9223372036854775807 - 1) / -1")[0]


def test_a_spread_cannot_rename_the_manifest(tmp_path: Path) -> None:
    assert "cannot set the manifest's name" in errors(tmp_path, '...{ name = "other" }')[0]


def test_field_set_in_a_loop_says_so(tmp_path: Path) -> None:
    found = errors(tmp_path, f'node "a" {{ {VM} for i in range(2) {{ disk = 10 + i }} }}')
    assert "field 'disk' is set again on each pass of a loop" in found[0]


def test_duplicate_names_from_a_loop_suggest_the_loop_variable(tmp_path: Path) -> None:
    found = errors(tmp_path, f'for i in range(2) {{ node "w" {{ {VM} }} }}')
    assert found[0].endswith('put the loop variable in it: node "w-${i}"')


def test_nested_parent_null_is_shown_as_null(tmp_path: Path) -> None:
    body = f'node "r" {{ type = "pve" image = "pve-9"\n node "a" {{ {VM} parent = null }} }}'
    assert "sets parent = null" in errors(tmp_path, body)[0]


def test_empty_execution_means_the_default(tmp_path: Path) -> None:
    m = manifest(tmp_path, f'node "a" {{ {VM} execution = {{}} }}\nnode "b" {{ {VM} }}')
    assert m.node("a").execution == m.node("b").execution
