"""Typed family options: every family × option × kind of bad value is refused when the config is
built; the dataclass is the one source of defaults (signatures hold none); counts equal built
adapters; inert options are refused in a config and warned about by a constructor; size checks
name the layer."""

from __future__ import annotations

import inspect
import math
import re
import warnings
from dataclasses import fields
from typing import Literal, get_args, get_origin, get_type_hints

import pytest
import torch

from qadapters import families
from qadapters.config import QAdapterConfig
from qadapters.families import FAMILIES, family_options, options_class
from qadapters.model import get_qadapter_model

#: one value of each kind that no option accepts, and the kinds each annotation refuses
NOT_A_NUMBER = "big"


def _bad_values(hint, low, nonzero) -> list[object]:
    """Values of the wrong type, a bool for an int, a float for an int, nan/inf, out of range,
    a bad literal: every refusal that applies to an option of type ``hint``."""
    if hint is bool:
        return [NOT_A_NUMBER, 1, 0, 1.0, None, [True]]
    if hint is int:
        return [NOT_A_NUMBER, True, 4.0, None, [2], low - 1]
    if hint is float:
        return [NOT_A_NUMBER, True, None, math.nan, math.inf, -math.inf, *([0] if nonzero else [])]
    if get_origin(hint) is Literal:
        return ["nope", get_args(hint)[0].upper(), 1, True, None]
    if get_origin(hint) is tuple:
        return [[], [low - 1], [1.5], [True], 2, "12", None]
    members = set(get_args(hint))
    assert members == {int, type(None)}, f"no bad values written for {hint!r}"
    return [NOT_A_NUMBER, True, 2.0, math.nan, low - 1]


def _option_cases() -> list[tuple[str, str, object]]:
    cases = []
    for family in FAMILIES:
        cls = options_class(family)
        hints = get_type_hints(cls)
        for f in fields(cls):
            low = f.metadata.get("low") or 0
            for value in _bad_values(hints[f.name], low, f.metadata.get("nonzero", False)):
                cases.append((family, f.name, value))
    return cases


OPTION_CASES = _option_cases()


def test_every_option_of_every_family_has_bad_values() -> None:
    covered = {(f, name) for f, name, _ in OPTION_CASES}
    assert covered == {(f, name) for f in FAMILIES for name in family_options(f)}
    assert len(covered) == 18  # 3 pauli + 4 taylor + 6 compound + 5 hamming


@pytest.mark.parametrize(("family", "name", "value"), OPTION_CASES, ids=repr)
def test_bad_value_is_refused_when_the_config_is_built(family, name, value) -> None:
    with pytest.raises(ValueError) as err:
        QAdapterConfig(family, ["q"], options={name: value})
    text = str(err.value)
    shown = "nan" if isinstance(value, float) and math.isnan(value) else repr(value)
    assert text.startswith(f"{family} option {name!r}: expected "), text
    assert f"; found {shown}" in text or f"; found {list(value)}" in text, text


#: the messages in full, for one value of each kind (the table above checks their layout)
MESSAGES = [
    ("pauli", {"rank": 4.0}, "pauli option 'rank': expected an int >= 1; found 4.0 (a float)"),
    ("pauli", {"rank": True}, "pauli option 'rank': expected an int >= 1; found True (a bool)"),
    ("pauli", {"layers": -1}, "pauli option 'layers': expected an int >= 0; found -1 (an int)"),
    ("pauli", {"scale": "big"},
     "pauli option 'scale': expected a finite nonzero float; found 'big' (a str)"),
    ("pauli", {"scale": math.nan},
     "pauli option 'scale': expected a finite nonzero float; found nan (a float)"),
    ("taylor", {"scale": -math.inf},
     "taylor option 'scale': expected a finite nonzero float; found -inf (a float)"),
    ("taylor", {"order": 0},
     "taylor option 'order': expected None or an int >= 1; found 0 (an int)"),
    ("taylor", {"intrinsic_rank": 2.5},
     "taylor option 'intrinsic_rank': expected an int >= 1; found 2.5 (a float)"),
    ("compound", {"combine": "max"},
     "compound option 'combine': expected one of 'product', 'sum'; found 'max' (a str)"),
    ("compound", {"orders": 2},
     "compound option 'orders': expected a non-empty list of ints >= 1, e.g. [1, 2]; "
     "found 2 (an int)"),
    ("compound", {"blocks": 0},
     "compound option 'blocks': expected None or an int >= 1; found 0 (an int)"),
    ("compound", {"wires": 1},
     "compound option 'wires': expected an int >= 2; found 1 (an int)"),
    ("hamming", {"layout": "ring"},
     "hamming option 'layout': expected one of 'pyramid', 'brick', 'butterfly'; found 'ring' "
     "(a str)"),
    ("hamming", {"num_adapters": 2.0},
     "hamming option 'num_adapters': expected an int >= 1; found 2.0 (a float)"),
]  # fmt: skip


