"""The synthesizer base: capability checks in one place, config precedence, retired options."""
import dataclasses
import inspect

import pytest

import condense
from condense.errors import CondenseError
from condense.synth import get_method, list_methods, prepare
from condense.synth.base import build_config, check_capabilities, drop_retired
from condense.synth.presets import NAMED_PRESETS, named_preset, preset_for

TINY = {"model_args": {"width": 8}, "device": "cpu"}


def able(test) -> str:
    """The methods passing ``test``, as the sentence lists them (registry order)."""
    return ", ".join(m for m in list_methods() if test(get_method(m)))


FLIP = able(lambda c: c.supports_flip)
MIN_DISTANCE = able(lambda c: c.supports_min_distance())
SHARDS = able(lambda c: c.shards_classes)


def test_the_capability_lists_are_proper_subsets():
    # otherwise the refusals below would be vacuous
    for listed, some_in, some_out in ((FLIP, "dm", "random"), (MIN_DISTANCE, "dm", "dc"), (SHARDS, "dm", "mtt")):
        names = listed.split(", ")
        assert some_in in names and some_out not in names and len(names) < len(list_methods())
    assert MIN_DISTANCE == "datadam, dm, idm, kip, rkip"  # dc, random and mtt among those refused


def refusal(method: str, options: dict, world: int = 1) -> str:
    with pytest.raises(CondenseError) as err:
        check_capabilities(get_method(method), options, world)
    msg = str(err.value)
    assert "\n" not in msg and msg.endswith(".") and msg.count(". ") == 0, msg  # one sentence
    return msg


@pytest.mark.parametrize("method", list_methods())
def test_flip_is_refused_by_every_method_without_it(method):
    if get_method(method).supports_flip:
        check_capabilities(get_method(method), {"flip": True}, 1)
        return
    msg = refusal(method, {"flip": True})
    assert msg == f"--flip is not supported by method '{method}'; it works with: {FLIP}."
    check_capabilities(get_method(method), {"flip": False}, 1)  # flag absent: nothing to refuse
    check_capabilities(get_method(method), {"flip": None}, 1)


@pytest.mark.parametrize("method", list_methods())
def test_min_distance_is_refused_by_every_method_without_the_mixin(method):
    cls = get_method(method)
    if cls.supports_min_distance():
        check_capabilities(cls, {"min_distance": 0.5}, 1)
        return
    for value in (0.5, 0.0):  # any value: a method without the defence has no such option
        msg = refusal(method, {"min_distance": value})
        assert msg == f"--min-distance is supported by {MIN_DISTANCE}, not by '{method}'."
    check_capabilities(cls, {"min_distance": None}, 1)


@pytest.mark.parametrize("method", list_methods())
def test_a_method_that_cannot_shard_is_refused_under_torchrun(method):
    """Iterative methods must shard classes to run under torchrun; one-shot selections (random, coresets)
    simply run on every rank (the IOR and reference rows of a sharded evaluation need them)."""
    cls = get_method(method)
    check_capabilities(cls, {}, 1)  # one process: always fine
    if cls.shards_classes or not cls.iterative:
        check_capabilities(cls, {}, 2)
        return
    msg = refusal(method, {}, world=2)
    assert msg == (f"Method '{method}' cannot be sharded across torchrun ranks; run it in one process "
                   f"({SHARDS} shard classes).")


def test_capabilities_are_checked_before_any_data_is_loaded():
    # the dataset does not exist: a capability refusal proves the check came first
    with pytest.raises(CondenseError, match="--flip is not supported by method 'random'"):
        prepare("random", "no_such_dataset", 1, flip=True)
    with pytest.raises(CondenseError, match="--min-distance is supported by"):
        condense.distill("dc", "no_such_dataset", 1, min_distance=2.0)


# ---- build_config precedence ------------------------------------------------------------------
def defaults(method: str) -> dict:
    return {f.name: f.default for f in dataclasses.fields(get_method(method).config_cls)}


def test_build_config_layers_table_row_then_named_preset_then_explicit_options():
    base, row, ast = defaults("mtt"), preset_for("mtt", "digits", 2), named_preset("mtt", "ast")
    assert row["syn_steps"] != base["syn_steps"] and ast["init"] != base["init"]  # each layer changes something

    plain = build_config("mtt", "digits", 2, {})
    assert plain.syn_steps == row["syn_steps"] == 10 and plain.lr_img == 100.0  # table row over the default
    assert plain.momentum == base["momentum"] and plain.init == base["init"] == "real"  # untouched: default

    with_ast = build_config("mtt", "digits", 2, {}, preset="ast")
    assert (with_ast.init, with_ast.balance_loss, with_ast.student_momentum, with_ast.middle_loss,
            with_ast.weight_perturb) == ("kmeans", True, 0.9, True, True)
    assert with_ast.syn_steps == 10  # the table row still applies under the named preset
    assert dataclasses.asdict(with_ast) == {**dataclasses.asdict(plain), **ast}

    explicit = build_config("mtt", "digits", 2, {"init": "noise", "syn_steps": 3, "lr_img": None}, preset="ast")
    assert explicit.init == "noise" and explicit.syn_steps == 3  # explicit options win over both
    assert explicit.lr_img == 100.0 and explicit.student_momentum == 0.9  # None means "not given"