@pytest.mark.parametrize(("family", "options", "message"), MESSAGES)
def test_messages_name_option_expected_and_found(family, options, message) -> None:
    for check in (
        lambda: QAdapterConfig(family, ["q"], options=options),
        lambda: families.check_options(family, **options),
        lambda: families.make_adapter(family, 256, 256, **options),
        lambda: families.trainable_count(family, 32, 32, **options),
    ):
        with pytest.raises(ValueError, match=re.escape(message) + "$"):
            check()


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_options_are_the_dataclass_defaults(family) -> None:
    cls = options_class(family)
    assert family_options(family) == {f.name: f.default for f in fields(cls)}
    assert cls().to_dict() == family_options(family)
    adapter = families.make_adapter(family, 64, 64)
    assert adapter.options == FAMILIES[family].sized_options(cls(), 64, 64)
    assert type(adapter).options_class is cls
    assert QAdapterConfig(family, ["q"]).resolved_options() == family_options(family)
    assert all(text for text in cls.help().values())  # every option says what it does


@pytest.mark.parametrize("family", list(FAMILIES))
def test_signatures_repeat_no_default(family) -> None:
    """Defaults live in the options dataclass only: constructor and counts take ``**options``."""
    cls = FAMILIES[family]
    methods = [cls.__init__, cls.count]
    if hasattr(cls, "parameter_counts"):
        methods.append(cls.parameter_counts)
    for method in methods:
        params = list(inspect.signature(method).parameters.values())
        names = [p.name for p in params if p.kind is not p.VAR_KEYWORD]
        assert names in (["self", "in_features", "out_features"], ["in_features", "out_features"])
        assert all(p.default is p.empty for p in params), method
        assert params[-1].kind is inspect.Parameter.VAR_KEYWORD


#: (family, in, out, options): sizes from 1 wide to wider than 2^k, every option away from default
COUNT_CASES = [
    ("pauli", 1, 1, {"rank": 1}),
    ("pauli", 3, 100, {"rank": 3, "layers": 0}),
    ("pauli", 64, 48, {"rank": 8, "layers": 3, "scale": 2}),
    ("pauli", 130, 257, {}),
    ("taylor", 1, 9, {"rank": 1, "intrinsic_rank": 5}),
    ("taylor", 40, 33, {"rank": 6, "intrinsic_rank": 7, "order": None, "scale": 0.5}),
    ("taylor", 100, 64, {"order": 2}),
    ("compound", 10, 33, {"blocks": 1, "orders": [1, 2, 3]}),
    ("compound", 8, 100, {"blocks": 4, "orders": [2], "num_adapters": 3, "combine": "sum"}),
    ("compound", 50, 64, {"orders": [1]}),
    ("compound", 384, 384, {"wires": 4}),
    ("compound", 30, 100, {"wires": 3, "orders": [1], "magnitude": True}),
    ("hamming", 1, 2, {"num_adapters": 1}),
    ("hamming", 100, 20, {"layout": "brick", "depth": 7}),
    ("hamming", 16, 16, {"layout": "butterfly", "num_adapters": 3}),
    ("hamming", 30, 50, {"variant": "single_order", "order": 3, "layout": "brick", "depth": 2}),
    ("hamming", 64, 10, {"variant": "single_order", "order": 1}),
]


@pytest.mark.parametrize(("family", "d_in", "d_out", "options"), COUNT_CASES, ids=repr)
def test_trainable_count_equals_the_built_adapter(family, d_in, d_out, options) -> None:
    built = families.make_adapter(family, d_in, d_out, **options)
    assert families.trainable_count(family, d_in, d_out, **options) == built.num_trainable()
    given = options_class(family).from_mapping(options)
    assert built.options == FAMILIES[family].sized_options(given, d_in, d_out)
    families.check_options(family, **options)  # what a config accepts, it accepts


#: (family, options given, why): legal options that would do nothing given the others
INERT = [
    ("hamming", {"order": 3}, "variant='hw' acts on every Hamming weight"),
    ("hamming", {"order": 2}, "variant='hw' acts on every Hamming weight"),
    ("hamming", {"depth": 2}, "layout='pyramid' has a fixed depth"),
    ("hamming", {"layout": "butterfly", "depth": 4}, "layout='butterfly' has a fixed depth"),
    ("compound", {"combine": "sum"}, "num_adapters=1"),
    ("compound", {"blocks": 3, "wires": 4}, "blocks is given"),
]


@pytest.mark.parametrize(("family", "options", "why"), INERT)
def test_config_refuses_an_inert_option_the_user_set(family, options, why) -> None:
    name = next(k for k in options if k in ("order", "depth", "combine", "wires"))
    with pytest.raises(ValueError, match=f"{family} option '{name}' has no effect: .*{why}"):
        QAdapterConfig(family, ["q"], options=options)


@pytest.mark.parametrize(("family", "options", "why"), INERT)
def test_constructor_warns_about_a_changed_inert_option(family, options, why) -> None:
    changed = options_class(family).from_mapping(options).inert_changes()
    if not changed:  # set to its default: a config passes every option, so nothing to say
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            families.make_adapter(family, 256, 256, **options)
        return
    with pytest.warns(UserWarning, match=f"has no effect on a 256 → 256 layer: .*{why}") as rec:
        families.make_adapter(family, 256, 256, **options)
    assert len(rec) == 1
    assert rec[0].filename == __file__  # attributed to the caller, not the library


def test_the_same_options_act_where_they_are_read() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        QAdapterConfig("hamming", ["q"], options={"variant": "single_order", "order": 3})
        QAdapterConfig("hamming", ["q"], options={"layout": "brick", "depth": 2})
        QAdapterConfig("compound", ["q"], options={"num_adapters": 2, "combine": "sum"})


def _tiny(width: int, out: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.Linear(width, out))


def test_a_config_of_defaults_injects_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for family in FAMILIES:
            get_qadapter_model(_tiny(32, 32), QAdapterConfig(family, ["0", "1"]))


#: (family, options, layer in → out, message): accepted by the config, refused for this layer
DOES_NOT_FIT = [
    ("pauli", {"rank": 9}, (16, 8), r"1\.\.8 for a 16 → 8 layer; found 9"),
    ("taylor", {"rank": 5}, (4, 30), r"1\.\.4 for a 4 → 30 layer; found 5"),
    ("compound", {"blocks": 6}, (16, 16), "on a 16 → 16 layer: 16 output features cannot hold 6"),
    # 3 blocks of order 9 on 16 features are A^(9) of 9 wires = det A = 1
    ("compound", {"orders": [9], "blocks": 3}, (16, 16),
     r"'orders': \[9\] on a 16 → 16 layer gives blocks of n = 9 wires, where A\^\(9\) = det A "
     r"= 1 is constant: the adapter would not change the output"),
    ("compound", {"orders": [4], "blocks": 2}, (8, 8), r"\[4\] on a 8 → 8 layer .* n = 4 wires"),
    ("hamming", {"layout": "butterfly"}, (20, 20),
     "'butterfly' needs a power-of-two number of qubits; found n=5 for a 20 → 20 layer"),
]  # fmt: skip


@pytest.mark.parametrize(("family", "options", "shape", "message"), DOES_NOT_FIT)
def test_size_checks_name_the_layer(family, options, shape, message) -> None:
    config = QAdapterConfig(family, ["1"], options=options)  # fine without a layer
    d_in, d_out = shape
    with pytest.raises(ValueError, match=message):
        families.make_adapter(family, d_in, d_out, **options)
    with pytest.raises(ValueError, match=message):
        families.trainable_count(family, d_in, d_out, **options)
    with pytest.raises(ValueError, match=message):
        get_qadapter_model(_tiny(d_in, d_out), config)


def test_partly_inert_orders_warn_and_still_train() -> None:
    """Orders (1, 2) on a 5-wide output: one block of n = 2 wires, where A^(2) = 1 is constant
    but A^(1) still rotates two features."""
    with pytest.warns(UserWarning, match=r"order\(s\) \[2\] on a 5 → 5 layer .* constant"):
        adapter = families.make_adapter("compound", 5, 5, blocks=1)
    adapter.reset_away_from_identity(1.0)
    base = torch.eye(5)
    assert (adapter(None, base) - base).abs().max() > 1e-2


def test_deprecated_variant_alias_builds_the_single_order_adapter() -> None:
    torch.manual_seed(0)
    new = families.make_adapter("hamming", 12, 12, variant="single_order", order=2)
    torch.manual_seed(0)
    with pytest.warns(DeprecationWarning, match="use variant='single_order'") as rec:
        old = families.make_adapter("hamming", 12, 12, variant="compound", order=2)
    assert rec[0].filename == __file__
    assert old.variant == "single_order" and old.options == new.options
    assert torch.equal(old.theta, new.theta) and old.dim == new.dim


@pytest.mark.parametrize("family", list(FAMILIES))
def test_options_survive_the_json_round_trip(family) -> None:
    cases = [opts for f, _, _, opts in COUNT_CASES if f == family]
    for options in cases:
        cfg = QAdapterConfig(family, ["q"], options=options)
        again = QAdapterConfig.from_json(cfg.to_json())
        assert again == cfg and again.resolved_options() == cfg.resolved_options()