def test_a_named_preset_wins_over_the_table_row(monkeypatch):
    # the real presets touch disjoint keys; a probe preset overlapping the digits row shows the order
    monkeypatch.setitem(NAMED_PRESETS["mtt"], "probe", {"syn_steps": 4, "lr_img": 7.0})
    cfg = build_config("mtt", "digits", 2, {}, preset="probe")
    assert (cfg.syn_steps, cfg.lr_img, cfg.expert_epochs) == (4, 7.0, 2)
    assert build_config("mtt", "digits", 2, {"lr_img": 9.0}, preset="probe").lr_img == 9.0


def test_build_config_table_rows_by_dataset_and_ipc():
    assert build_config("dm", "digits", 1, {}).batch_real == 64
    assert build_config("dm", "mnist5k", 1, {}).batch_real == defaults("dm")["batch_real"]
    assert build_config("dm", "mnist5k", 100, {}).lr_img == 10.0
    assert build_config("dm", "mnist5k", 50, {}).lr_img == defaults("dm")["lr_img"]
    dc = build_config("dc", "mnist5k", 10, {})
    assert (dc.outer_loop, dc.inner_loop) == (10, 50)
    assert build_config("dc", "mnist5k", 10, {"inner_loop": 3}).inner_loop == 3


def test_build_config_refuses_unknown_options_and_presets():
    with pytest.raises(CondenseError, match="Method 'mtt' has no preset 'nope'.*mtt:ast"):
        build_config("mtt", "digits", 2, {}, preset="nope")
    with pytest.raises(CondenseError, match="Method 'dm' has no preset 'ast'"):
        build_config("dm", "digits", 2, {}, preset="ast")
    with pytest.raises(CondenseError, match="Method 'dm' has no option 'no_such'"):
        build_config("dm", "digits", 2, {"no_such": 1})


def test_the_api_takes_a_named_preset():
    assert "preset" in inspect.signature(prepare).parameters
    assert build_config("mtt", "digits", 2, {}, preset="ast").init == "kmeans"
    # distill forwards preset to the config builder (refused here before any data or training)
    with pytest.raises(CondenseError, match="Method 'random' has no preset 'ast'"):
        condense.distill("random", "digits", 1, preset="ast", **TINY)


# ---- retired options --------------------------------------------------------------------------
def test_retired_options_at_their_off_value_are_dropped():
    old = {"min_distance": 0.0, "min_distance_weight": 50.0, "lr_img": 0.2, "iterations": 3}
    assert drop_retired("dc", old) == {"lr_img": 0.2, "iterations": 3}
    assert drop_retired("dc", {"min_distance": 0, "min_distance_weight": 50}) == {}  # equal numbers, any type
    # a method that has the options keeps them, whatever their value
    assert drop_retired("dm", old) == old
    assert drop_retired("dc", {"no_such": 1}) == {"no_such": 1}  # other unknowns are build_config's business


def test_a_retired_option_with_a_live_value_is_kept_and_refused():
    kept = drop_retired("dc", {"min_distance": 0.5, "min_distance_weight": 50.0})
    assert kept == {"min_distance": 0.5}
    with pytest.raises(CondenseError, match=f"--min-distance is supported by {MIN_DISTANCE}, not by 'dc'"):
        check_capabilities(get_method("dc"), kept, 1)
    assert drop_retired("dc", {"min_distance_weight": 10.0}) == {"min_distance_weight": 10.0}


def test_the_stored_config_of_an_older_dc_set_is_accepted():
    stored = {**dataclasses.asdict(build_config("dc", "digits", 1, {"iterations": 1})),
              "min_distance": 0.0, "min_distance_weight": 50.0}
    m = prepare("dc", "digits", 1, **TINY, **stored)
    assert dataclasses.asdict(m.cfg) == {k: v for k, v in stored.items() if not k.startswith("min_distance")}
    with pytest.raises(CondenseError, match="--min-distance is supported by"):
        prepare("dc", "digits", 1, **TINY, **{**stored, "min_distance": 0.5})
